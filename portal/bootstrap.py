"""Prepare a fresh machine and run the portal or the tests. Standard library only.

Used by ``python3 manage.py start`` and ``python3 manage.py runtests``: it makes the
virtual environment in .venv, installs requirements.txt when it changed, installs the
Debian packages the browser tests need, then hands over to the real programs.
Every step is skipped when already done, so both commands are idempotent.
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("NEUROAI_VENV", BASE_DIR / ".venv"))
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = BASE_DIR / "requirements.txt"
STAMP = VENV / ".requirements.sha256"
TEST_APT_PACKAGES = {"/usr/bin/chromium": "chromium", "/usr/bin/docker-compose": "docker-compose"}


def say(message):
    print(f"[neuroai] {message}", flush=True)


def ensure_venv():
    if not PYTHON.exists():
        say(f"creating the virtual environment in {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text().strip() != wanted:
        say("installing requirements.txt (a minute or two the first time)")
        pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
        STAMP.write_text(wanted)


def ensure_apt_packages(wanted):
    missing = [package for path, package in wanted.items() if not Path(path).exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"Please install these Debian packages first: {' '.join(missing)}")
    say(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", *missing], check=True, env=env, stdout=subprocess.DEVNULL
    )


def manage(*args, env):
    subprocess.run([str(PYTHON), str(BASE_DIR / "manage.py"), *args], check=True, env=env)


DEV_ENV_FILE = Path(os.environ.get("NEUROAI_ENV_FILE", BASE_DIR / ".env"))
DATA_DIR = Path(os.environ.get("NEUROAI_DATA_DIR", BASE_DIR / "var"))


def ensure_dev_env_file():
    """Write .env with the development settings once, so that every manage.py command (and
    gunicorn or celery run by hand) works in this checkout without exporting anything."""
    if DEV_ENV_FILE.exists():
        return
    import secrets

    DEV_ENV_FILE.write_text(
        "# Written by `python3 manage.py start`: development settings for this checkout.\n"
        "# Never use them in production; the environment overrides every line.\n"
        "DEBUG=true\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
    )
    DEV_ENV_FILE.chmod(0o600)
    say(f"wrote the development settings to {DEV_ENV_FILE}")


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def ensure_data_dirs():
    """The data folder, and the embedded filesystem broker's folders (settings makes none)."""
    for sub in ("", "broker/queue", "broker/processed", "broker/control"):
        (DATA_DIR / sub).mkdir(parents=True, exist_ok=True)


def start(args):
    port = args[0] if args else os.environ.get("PORT", "8000")
    ensure_dev_env_file()
    ensure_data_dirs()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # stop web and worker on SIGTERM too
    env = {**os.environ}
    env.setdefault("DEBUG", "true")
    env.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    manage("migrate", "--noinput", env=env)
    try:  # the shipped VGG16 (and ResNet50 where ImageNet weights are present): no manual step
        manage("install_shipped_models", env=env)
    except subprocess.CalledProcessError:
        say("the shipped models could not be installed (see above); the portal starts without them")
    manage("seed_demo", env=env)
    say(f"portal on http://127.0.0.1:{port}/  (Ctrl-C or SIGTERM stops the web server and the worker)")
    say(f"the demo login is also in {DATA_DIR / 'demo-login.txt'}")
    celery = [str(VENV / "bin" / "celery"), "-A", "portal", "worker", "--beat",
              "-Q", "inference,default,heatmap", "--concurrency", "1", "--loglevel", "INFO",
              "--schedule", str(DATA_DIR / "celerybeat-schedule")]
    web = [str(PYTHON), str(BASE_DIR / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"]
    processes = [subprocess.Popen(celery, env=env, cwd=BASE_DIR),
                 subprocess.Popen(web, env=env, cwd=BASE_DIR)]
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    return 0


def test_processes():
    """How many pytest-xdist worker processes runtests uses: NEUROAI_TEST_PROCESSES, else one
    per CPU, at most 4 (each starts its own Celery worker, S3 server and browser when its
    tests need them, and loads TensorFlow)."""
    wanted = os.environ.get("NEUROAI_TEST_PROCESSES", "")
    return int(wanted) if wanted.strip() else max(1, min(4, os.cpu_count() or 1))


def xdist_args(args):
    """``-n N --dist loadfile``, unless the arguments choose the processes themselves
    (``-n 0`` runs in this process) or ask for the debugger."""
    if any(a.startswith(("-n", "--numprocesses", "--pdb")) or a == "no:xdist" for a in args):
        return []
    # Whole files to each worker, in the order tests/conftest.py gives (slow files first).
    return ["-n", str(test_processes()), "--dist", "loadfile", "--no-loadscope-reorder"]


def runtests(args):
    ensure_apt_packages(TEST_APT_PACKAGES)
    env = {**os.environ}
    # tests/env.py gives each run (and each of its xdist workers) its own PostgreSQL database
    # and Redis key prefix.
    pytest = [str(PYTHON), "-m", "pytest", "-c", str(BASE_DIR / "tests" / "pytest.ini"),
              "--rootdir", str(BASE_DIR / "tests"), *xdist_args(args),
              *(args or [str(BASE_DIR / "tests")])]
    return subprocess.run(pytest, env=env, cwd=BASE_DIR).returncode


def main(command, args):
    ensure_venv()
    return {"start": start, "runtests": runtests}[command](args)
