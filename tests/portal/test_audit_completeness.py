"""The audit trail records every refused access, every view of patient images or file
names, searches (hashed) and queued analyses; and it cannot be rewritten, not even in bulk
or by raw SQL."""

import pytest
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from tests.portal.helpers import jpeg, make_case, upload

pytestmark = pytest.mark.django_db


def _events(action, **filters):
    from portal.audit.models import AuditEvent

    return list(AuditEvent.objects.filter(action=action, **filters))


@pytest.fixture
def uploaded(client_for, alice, clinic_a, vgg16_model):
    from portal.cases.models import Batch

    case = make_case(clinic_a, alice, ref="P-AUDIT")
    upload(client_for(alice), case, [jpeg("brain.jpg", seed=3, size=(64, 64))])
    batch = Batch.objects.get(case=case)
    return case, batch, batch.scans.get()


def test_another_clinics_object_404_writes_one_refused_row_without_its_clinic(
    client_for, uploaded, mallory
):
    case, _, scan = uploaded
    url = reverse("cases:scan_image", kwargs={"scan_id": scan.pk})
    assert client_for(mallory).get(url).status_code == 404
    [event] = _events("access_refused")
    assert (event.actor, event.clinic_id) == (mallory, None)
    assert event.extra == {"status": 404, "method": "GET", "path": url}
    assert str(case.clinic_id) not in str(event.extra)


def test_a_role_check_403_writes_one_refused_row(client_for, alice, clinic_a):
    url = reverse("audit:events")  # clinic admins only; alice is a clinician
    assert client_for(alice).get(url).status_code == 403
    [event] = _events("access_refused")
    assert (event.actor, event.extra["status"], event.extra["path"]) == (alice, 403, url)


def test_scan_page_batch_page_and_thumbnail_are_audited(client_for, alice, uploaded):
    _, batch, scan = uploaded
    client = client_for(alice)
    assert client.get(reverse("cases:scan", kwargs={"scan_id": scan.pk})).status_code == 200
    assert client.get(reverse("cases:batch", kwargs={"batch_id": batch.pk})).status_code == 200
    assert client.get(reverse("cases:scan_thumbnail", kwargs={"scan_id": scan.pk})).status_code == 200
    [scan_view] = _events("scan_view")
    [batch_view] = _events("batch_view")
    [thumbnail] = _events("image_view", extra__variant="thumbnail")
    assert (scan_view.object_id, scan_view.clinic_id) == (str(scan.pk), scan.case.clinic_id)
    assert batch_view.object_id == str(batch.pk)
    assert (thumbnail.actor, thumbnail.object_id) == (alice, str(scan.pk))


def test_search_is_audited_with_a_keyed_hash_never_the_term(client_for, alice, uploaded, settings):
    from portal.audit.log import search_term_digest

    client = client_for(alice)
    client.get(reverse("cases:list"))
    response = client.post(
        reverse("cases:list"), {"q": "P-AUDIT", "csrfmiddlewaretoken": client.cookies["csrftoken"].value}
    )
    assert response.status_code == 302
    [event] = _events("search")
    assert event.actor == alice
    assert "P-AUDIT" not in str(event.extra) and "p-audit" not in str(event.extra)
    assert event.extra["term_hmac"] == search_term_digest("p-audit")
    settings.SECRET_KEY = "another-secret-key-gives-another-digest-0123456789abcdef"
    assert search_term_digest("p-audit") != event.extra["term_hmac"]  # keyed, not a bare hash


def test_queuing_an_analysis_from_the_batch_page_is_audited(client_for, alice, clinic_a, register_tiny_model):
    from portal.cases.models import Batch

    case = make_case(clinic_a, alice)
    upload(client_for(alice), case, [jpeg("a.jpg", seed=5)], models=[])  # no model active yet
    batch = Batch.objects.get(case=case)
    assert not _events("analysis_queue")
    register_tiny_model("vgg16")
    client = client_for(alice)
    client.get(reverse("cases:batch", kwargs={"batch_id": batch.pk}))
    response = client.post(
        reverse("cases:batch_predict", kwargs={"batch_id": batch.pk}),
        {"models": ["vgg16"], "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
    )
    assert response.status_code == 302
    [event] = _events("analysis_queue")
    assert (event.actor, event.object_id, event.clinic_id) == (alice, str(batch.pk), clinic_a.pk)


@pytest.fixture
def audit_row(alice, clinic_a):
    from portal.audit.log import record

    return record(None, "export", actor=alice, clinic=clinic_a)


def test_bulk_update_and_delete_are_refused_by_the_queryset(audit_row):
    from portal.audit.models import AuditEvent

    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=audit_row.pk).update(action="logout")
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=audit_row.pk).delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=audit_row.pk).action == "export"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET action = 'logout' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ],
)
def test_postgresql_itself_refuses_update_and_delete_on_the_audit_table(audit_row, sql):
    from portal.audit.models import AuditEvent

    assert connection.vendor == "postgresql"
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [audit_row.pk])
    assert AuditEvent.objects.get(pk=audit_row.pk).action == "export"


def test_deleting_a_user_who_has_acted_is_refused_not_rewriting_the_trail(audit_row, alice):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        alice.delete()


@pytest.mark.django_db(transaction=True)
def test_audit_rows_do_not_stop_a_transactional_test_from_tearing_down(alice, clinic_a):
    """transactional_db empties tables with TRUNCATE, which the trigger leaves alone."""
    from portal.audit.log import record
    from portal.audit.models import AuditEvent

    record(None, "export", actor=alice, clinic=clinic_a)
    assert AuditEvent.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_table_is_empty_again_after_a_transactional_test(db):
    from portal.audit.models import AuditEvent

    assert AuditEvent.objects.count() == 0


def test_the_review_page_and_the_queue_which_show_scans_and_names_are_audited(client_for, bob, clinic_a):
    from tests.portal.reviews_data import case_with_scans, model_version, predict

    _, batch, scans = case_with_scans(clinic_a, bob, 2)
    predictions = predict(batch, scans, model_version(), [0.9, 0.2])
    client = client_for(bob)
    assert client.get(reverse("reviews:queue")).status_code == 200
    [queue] = _events("queue_view")
    assert set(queue.extra["scans"]) == {str(scan.pk) for scan in scans}
    review = reverse("reviews:review", args=[predictions[0].public_id])
    assert client.get(review).status_code == 200
    [shown] = _events("scan_view", extra__page="review")
    assert (shown.actor, shown.object_id) == (bob, str(scans[0].pk))
