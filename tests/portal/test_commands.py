"""The README's commands work as written: any python3 runs manage.py (it moves itself into the
virtual environment), a local .env holds the development settings, `--help` lists the
bootstrap commands too. (`start` itself, and SIGTERM stopping it with its web server and
worker: tests/portal/test_fresh_start.py.)"""

import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


def system_python():
    """A python3 outside the project's virtual environment (no Django)."""
    candidate = Path(sys.base_prefix) / "bin" / "python3"
    assert candidate.exists(), candidate
    check = subprocess.run([candidate, "-c", "import django"], capture_output=True)
    assert check.returncode != 0, "the base Python has Django; this test needs one without"
    return str(candidate)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def test_help_from_the_system_python_lists_bootstrap_and_django_commands(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DEBUG=true\n")  # as `start` leaves it
    result = subprocess.run(
        [system_python(), "manage.py", "--help"], cwd=BASE_DIR,
        env=clean_env(NEUROAI_ENV_FILE=str(env_file)),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for command in ("start", "runtests", "import_model", "migrate", "seed_demo", "createsuperuser"):
        assert f"    {command}" in result.stdout, command


def test_a_dot_env_file_supplies_the_development_settings(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DEBUG=true\nSECRET_KEY=from-the-dot-env-file-0123456789\n")
    result = subprocess.run(
        [system_python(), "manage.py", "shell", "-c",
         "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"],
        cwd=BASE_DIR, env=clean_env(NEUROAI_ENV_FILE=str(env_file)),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True from-the-dot-env-file-0123456789"
    # Without it, production rules apply: no secret key, no start.
    result = subprocess.run(
        [system_python(), "manage.py", "check"], cwd=BASE_DIR,
        env=clean_env(NEUROAI_ENV_FILE=str(tmp_path / "none.env")),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0 and "Set the environment variable SECRET_KEY" in result.stderr


def _bootstrap():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bootstrap_under_test", BASE_DIR / "portal" / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runtests_shares_the_files_out_to_worker_processes_unless_told_otherwise(monkeypatch):
    bootstrap = _bootstrap()
    monkeypatch.setenv("NEUROAI_TEST_PROCESSES", "3")
    assert bootstrap.xdist_args(["tests/ml", "-x"]) == ["-n", "3", "--dist", "loadfile", "--no-loadscope-reorder"]
    for chosen in (["-n", "0"], ["-n4"], ["--numprocesses=2"], ["-p", "no:xdist"], ["--pdb"]):
        assert bootstrap.xdist_args(chosen) == [], chosen
    monkeypatch.delenv("NEUROAI_TEST_PROCESSES")
    assert 1 <= bootstrap.test_processes() <= 4



def test_start_help_and_a_bad_port_answer_before_anything_is_prepared(tmp_path):
    """`start --help` prints its usage (it once ran the whole preparation, then took --help
    for the port); a bad port is refused as plainly. Neither writes the .env file."""
    env_file = tmp_path / ".env"
    for args, code, stream, words in ((["--help"], 0, "stdout", "usage: python3 manage.py start [PORT]"),
                                      (["80x"], 2, "stderr", "'80x' is not a port number.")):
        result = subprocess.run([system_python(), "manage.py", "start", *args], cwd=BASE_DIR,
                                env=clean_env(NEUROAI_ENV_FILE=str(env_file)), capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == code, result.stderr
        assert words in getattr(result, stream)
    assert not env_file.exists()
