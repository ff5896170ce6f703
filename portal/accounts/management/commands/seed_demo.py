"""Create a demo clinic and an admin login once; print the login every time."""

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from portal.accounts.models import Clinic, Membership, Role


class Command(BaseCommand):
    help = "Create the demo clinic and its admin user if missing, and print the login."

    def handle(self, *args: Any, **options: Any) -> None:
        login_file = settings.DATA_DIR / "demo-login.txt"
        User = get_user_model()
        with transaction.atomic():
            clinic, _ = Clinic.objects.get_or_create(slug="demo", defaults={"name": "Demo Clinic"})
            user = User.objects.filter(username="admin").first()
            if user is None:
                password = secrets.token_urlsafe(12)
                user = User.objects.create_superuser("admin", "admin@example.org", password)
                login_file.parent.mkdir(parents=True, exist_ok=True)
                login_file.write_text(f"admin {password}\n")
                login_file.chmod(0o600)
            Membership.objects.get_or_create(user=user, clinic=clinic, defaults={"role": Role.ADMIN})
        if login_file.exists():
            username, password = login_file.read_text().split()
            self.stdout.write(f"Demo login: user {username!r}, password {password!r}")
        else:
            self.stdout.write("Demo user 'admin' exists; set a password with: manage.py changepassword admin")
