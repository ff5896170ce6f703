"""Django admin: every model registered and browsable; records read-only; job actions."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from tests.portal.reviews_data import case_with_scans, csrf_token, model_version, predict

APPS = ["accounts", "cases", "classifier", "audit"]


def _models():
    return [m for label in APPS for m in apps.get_app_config(label).get_models()]


def test_every_model_is_registered_with_list_columns_and_search():
    for model in _models():
        model_admin = admin.site._registry.get(model)
        assert model_admin is not None, f"{model.__name__} is not in the admin"
        assert model_admin.search_fields, f"{model.__name__} admin has no search"
        assert len(model_admin.list_display) > 1, f"{model.__name__} admin has no list columns"


@pytest.fixture
def records(clinic_a, alice, bob):
    from classifier.models import Review
    from portal.audit.log import record
    from portal.audit.models import AuditEvent

    _, batch, scans = case_with_scans(clinic_a, alice, 1)
    (p,) = predict(batch, scans, model_version(), [0.8])
    review = Review.objects.create(prediction=p, scan=p.scan, reviewer=bob, verdict="confirmed", label="tumor")
    record(None, AuditEvent.Action.EXPORT, actor=bob, clinic=clinic_a)
    return {"prediction": p, "review": review, "job": p.job}


def test_every_changelist_loads_with_search_for_a_superuser(client_for, root, records):
    c = client_for(root)
    for model in _models():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        response = c.get(url, {"q": "a"})
        assert response.status_code == 200, url


@pytest.mark.parametrize("key", ["prediction", "review"])
def test_predictions_and_reviews_are_read_only(client_for, root, records, key):
    obj = records[key]
    name = obj._meta.model_name
    c = client_for(root)
    change = reverse(f"admin:classifier_{name}_change", args=[obj.pk])
    page = c.get(change)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    token = csrf_token(page) if b"csrfmiddlewaretoken" in page.content else c.cookies["csrftoken"].value
    assert c.post(change, {"csrfmiddlewaretoken": token, "label": "no_tumor"}).status_code == 403
    assert c.get(reverse(f"admin:classifier_{name}_delete", args=[obj.pk])).status_code == 403
    assert c.get(reverse(f"admin:classifier_{name}_add")).status_code == 403
    obj.refresh_from_db()
    assert obj.label == "tumor"


def _action(c, action, jobs):
    url = reverse("admin:classifier_predictionjob_changelist")
    token = csrf_token(c.get(url))
    return c.post(url, {"csrfmiddlewaretoken": token, "action": action,
                        "_selected_action": [j.pk for j in jobs]}, follow=True)


def test_requeue_and_cancel_actions(client_for, root, records, clinic_a, alice, django_capture_on_commit_callbacks):
    from classifier.models import JobStatus, PredictionJob
    from portal.audit.models import AuditEvent

    failed = records["job"]
    PredictionJob.objects.filter(pk=failed.pk).update(status=JobStatus.FAILED, user_error="boom")
    _, batch, _ = case_with_scans(clinic_a, alice, 1)
    running = PredictionJob.objects.create(batch=batch, model_version=failed.model_version, status=JobStatus.RUNNING)
    c = client_for(root)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _action(c, "requeue", [failed, running])
    assert len(callbacks) == 1  # one message, sent only once the transaction commits
    failed.refresh_from_db()
    assert (failed.status, failed.attempt) == (JobStatus.QUEUED, 2)
    text = response.content.decode()
    assert "Re-running 1 job" in text and "Not re-run" in text
    assert failed.round == 2  # a new round: its failed scans are tried again

    response = _action(c, "cancel", [running, failed])
    running.refresh_from_db()
    failed.refresh_from_db()
    assert running.status == JobStatus.CANCELLED and failed.status == JobStatus.CANCELLED
    assert "Cancelled 2 job" in response.content.decode()
    response = _action(c, "cancel", [running])
    assert "Not cancelled (already finished)" in response.content.decode()
    assert AuditEvent.objects.filter(action="job_requeue").count() == 1
    assert AuditEvent.objects.filter(action="job_cancel").count() == 2


def test_job_actions_need_the_change_permission(client_for, records):
    """A staff user who may only view jobs gets no re-queue or cancel action."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    staff = get_user_model().objects.create_user("viewer", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_predictionjob"))
    page = client_for(staff).get(reverse("admin:classifier_predictionjob_changelist"))
    assert page.status_code == 200
    assert 'value="requeue"' not in page.content.decode()


@pytest.mark.django_db
def test_admin_json_and_plot_views_need_the_models_view_permission(client_for):
    """A training run's status and log, and a version's plots, follow the admin's own view
    permission, as its changelists do: being staff is not enough."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    from classifier.models import TrainingRun

    run = TrainingRun.objects.create(architecture="vgg16", log="reviewed scans of clinic A: 42")
    version = model_version()
    status = reverse("admin:classifier_trainingrun_status", args=[run.pk])
    plot = reverse("admin:classifier_modelversion_plot", args=[version.pk, "roc"])
    staff = get_user_model().objects.create_user("bare-staff", is_staff=True)
    client = client_for(staff)
    assert client.get(reverse("admin:classifier_trainingrun_changelist")).status_code == 403
    assert client.get(status).status_code == 403
    assert client.get(plot).status_code == 403
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_trainingrun", "view_modelversion"]))
    client = client_for(get_user_model().objects.get(pk=staff.pk))
    assert client.get(status).json()["log"] == "reviewed scans of clinic A: 42"
    assert client.get(plot).status_code == 404  # allowed; this version has no ROC plot


@pytest.mark.django_db
def test_api_tokens_can_only_be_revoked_in_the_admin(client_for, root, alice):
    """Moving a token to another user would hand that user's rights to the key's holder."""
    from django.test import Client

    from portal.api.models import ApiToken

    token, key = ApiToken.issue(alice, "script")
    admin_client = client_for(root)
    change = reverse("admin:api_apitoken_change", args=[token.pk])
    expires = token.expires_at
    admin_client.post(change, {"user": root.pk, "name": "mine now", "expires_at_0": expires.strftime("%Y-%m-%d"),
                               "expires_at_1": expires.strftime("%H:%M:%S"), "revoked_at_0": "", "revoked_at_1": "",
                               "csrfmiddlewaretoken": csrf_token(admin_client.get(change))})
    token.refresh_from_db()
    assert (token.user, token.name) == (alice, "script")
    assert admin_client.get(reverse("admin:api_apitoken_add")).status_code == 403

    changelist = reverse("admin:api_apitoken_changelist")
    response = admin_client.post(changelist, {"action": "revoke_selected", "_selected_action": [token.pk],
                                              "csrfmiddlewaretoken": csrf_token(admin_client.get(changelist))})
    assert response.status_code == 302
    assert Client(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/cases/").status_code == 401


@pytest.mark.django_db
def test_a_case_never_changes_clinic_in_the_admin(client_for, root, clinic_a, clinic_b, alice):
    """Its files, pseudonyms and patient hash belong to its clinic: moving it would show one
    clinic's patient to another."""
    from tests.portal.helpers import make_case

    case = make_case(clinic_a, alice)
    client = client_for(root)
    change = reverse("admin:cases_case_change", args=[case.pk])
    response = client.post(change, {"clinic": clinic_b.pk, "patient_ref": case.patient_ref, "notes": "moved",
                                    "created_by": root.pk, "dicom_patient_hash": "f" * 64,
                                    "csrfmiddlewaretoken": csrf_token(client.get(change))})
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.clinic, case.created_by, case.dicom_patient_hash, case.notes) == (clinic_a, alice, "", "moved")
