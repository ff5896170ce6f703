"""Audit events become append-only in the database itself: a trigger rejects every UPDATE
and DELETE on audit_auditevent, whoever sends it (the ORM, raw SQL, a psql session).
TRUNCATE is not blocked, so test teardown and a deliberate purge by the database owner work.

SQLite (development only): two triggers RAISE(ABORT). Caveats there: ``manage.py flush``
uses DELETE and is refused; a later migration that makes SQLite rebuild the table drops
the triggers, so such a migration must re-run ``SQLITE_SQL``.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


FUNCTION = "audit_auditevent_append_only"

POSTGRES_SQL = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
DROP TRIGGER IF EXISTS {FUNCTION} ON audit_auditevent;
CREATE TRIGGER {FUNCTION} BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION {FUNCTION}();
"""
POSTGRES_REVERSE = f"""
DROP TRIGGER IF EXISTS {FUNCTION} ON audit_auditevent;
DROP FUNCTION IF EXISTS {FUNCTION}();
"""
SQLITE_SQL = [
    f"""CREATE TRIGGER IF NOT EXISTS {FUNCTION}_{op.lower()} BEFORE {op} ON audit_auditevent
    BEGIN SELECT RAISE(ABORT, 'audit_auditevent is append-only: {op} refused'); END;"""
    for op in ("UPDATE", "DELETE")
]
SQLITE_REVERSE = [f"DROP TRIGGER IF EXISTS {FUNCTION}_{op};" for op in ("update", "delete")]


def _run(schema_editor, postgres, sqlite):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(postgres, params=None)  # no %-formatting of the SQL
    elif vendor == "sqlite":
        for statement in sqlite:
            schema_editor.execute(statement)
    else:
        raise NotImplementedError(f"no append-only trigger for {vendor}")


def create_trigger(apps, schema_editor):
    _run(schema_editor, POSTGRES_SQL, SQLITE_SQL)


def drop_trigger(apps, schema_editor):
    _run(schema_editor, POSTGRES_REVERSE, SQLITE_REVERSE)


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0003_security_actions'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('login', 'Login'), ('login_failed', 'Failed login'), ('login_locked', 'Login locked out'), ('logout', 'Logout'), ('case_create', 'Case created'), ('case_view', 'Case viewed'), ('upload', 'Upload'), ('image_view', 'Image viewed'), ('review', 'Review'), ('export', 'Export'), ('model_import', 'Model imported'), ('model_activate', 'Model activated'), ('training_start', 'Training started'), ('job_requeue', 'Job re-queued'), ('job_cancel', 'Job cancelled'), ('job_rerun', 'Failed scans re-run'), ('mfa_enrolled', 'Two-factor enrolled'), ('mfa_verified', 'Two-factor verified'), ('mfa_failed', 'Two-factor code refused'), ('mfa_recovery_used', 'Recovery code used'), ('password_reset_requested', 'Password reset requested'), ('password_reset_done', 'Password reset completed'), ('access_refused', 'Access refused'), ('batch_view', 'Upload viewed'), ('scan_view', 'Scan page viewed'), ('queue_view', 'Review queue viewed'), ('search', 'Case search'), ('analysis_queue', 'Analysis queued')], db_index=True, max_length=30),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='actor',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunPython(create_trigger, drop_trigger, elidable=False),
    ]
