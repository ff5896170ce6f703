"""What the API returns: the same objects the pages show, never a bare result."""

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers

from classifier.models import Label, ModelVersion, Prediction, Review
from classifier.models.predictions import NOT_ASSESSED_TEXT
from portal.accounts.access import CAN_REVIEW
from portal.accounts.models import Clinic
from portal.cases.models import Batch, Case, Scan
from portal.cases.refs import has_control_characters, normalize_patient_ref


class ModelVersionSerializer(serializers.ModelSerializer):
    display_name = serializers.CharField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["id", "architecture", "version", "display_name", "threshold", "is_active", "created_at",
                  "activated_at"]


class TextOnlyField(serializers.CharField):
    """A string, not a number turned into one (a reference sent as 1e999 became "inf")."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class CaseSerializer(serializers.ModelSerializer):
    clinic = serializers.PrimaryKeyRelatedField(queryset=Clinic.objects.none(), required=False)
    patient_ref = TextOnlyField(max_length=64)
    notes = TextOnlyField(max_length=5000, required=False, allow_blank=True)

    class Meta:
        model = Case
        fields = ["id", "clinic", "patient_ref", "notes", "created_at", "last_activity_at"]
        read_only_fields = ["created_at", "last_activity_at"]
        validators: list[Any] = []  # uniqueness is checked case-insensitively in validate()

    def __init__(self, *args: Any, clinics: QuerySet[Clinic] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clinics = Clinic.objects.none() if clinics is None else clinics
        self.fields["clinic"] = serializers.PrimaryKeyRelatedField(queryset=self.clinics, required=False)

    def validate_patient_ref(self, value: str) -> str:
        """The page's rules (portal.cases.refs): one spelling per reference."""
        ref = normalize_patient_ref(value)
        if has_control_characters(ref):
            raise serializers.ValidationError("The patient reference contains control characters.")
        if not ref:
            raise serializers.ValidationError("Enter a patient reference.")
        limit = Case._meta.get_field("patient_ref").max_length or 0
        if len(ref) > limit:  # normalising can lengthen it (NFKC: one ligature, many letters)
            raise serializers.ValidationError(f"Ensure this field has no more than {limit} characters "
                                              f"(it has {len(ref)} once normalised).")
        return ref

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        clinics = self.clinics
        if "clinic" not in data:
            if clinics.count() != 1:
                raise serializers.ValidationError({"clinic": "Say which clinic the case belongs to."})
            data["clinic"] = clinics.get()
        if Case.objects.filter(clinic=data["clinic"], patient_ref__iexact=data["patient_ref"]).exists():
            raise serializers.ValidationError(
                {"patient_ref": "A case with this patient reference already exists in this clinic."}
            )
        return data


class ScanSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="original_name")
    reason = serializers.CharField(source="rejection_reason")

    class Meta:
        model = Scan
        fields = ["id", "position", "name", "status", "reason", "format", "width", "height",
                  "series_description", "plane", "slice_position"]


class BatchSerializer(serializers.ModelSerializer):
    finished = serializers.SerializerMethodField()
    jobs = serializers.SerializerMethodField()
    scans = ScanSerializer(many=True, read_only=True)

    class Meta:
        model = Batch
        fields = ["id", "case", "created_at", "files_received", "accepted_count", "rejected_count",
                  "duplicate_count", "finished", "jobs", "scans"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._jobs_of: dict[Any, list[dict[str, Any]]] = {}  # batch pk -> its jobs, read once

    def _jobs(self, batch: Batch) -> list[dict[str, Any]]:
        from portal.cases.views import _batch_jobs, _job_json

        if batch.pk not in self._jobs_of:
            self._jobs_of[batch.pk] = [_job_json(job) for job in _batch_jobs(batch)]
        return self._jobs_of[batch.pk]

    def get_jobs(self, batch: Batch) -> list[dict[str, Any]]:
        return self._jobs(batch)

    def get_finished(self, batch: Batch) -> bool:
        return all(job["finished"] for job in self._jobs(batch))


class PredictionSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id")
    scan = serializers.UUIDField(source="scan_id")
    scan_name = serializers.CharField(source="scan.original_name")
    model_version = ModelVersionSerializer()
    gate = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = ["id", "scan", "scan_name", "model_version", "probability", "label", "threshold",
                  "assessed", "error", "gate", "round", "created_at"]

    _reviewing_clinics: set[Any] | None = None

    def to_representation(self, instance: Prediction) -> dict[str, Any]:
        data = super().to_representation(instance)
        if not instance.assessed and not self._reviews_in(instance.scan.case.clinic_id):
            data["probability"] = None  # as on the pages: a not-assessed image's P(tumor) is for reviewers
        return data

    def _reviews_in(self, clinic_id: Any) -> bool:
        """Whether the requesting user reviews in that clinic (the clinics are read once per response)."""
        request = self.context.get("request")
        if request is None:
            return False
        if self._reviewing_clinics is None:  # a list's rows share one child serializer
            self._reviewing_clinics = set(
                Clinic.objects.where_role(request.user, CAN_REVIEW).values_list("pk", flat=True)
            )
        return clinic_id in self._reviewing_clinics

    def get_gate(self, prediction: Prediction) -> dict[str, Any] | None:
        """The activation gate's verdict (``assessed``: False when the image does not look
        like the model's training images; then there is no label), where one was recorded."""
        if prediction.error or (prediction.ood_score is None and prediction.assessed):
            return None
        return {
            "assessed": prediction.assessed,
            "ood_score": prediction.ood_score,
            "reason": "" if prediction.assessed else NOT_ASSESSED_TEXT,
            "plausibility": prediction.not_assessed_reason,
        }


class ReviewSerializer(serializers.ModelSerializer):
    prediction = serializers.UUIDField(source="prediction.public_id", read_only=True)
    reviewer = serializers.CharField(source="reviewer.username", read_only=True)

    class Meta:
        model = Review
        fields = ["id", "prediction", "reviewer", "verdict", "label", "note", "created_at"]


class ReviewInputSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=Review.Verdict.choices)
    # The stubs type a Serializer's own `label` (its title); as a declared field it is the API's "label".
    label = serializers.ChoiceField(  # type: ignore[assignment]
        choices=Label.choices, required=False, allow_blank=True)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)
