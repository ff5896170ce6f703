import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


def test_migrated_app_serves_login_page_from_postgresql(client, db):
    from django.db import connection

    assert connection.vendor == "postgresql"
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content


def test_case_list_requires_login(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_importing_ml_does_not_import_django():
    code = "import ml, sys; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, check=True)
