from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.conf import settings
from django.db.models import QuerySet

from portal.accounts.models import Clinic
from portal.cases.models import Case
from portal.cases.refs import has_control_characters, normalize_patient_ref

if TYPE_CHECKING:
    from classifier.models import ModelVersion


class CaseForm(forms.ModelForm):
    """A new case in one of the clinics where the user may upload."""

    clinic: "forms.ModelChoiceField[Clinic]" = forms.ModelChoiceField(queryset=None, empty_label=None)

    class Meta:
        model = Case
        fields = ["clinic", "patient_ref", "notes"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args: Any, clinics: QuerySet[Clinic], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        clinic = cast(forms.ModelChoiceField, self.fields["clinic"])
        clinic.queryset = clinics
        if clinics.count() == 1:
            clinic.initial = clinics.first()
            clinic.widget = forms.HiddenInput()
        self.fields["patient_ref"].widget.attrs.update(autocomplete="off", autofocus=True)

    existing_case: Case | None = None  # set when the reference is already a case of the chosen clinic

    def clean_patient_ref(self) -> str:
        ref = normalize_patient_ref(self.cleaned_data["patient_ref"])
        if has_control_characters(ref):
            raise forms.ValidationError("The patient reference contains control characters.")
        if not ref:
            raise forms.ValidationError("Enter a patient reference.", code="required")
        return ref

    def validate_unique(self) -> None:
        """Uniqueness is checked once, case-insensitively, in clean() (and by the database)."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        clinic, ref = cleaned.get("clinic"), cleaned.get("patient_ref")
        if clinic and ref:
            self.existing_case = Case.objects.filter(clinic=clinic, patient_ref__iexact=ref).first()
        if self.existing_case is not None:
            self.add_error(
                "patient_ref",
                f"A case with this patient reference already exists in this clinic: "
                f"{self.existing_case.patient_ref}.",
            )
        return cleaned


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Many files in one field (Django docs, "Uploading multiple files").

    Each file is returned as received: its content is judged one by one by the intake, so
    that one bad file becomes one listed rejection, never a refused batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        files = [item for item in (data if isinstance(data, (list, tuple)) else [data]) if item]
        if not files and self.required:
            raise forms.ValidationError("Choose at least one image file.", code="required")
        limit = settings.UPLOAD_MAX_FILES
        if len(files) > limit:
            raise forms.ValidationError(
                f"{len(files)} files were sent; one upload takes at most {limit}. "
                "Split the batch into several uploads.",
                code="too_many",
            )
        return files


def model_choices(active_versions: "Mapping[str, ModelVersion]") -> list[tuple[str, str]]:
    return [(arch, f"{version.display_name}") for arch, version in active_versions.items()]


class UploadForm(forms.Form):
    # A declared field, not the form's own `files` (Django moves declared fields to base_fields).
    files = MultipleFileField(  # type: ignore[assignment]
        label="Scans",
        help_text="JPEG, PNG or MR DICOM (alone or in a .zip), judged by their content.",
        widget=MultipleFileInput(attrs={"accept": "image/jpeg,image/png,application/dicom,.dcm,.zip,application/zip"}),
    )
    models = forms.MultipleChoiceField(
        label="Analyse with", widget=forms.CheckboxSelectMultiple, required=False
    )

    def __init__(self, *args: Any, active_versions: "Mapping[str, ModelVersion]", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.active_versions = active_versions
        models = cast(forms.MultipleChoiceField, self.fields["models"])
        models.choices = model_choices(active_versions)
        models.initial = list(active_versions)
        self.fields["files"].help_text = (
            f"Up to {settings.UPLOAD_MAX_FILES} JPEG, PNG or MR DICOM files of at most "
            f"{settings.UPLOAD_MAX_FILE_BYTES // (1024 * 1024)} MB each, at least "
            f"{settings.UPLOAD_MIN_SIDE_PX} pixels a side, or a .zip of a DICOM series or study; "
            "judged by their content. DICOM is de-identified before it is stored."
        )

    def clean_models(self) -> list[str]:
        chosen = self.cleaned_data["models"]
        if self.active_versions and not chosen:
            raise forms.ValidationError("Choose at least one model.")
        return chosen


class PredictForm(forms.Form):
    """Run the models a batch was not yet analysed with."""

    models = forms.MultipleChoiceField(
        label="Analyse with",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one model to analyse this batch with."},
    )

    def __init__(self, *args: Any, choices: Sequence[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        models = cast(forms.MultipleChoiceField, self.fields["models"])
        models.choices = choices
        models.initial = [value for value, _ in choices]  # as the upload form does
