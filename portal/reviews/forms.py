from typing import Any

from django import forms

from classifier.models import Label, ModelVersion, Prediction, Review
from portal.list_filters import FilterForm

# Bands of |P(tumor) - 0.5|: how far the model is from a coin toss.
CONFIDENCE_BANDS = {
    "low": (0.0, 0.2, "Low (P between 0.3 and 0.7)"),
    "medium": (0.2, 0.4, "Medium"),
    "high": (0.4, 0.51, "High (P below 0.1 or above 0.9)"),
}
SORTS = {
    "confidence": "Lowest confidence first",
    "newest": "Newest first",
    "oldest": "Oldest first",
}


class QueueFilterForm(FilterForm):
    field_order = ["model_version", "label", "band", "date_from", "date_to", "sort"]

    model_version = forms.ModelChoiceField(
        queryset=ModelVersion.objects.all(), required=False, empty_label="Any model"
    )
    label = forms.ChoiceField(choices=[("", "Any label"), *Label.choices], required=False)
    band = forms.ChoiceField(
        label="Confidence",
        choices=[("", "Any confidence")] + [(k, v[2]) for k, v in CONFIDENCE_BANDS.items()],
        required=False,
    )
    sort = forms.ChoiceField(choices=list(SORTS.items()), required=False)


class ReviewForm(forms.Form):
    """Confirm the model's label or correct it; the prediction itself is never changed."""

    verdict = forms.ChoiceField(choices=Review.Verdict.choices, widget=forms.RadioSelect)
    label = forms.ChoiceField(
        choices=[("", "—"), *Label.choices],
        required=False,
        help_text="The correct label, when correcting.",
    )
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=2000)

    def __init__(self, *args: Any, prediction: Prediction, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prediction = prediction

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        verdict = data.get("verdict")
        predicted = self.prediction.label
        if not predicted:  # not assessed: the model gave no label, the reviewer gives it
            if not data.get("label"):
                self.add_error("label", "The model did not assess this image: choose the correct label.")
            data["verdict"] = Review.Verdict.CORRECTED
            return data
        if verdict == Review.Verdict.CONFIRMED:
            data["label"] = predicted
        elif verdict == Review.Verdict.CORRECTED:
            label = data.get("label") or next(v for v in Label.values if v != predicted)
            if label == predicted:
                self.add_error("label", "A correction must give a label other than the model's.")
            data["label"] = label
        return data
