from django import forms
from django.conf import settings

from portal.cases.models import Case
from portal.cases.refs import has_control_characters, normalize_patient_ref


class CaseForm(forms.ModelForm):
    """A new case in one of the clinics where the user may upload."""

    clinic = forms.ModelChoiceField(queryset=None, empty_label=None)

    class Meta:
        model = Case
        fields = ["clinic", "patient_ref", "notes"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, clinics, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["clinic"].queryset = clinics
        if clinics.count() == 1:
            self.fields["clinic"].initial = clinics.first()
            self.fields["clinic"].widget = forms.HiddenInput()
        self.fields["patient_ref"].widget.attrs.update(autocomplete="off", autofocus=True)

    existing_case = None  # set when the reference is already a case of the chosen clinic

    def clean_patient_ref(self):
        ref = normalize_patient_ref(self.cleaned_data["patient_ref"])
        if has_control_characters(ref):
            raise forms.ValidationError("The patient reference contains control characters.")
        if not ref:
            raise forms.ValidationError("Enter a patient reference.", code="required")
        return ref

    def validate_unique(self):
        """Uniqueness is checked once, case-insensitively, in clean() (and by the database)."""

    def clean(self):
        cleaned = super().clean()
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

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
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


def model_choices(active_versions):
    return [(arch, f"{version.display_name}") for arch, version in active_versions.items()]


class UploadForm(forms.Form):
    files = MultipleFileField(
        label="Scans",
        help_text="JPEG, PNG or MR DICOM (alone or in a .zip), judged by their content.",
        widget=MultipleFileInput(attrs={"accept": "image/jpeg,image/png,application/dicom,.dcm,.zip,application/zip"}),
    )
    models = forms.MultipleChoiceField(
        label="Analyse with", widget=forms.CheckboxSelectMultiple, required=False
    )

    def __init__(self, *args, active_versions, **kwargs):
        super().__init__(*args, **kwargs)
        self.active_versions = active_versions
        self.fields["models"].choices = model_choices(active_versions)
        self.fields["models"].initial = list(active_versions)
        self.fields["files"].help_text = (
            f"Up to {settings.UPLOAD_MAX_FILES} JPEG, PNG or MR DICOM files of at most "
            f"{settings.UPLOAD_MAX_FILE_BYTES // (1024 * 1024)} MB each, at least "
            f"{settings.UPLOAD_MIN_SIDE_PX} pixels a side, or a .zip of a DICOM series or study; "
            "judged by their content. DICOM is de-identified before it is stored."
        )

    def clean_models(self):
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

    def __init__(self, *args, choices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["models"].choices = choices
        self.fields["models"].initial = [value for value, _ in choices]  # as the upload form does
