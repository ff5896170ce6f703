"""docker-compose.yml cannot run here (no Docker engine), so it is validated instead:
docker-compose accepts it, and it agrees with the settings module and the README."""

import re
import subprocess
from pathlib import Path

import yaml

BASE_DIR = Path(__file__).resolve().parents[2]
COMPOSE = BASE_DIR / "docker-compose.yml"
# Variables read by libraries rather than by portal/settings.py.
LIBRARY_VARIABLES = {"KERAS_HOME"}
APP_SERVICES = {"s3-init", "migrate", "web", "worker", "heatmap", "beat"}
COMPOSE_ENV = {
    "SECRET_KEY": "x", "ALLOWED_HOSTS": "example.org", "POSTGRES_PASSWORD": "x",
    "S3_ACCESS_KEY": "key", "S3_SECRET_KEY": "secret", "S3_PUBLIC_ENDPOINT_URL": "https://s3.example.org",
    "PATH": "/usr/bin:/bin",
}


def settings_variables():
    source = (BASE_DIR / "portal" / "settings.py").read_text()
    return set(re.findall(r'env_(?:str|bool|int|float|list|url|choice)\(\s*"([A-Z0-9_]+)"', source))


def app_services():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    return {name: s for name, s in services.items() if name in APP_SERVICES}


def test_docker_compose_accepts_the_file():
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "--quiet"],
        env=COMPOSE_ENV, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_every_app_variable_is_read_by_the_settings_module():
    known = settings_variables() | LIBRARY_VARIABLES
    for name, service in app_services().items():
        unknown = set(service["environment"]) - known
        assert not unknown, f"{name} sets variables the settings never read: {unknown}"


def test_production_essentials_are_set_for_every_app_service():
    for name, service in app_services().items():
        env = service["environment"]
        assert env["DEBUG"] == "false", name
        assert env["DATABASE_URL"].startswith("postgres://"), name
        assert env["CELERY_BROKER_URL"].startswith("redis://"), name
        assert "SECRET_KEY" in env and "ALLOWED_HOSTS" in env, name


def test_services_run_the_programs_the_project_defines():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "beat"} <= set(services)
    assert "portal.wsgi:application" in services["web"]["command"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "portal", "worker"]
    assert "inference,default,heatmap" in services["worker"]["command"]
    migrate_step = " ".join(services["migrate"]["command"])
    assert "manage.py migrate --noinput && python manage.py install_shipped_models" in migrate_step
    for name in ("postgres", "redis", "web", "worker"):
        assert "healthcheck" in services[name], name


def test_readme_documents_every_settings_variable():
    readme = (BASE_DIR / "README.md").read_text()
    missing = sorted(name for name in settings_variables() if f"`{name}`" not in readme)
    assert not missing, f"README's settings table lacks {missing}"


def test_every_worker_command_consumes_every_queue_tasks_are_sent_to():
    """A routed queue nobody consumes piles up silently (e.g. heatmaps pending forever)."""
    from portal.health.checks import required_queues

    wanted = set(required_queues())
    assert {"inference", "default", "heatmap"} <= wanted
    command = yaml.safe_load(COMPOSE.read_text())["services"]["worker"]["command"]
    found = {"docker-compose.yml worker": command[command.index("-Q") + 1]}
    for path in ("portal/bootstrap.py", "tests/fixtures/worker.py"):
        found[path] = re.search(r'"-Q", "([a-z,]+)"', (BASE_DIR / path).read_text()).group(1)
    for index, queues in enumerate(re.findall(r"worker -Q ([a-z,]+)", (BASE_DIR / "README.md").read_text())):
        found[f"README worker command {index + 1}"] = queues
    for where, queues in found.items():
        assert wanted <= set(queues.split(",")), f"{where} consumes {queues}, not all of {sorted(wanted)}"


def _resolved():
    """The file as docker-compose resolves it (anchors merged, variables filled in)."""
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config"],
        env=COMPOSE_ENV, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_files_live_in_an_s3_service_with_its_bucket_made_at_start():
    services = _resolved()
    assert services["s3"]["image"].startswith("chrislusf/seaweedfs")
    assert "healthcheck" in services["s3"]
    assert services["s3-init"]["command"][-1] == "ensure_bucket"
    assert services["s3-init"]["depends_on"]["s3"]["condition"] == "service_healthy"
    for name in ("web", "worker", "heatmap", "beat"):
        env = services[name]["environment"]
        assert env["S3_BUCKET"] and env["S3_ENDPOINT_URL"] == "http://s3:8333", name
        assert env["AWS_ACCESS_KEY_ID"] == "key" and env["AWS_SECRET_ACCESS_KEY"] == "secret", name
        assert services[name]["depends_on"]["s3-init"]["condition"] == "service_completed_successfully", name


def test_app_services_share_no_disk_and_workers_scale():
    services = _resolved()
    for name in APP_SERVICES:
        for volume in services[name].get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            read_only = volume.get("read_only") if isinstance(volume, dict) else volume.endswith(":ro")
            assert read_only, f"{name} mounts {source} writable: hosts must share no disk"
    for name in ("worker", "heatmap"):
        # `docker compose up --scale worker=4`: no fixed name, no host port.
        assert "container_name" not in services[name], name
        assert not services[name].get("ports"), name
        assert "healthcheck" in services[name], name
    assert services["heatmap"]["command"][services["heatmap"]["command"].index("-Q") + 1] == "heatmap"


def test_web_is_published_on_loopback_only():
    """web trusts the proxy's X-Forwarded-For and -Proto: a client reaching it from another
    machine, past the proxy, could choose its own address for the audit trail and throttles."""
    ports = _resolved()["web"]["ports"]
    hosts = [port.get("host_ip", "0.0.0.0") if isinstance(port, dict) else port.rsplit(":", 2)[0] for port in ports]
    assert hosts == ["127.0.0.1"], ports
