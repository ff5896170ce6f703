"""Prepare a fresh machine and run the portal or the tests. Standard library only.

Used by ``python3 manage.py start`` and ``python3 manage.py runtests``: it makes the
virtual environment in .venv, installs requirements.txt (``start``: the runtime packages) or
tests/requirements.txt (``runtests``: those plus the test and check tools) when they changed,
installs the Debian packages the browser tests need, then hands over to the real programs
(``runtests``: the code checks, ruff and mypy, first; pytest only when both pass).
Every step is skipped when already done, so both commands are idempotent.
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

BASE_DIR = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("NEUROAI_VENV", BASE_DIR / ".venv"))
PYTHON = VENV / "bin" / "python"
RUNTIME_REQUIREMENTS = BASE_DIR / "requirements.txt"
TEST_REQUIREMENTS = BASE_DIR / "tests" / "requirements.txt"  # starts with -r ../requirements.txt
# What was installed, as the SHA-256 of the requirement files' contents: a changed file reinstalls.
RUNTIME_STAMP = VENV / ".neuroai-runtime-requirements.sha256"
TEST_STAMP = VENV / ".neuroai-test-requirements.sha256"
TEST_APT_PACKAGES = {"/usr/bin/chromium": "chromium", "/usr/bin/docker-compose": "docker-compose"}


def say(message: str) -> None:
    print(f"[neuroai] {message}", flush=True)


def requirements_hash(*files: Path) -> str:
    """One SHA-256 over the files' contents, in order (the test file includes the runtime one)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def is_installed(stamp: Path, *files: Path) -> bool:
    return stamp.is_file() and stamp.read_text().strip() == requirements_hash(*files)


def ensure_venv(tests: bool = False) -> None:
    """The virtual environment with the runtime packages, and with the test packages too when
    ``tests`` (tests/requirements.txt pulls in requirements.txt, so one install serves both)."""
    if not PYTHON.exists():
        say(f"creating the virtual environment in {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if tests:
        wanted = [(TEST_STAMP, (RUNTIME_REQUIREMENTS, TEST_REQUIREMENTS)), (RUNTIME_STAMP, (RUNTIME_REQUIREMENTS,))]
    else:
        wanted = [(RUNTIME_STAMP, (RUNTIME_REQUIREMENTS,))]
    if all(is_installed(stamp, *files) for stamp, files in wanted):
        return
    requirements = wanted[0][1][-1]  # tests/requirements.txt installs requirements.txt too
    say(f"installing {requirements.relative_to(BASE_DIR)} (a minute or two the first time)")
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(requirements)], check=True)
    for stamp, files in wanted:
        stamp.write_text(requirements_hash(*files))


def ensure_apt_packages(wanted: Mapping[str, str]) -> None:
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


def manage(*args: str, env: Mapping[str, str]) -> None:
    subprocess.run([str(PYTHON), str(BASE_DIR / "manage.py"), *args], check=True, env=env)


DEV_ENV_FILE = Path(os.environ.get("NEUROAI_ENV_FILE", BASE_DIR / ".env"))
DATA_DIR = Path(os.environ.get("NEUROAI_DATA_DIR", BASE_DIR / "var"))


def ensure_dev_env_file() -> None:
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


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def ensure_data_dirs() -> None:
    """The data folder, and the embedded filesystem broker's folders (settings makes none)."""
    for sub in ("", "broker/queue", "broker/processed", "broker/control"):
        (DATA_DIR / sub).mkdir(parents=True, exist_ok=True)


START_USAGE = """usage: python3 manage.py start [PORT]

Prepare everything (virtualenv, .env, migrations, shipped models, demo clinic and login), then
run the portal (Django's server and a Celery worker with beat) on http://127.0.0.1:PORT/.
PORT: the argument, else the PORT environment variable, else 8000. DATABASE_URL and
CELERY_BROKER_URL choose PostgreSQL and Redis instead of the embedded SQLite and broker."""


def start_port(args: list[str]) -> str | None:
    """The port ``start`` serves on; None after printing the usage (asked for, or a bad port)."""
    if args and args[0] in ("-h", "--help", "help"):
        print(START_USAGE)
        return None
    port = args[0] if args else os.environ.get("PORT", "8000")
    if len(args) > 1 or not port.isdigit() or not 0 < int(port) < 65536:
        print(f"{' '.join(args) or port!r} is not a port number.\n\n{START_USAGE}", file=sys.stderr)
        return None
    return port


def start(args: list[str]) -> int:
    port = start_port(args)
    if port is None:  # main() answered help already
        return 2
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


def test_processes() -> int:
    """How many pytest-xdist worker processes runtests uses: NEUROAI_TEST_PROCESSES, else one
    per CPU, at most 4 (each starts its own Celery worker, S3 server and browser when its
    tests need them, and loads TensorFlow)."""
    wanted = os.environ.get("NEUROAI_TEST_PROCESSES", "")
    return int(wanted) if wanted.strip() else max(1, min(4, os.cpu_count() or 1))


def xdist_args(args: list[str]) -> list[str]:
    """``-n N --dist loadfile``, unless the arguments choose the processes themselves
    (``-n 0`` runs in this process) or ask for the debugger."""
    if any(a.startswith(("-n", "--numprocesses", "--pdb")) or a == "no:xdist" for a in args):
        return []
    # Whole files to each worker, in the order tests/conftest.py gives (slow files first).
    return ["-n", str(test_processes()), "--dist", "loadfile", "--no-loadscope-reorder"]


# The code checks runtests runs before pytest (configured in pyproject.toml). mypy's Django
# plugin imports the settings, which need DEBUG on to start without a SECRET_KEY.
CHECKS = {
    "ruff check": ["-m", "ruff", "check", "."],
    "mypy": ["-m", "mypy"],
}


def run_checks(env: Mapping[str, str]) -> list[str]:
    """Run every check in CHECKS on the whole tree; the names of those that failed."""
    failed = []
    for name, args in CHECKS.items():
        say(f"{name} …")
        if subprocess.run([str(PYTHON), *args], env={**env, "DEBUG": "true"}, cwd=BASE_DIR).returncode != 0:
            failed.append(name)
    return failed


def runtests(args: list[str]) -> int:
    ensure_apt_packages(TEST_APT_PACKAGES)
    env = {**os.environ}
    failed = run_checks(env)
    if failed:
        say(f"{' and '.join(failed)} failed (see above); the tests were not run")
        return 1
    # tests/env.py gives each run (and each of its xdist workers) its own PostgreSQL database
    # and Redis key prefix.
    pytest = [str(PYTHON), "-m", "pytest", "-c", str(BASE_DIR / "tests" / "pytest.ini"),
              "--rootdir", str(BASE_DIR / "tests"), *xdist_args(args),
              *(args or [str(BASE_DIR / "tests")])]
    return subprocess.run(pytest, env=env, cwd=BASE_DIR).returncode


def main(command: str, args: list[str]) -> int:
    if command == "start" and start_port(args) is None:  # before the install: help, or a bad port
        return 0 if args[:1] in (["-h"], ["--help"], ["help"]) else 2
    ensure_venv(tests=command == "runtests")
    return {"start": start, "runtests": runtests}[command](args)
