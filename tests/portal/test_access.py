"""The access layer itself: every model's ``objects.for_user``, the one ``get_for`` and the
``role_required`` decorator (portal/accounts/access.py). The pages' behaviour is walked URL
by URL in test_isolation.py and test_roles.py; this checks the rows.

Clinic A: alice clinician, bob reviewer, carol admin. Clinic B: mallory clinician. root is
a superuser."""

import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.test import RequestFactory

from tests.portal.reviews_data import case_with_scans, model_version, predict

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_clinics(clinic_a, clinic_b, alice, bob, mallory):
    """One of each clinic-scoped row in each clinic: case, batch, scan, job, prediction, review."""
    from classifier.models import Review

    version = model_version()
    rows = {}
    for clinic, uploader, reviewer in ((clinic_a, alice, bob), (clinic_b, mallory, mallory)):
        case, batch, scans = case_with_scans(clinic, uploader, 1)
        (prediction,) = predict(batch, scans, version, [0.8])
        review = Review.objects.create(
            prediction=prediction, scan=scans[0], reviewer=reviewer, verdict="confirmed", label="tumor"
        )
        rows[clinic.slug] = {
            "Clinic": clinic, "Case": case, "Batch": batch, "Scan": scans[0],
            "PredictionJob": prediction.job, "Prediction": prediction, "Review": review,
        }
    return rows


def _models():
    from classifier.models import Prediction, PredictionJob, Review
    from portal.accounts.models import Clinic
    from portal.cases.models import Batch, Case, Scan

    return [Clinic, Case, Batch, Scan, PredictionJob, Prediction, Review]


def test_a_member_sees_only_the_rows_of_their_clinic(two_clinics, alice, mallory):
    for model in _models():
        name = model.__name__
        assert list(model.objects.for_user(alice)) == [two_clinics["clinic-a"][name]], name
        assert list(model.objects.for_user(mallory)) == [two_clinics["clinic-b"][name]], name


def test_a_superuser_sees_every_clinics_rows_and_an_anonymous_user_none(two_clinics, root):
    for model in _models():
        name = model.__name__
        expected = {two_clinics["clinic-a"][name].pk, two_clinics["clinic-b"][name].pk}
        assert set(model.objects.for_user(root).values_list("pk", flat=True)) == expected, name
        assert not model.objects.for_user(AnonymousUser()).exists(), name


def test_for_user_narrows_any_queryset_and_follows_membership_changes(two_clinics, alice, clinic_b):
    from portal.accounts.models import Membership
    from portal.cases.models import Scan

    assert not Scan.objects.filter(status="rejected").for_user(alice).exists()
    Membership.objects.create(user=alice, clinic=clinic_b, role="clinician")
    assert Scan.objects.for_user(alice).count() == 2


def test_where_role_keeps_the_clinics_where_the_user_holds_the_role(two_clinics, alice, bob, carol, root):
    from portal.accounts.access import CAN_ADMINISTER, CAN_REVIEW, CAN_UPLOAD
    from portal.accounts.models import Clinic

    a = two_clinics["clinic-a"]["Clinic"]
    assert list(Clinic.objects.where_role(alice, CAN_UPLOAD)) == [a]
    assert not Clinic.objects.where_role(alice, CAN_REVIEW).exists()
    assert list(Clinic.objects.where_role(bob, CAN_REVIEW)) == [a]
    assert not Clinic.objects.where_role(bob, CAN_ADMINISTER).exists()
    assert list(Clinic.objects.where_role(carol, CAN_ADMINISTER)) == [a]
    assert Clinic.objects.where_role(root, CAN_ADMINISTER).count() == 2
    assert not Clinic.objects.where_role(AnonymousUser(), CAN_UPLOAD).exists()


def test_get_for_answers_404_alike_for_another_clinic_a_missing_and_a_malformed_id(two_clinics, alice):
    from portal.accounts.access import get_for
    from portal.cases.models import Case

    own, other = two_clinics["clinic-a"]["Case"], two_clinics["clinic-b"]["Case"]
    assert get_for(alice, Case.objects, pk=own.pk) == own
    for key in (other.pk, uuid.uuid4(), "not-a-uuid"):
        with pytest.raises(Http404):
            get_for(alice, Case.objects, pk=key)


def test_get_for_checks_the_role_in_the_objects_clinic_after_the_clinic(two_clinics, alice, bob, mallory, root):
    from classifier.models import Prediction
    from portal.accounts.access import CAN_ADMINISTER, CAN_REVIEW, get_for
    from portal.accounts.models import Clinic

    prediction = two_clinics["clinic-a"]["Prediction"]
    public_id = prediction.public_id
    assert get_for(bob, Prediction.objects, public_id=public_id, roles=CAN_REVIEW) == prediction
    assert get_for(root, Prediction.objects, public_id=public_id, roles=CAN_REVIEW) == prediction
    with pytest.raises(PermissionDenied):  # a member of its clinic without the role: 403
        get_for(alice, Prediction.objects, public_id=public_id, roles=CAN_REVIEW)
    with pytest.raises(Http404):  # another clinic: 404 before any role is asked
        get_for(mallory, Prediction.objects, public_id=public_id, roles=CAN_REVIEW)
    clinic = two_clinics["clinic-a"]["Clinic"]
    with pytest.raises(PermissionDenied):
        get_for(bob, Clinic.objects, pk=clinic.pk, roles=CAN_ADMINISTER)
    with pytest.raises(Http404):
        get_for(mallory, Clinic.objects, pk=clinic.pk, roles=CAN_ADMINISTER)


def test_get_for_reads_the_clinic_for_the_role_check_in_its_one_query(
    two_clinics, bob, django_assert_num_queries
):
    from classifier.models import Prediction
    from portal.accounts.access import CAN_REVIEW, get_for

    public_id = two_clinics["clinic-a"]["Prediction"].public_id
    with django_assert_num_queries(2):  # the prediction with its clinic, then bob's role there
        prediction = get_for(bob, Prediction.objects, public_id=public_id, roles=CAN_REVIEW)
    with django_assert_num_queries(0):
        assert prediction.scan.case.clinic.slug == "clinic-a"


def test_role_required_refuses_a_user_without_the_role_in_any_clinic(two_clinics, alice, bob, mallory):
    from portal.accounts.access import CAN_REVIEW, role_required

    @role_required(CAN_REVIEW, "Reviewers only.")
    def view(request):
        return HttpResponse("ok")

    request = RequestFactory().get("/")
    for user in (alice, mallory):
        request.user = user
        with pytest.raises(PermissionDenied, match="Reviewers only."):
            view(request)
    request.user = bob
    assert view(request).content == b"ok"
