"""REST API (/api/v1/): the same access rules (``portal.accounts.access``), roles, intake
and audit as the pages.

An object of another clinic answers 404, like a missing one; a member without the role
gets 403. Uploads go through the page's form (same limits) and ``ingest``."""

from collections.abc import Collection
from typing import Any, cast

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import QueryDict
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from classifier.models import ModelVersion, Prediction, Review
from portal.accounts.access import CAN_REVIEW, CAN_UPLOAD, get_for, require_role
from portal.accounts.models import Clinic, Role
from portal.api.serializers import (
    BatchSerializer,
    CaseSerializer,
    ModelVersionSerializer,
    PredictionSerializer,
    ReviewInputSerializer,
    ReviewSerializer,
)
from portal.api.throttles import ApiUploadThrottle
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.cases.dicom_intake import UploadRefused
from portal.cases.forms import UploadForm
from portal.cases.models import Batch, Case
from portal.cases.refs import normalize_patient_ref
from portal.cases.uploads import active_versions, ingest
from portal.reviews.queue import lowest_confidence_first, review_queue

NO_CASE_CLINIC = "You are not a member of a clinic where you may create cases."


def _user(request: Request) -> User:
    """The signed-in user: REST_FRAMEWORK's default permission, IsAuthenticated, lets no one else in."""
    return cast(User, request.user)


@extend_schema_view(get=extend_schema(parameters=[OpenApiParameter(
    "patient_ref", str, description="Only the case with this patient reference (any letter case; "
    "normalised as references are stored, so full-width digits and the like match)")]))
class CaseList(generics.ListCreateAPIView):
    """Cases of your clinics (newest activity first); create one in a clinic where you may upload."""

    serializer_class = CaseSerializer

    def get_queryset(self) -> QuerySet[Case]:
        if getattr(self, "swagger_fake_view", False):
            return Case.objects.none()
        cases = Case.objects.for_user(self.request.user).order_by("-last_activity_at", "-created_at")
        if ref := self.request.query_params.get("patient_ref"):  # spelt as references are stored
            cases = cases.filter(patient_ref__iexact=normalize_patient_ref(ref))
        return cases

    def get_serializer(self, *args: Any, **kwargs: Any) -> CaseSerializer:
        if getattr(self, "swagger_fake_view", False):  # schema generation, no user
            return CaseSerializer(*args, **kwargs)
        return CaseSerializer(*args, clinics=Clinic.objects.where_role(_user(self.request), CAN_UPLOAD), **kwargs)

    def perform_create(self, serializer: BaseSerializer[Case]) -> None:
        require_role(_user(self.request), CAN_UPLOAD, message=NO_CASE_CLINIC)
        try:
            with transaction.atomic():
                case = serializer.save(created_by=_user(self.request))
                record(self.request, AuditEvent.Action.CASE_CREATE, obj=case, clinic=case.clinic, via="api")
        except IntegrityError:
            raise ValidationError(
                {"patient_ref": "A case with this patient reference already exists in this clinic."}
            ) from None


class CaseDetail(APIView):
    @extend_schema(responses=CaseSerializer, operation_id="v1_case_detail")
    def get(self, request: Request, case_id: str) -> Response:
        case = get_for(_user(request), Case.objects, pk=case_id)
        record(request, AuditEvent.Action.CASE_VIEW, obj=case, clinic=case.clinic, via="api")
        return Response(CaseSerializer(case).data)


class CaseBatches(generics.ListAPIView):
    """GET: the case's uploads. POST (multipart): upload many files as one batch, exactly as
    the page does — fields ``files`` (repeated) and ``models`` (repeated; default: every
    active model). DICOM, .zip series and JPEG/PNG are judged by content."""

    serializer_class = BatchSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_throttles(self) -> list[BaseThrottle]:
        throttles = super().get_throttles()
        return throttles + [ApiUploadThrottle()] if self.request.method == "POST" else throttles

    def get_queryset(self) -> QuerySet[Batch]:
        if getattr(self, "swagger_fake_view", False):
            return Batch.objects.none()
        case = get_for(_user(self.request), Case.objects, pk=self.kwargs["case_id"])
        return case.batches.prefetch_related("scans").order_by("-created_at")

    @extend_schema(
        request={"multipart/form-data": {"type": "object", "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "models": {"type": "array", "items": {"type": "string"}}}}},
        responses={201: BatchSerializer},
    )
    def post(self, request: Request, case_id: str) -> Response:
        case = get_for(_user(request), Case.objects, pk=case_id, roles=CAN_UPLOAD)
        versions = active_versions()
        # What MultiPartParser and FormParser give; a request without a body gives a plain {}.
        data = request.data.copy() if isinstance(request.data, QueryDict) else QueryDict(mutable=True)
        if not data.getlist("models"):
            data.setlist("models", list(versions))
        form = UploadForm(data, request.FILES, active_versions=versions)
        if not form.is_valid():
            return Response(form.errors.get_json_data(), status=status.HTTP_400_BAD_REQUEST)
        try:
            result = ingest(case, _user(request), form.cleaned_data["files"], form.cleaned_data["models"])
        except UploadRefused as exc:
            return Response({"detail": exc.message}, status=status.HTTP_400_BAD_REQUEST)
        batch = result.batch
        record(
            request, AuditEvent.Action.UPLOAD, obj=batch, clinic=case.clinic, case=str(case.pk),
            files=batch.files_received, accepted=batch.accepted_count, rejected=batch.rejected_count,
            duplicates=batch.duplicate_count, models=[job.model_version.display_name for job in result.jobs],
            via="api",
        )
        body = BatchSerializer(batch).data
        body["missing_models"] = result.missing_models
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": f"/api/v1/batches/{batch.pk}/"})


class BatchDetail(APIView):
    """One upload: its counts, every file's verdict, and the progress of its analyses."""

    @extend_schema(responses=BatchSerializer)
    def get(self, request: Request, batch_id: str) -> Response:
        batch = get_for(_user(request), Batch.objects.select_related("uploaded_by"), pk=batch_id)
        return Response(BatchSerializer(batch).data)


class BatchPredictions(generics.ListAPIView):
    """Predictions of a batch's scans (each with its model version, probability, label and
    threshold; failed attempts carry their error)."""

    serializer_class = PredictionSerializer

    def get_queryset(self) -> QuerySet[Prediction]:
        if getattr(self, "swagger_fake_view", False):
            return Prediction.objects.none()
        batch = get_for(_user(self.request), Batch.objects, pk=self.kwargs["batch_id"])
        record(self.request, AuditEvent.Action.CASE_VIEW, obj=batch.case, clinic=batch.case.clinic,
               batch=str(batch.pk), via="api")
        return (Prediction.objects.filter(scan__batch=batch).select_related("scan__case", "model_version")
                .order_by("scan__position", "model_version__architecture", "created_at"))


def _get_prediction(user: User, prediction_id: str, roles: Collection[Role] | None = None) -> Prediction:
    return get_for(user, Prediction.objects.select_related("model_version"), public_id=prediction_id, roles=roles)


class PredictionDetail(APIView):
    @extend_schema(responses=PredictionSerializer)
    def get(self, request: Request, prediction_id: str) -> Response:
        prediction = _get_prediction(_user(request), prediction_id)
        return Response(PredictionSerializer(prediction, context={"request": request}).data)


class PredictionReviews(generics.ListAPIView):
    """GET: every review of a prediction. POST (reviewers): confirm or correct it, once."""

    serializer_class = ReviewSerializer

    def get_queryset(self) -> QuerySet[Review]:
        if getattr(self, "swagger_fake_view", False):
            return Review.objects.none()
        prediction = _get_prediction(_user(self.request), self.kwargs["prediction_id"])
        return prediction.reviews.select_related("reviewer", "prediction").order_by("created_at", "id")

    @extend_schema(request=ReviewInputSerializer, responses={201: ReviewSerializer})
    def post(self, request: Request, prediction_id: str) -> Response:
        from portal.reviews.forms import ReviewForm
        from portal.reviews.views import _save_review

        prediction = _get_prediction(_user(request), prediction_id, roles=CAN_REVIEW)
        if prediction.error or prediction.scan.status != "accepted":
            return Response({"detail": "This prediction cannot be reviewed."}, status=status.HTTP_400_BAD_REQUEST)
        ReviewInputSerializer(data=request.data).is_valid(raise_exception=True)
        form = ReviewForm(request.data, prediction=prediction)
        if not form.is_valid():
            return Response(form.errors.get_json_data(), status=status.HTTP_400_BAD_REQUEST)
        created = _save_review(request, prediction, form.cleaned_data)
        if created is None:
            return Response({"detail": "You have already reviewed this prediction; your earlier verdict stands."},
                            status=status.HTTP_409_CONFLICT)
        return Response(ReviewSerializer(created).data, status=status.HTTP_201_CREATED)


class ReviewQueue(generics.ListAPIView):
    """Predictions waiting for a review in the clinics where you review (lowest confidence first)."""

    serializer_class = PredictionSerializer

    def get_queryset(self) -> QuerySet[Prediction]:
        if getattr(self, "swagger_fake_view", False):
            return Prediction.objects.none()
        require_role(_user(self.request), CAN_REVIEW, message="Your role does not allow reviewing.")
        return lowest_confidence_first(review_queue(_user(self.request)).select_related("scan__case", "model_version"))


class ModelVersionList(generics.ListAPIView):
    serializer_class = ModelVersionSerializer
    queryset = ModelVersion.objects.order_by("architecture", "-created_at")


