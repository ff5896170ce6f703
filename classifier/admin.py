"""Admin for the classifier: registry (import, activate, plots), jobs (re-queue, cancel),
training runs (start, progress), and read-only predictions, reviews and audit events."""

import json
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from classifier.models import (
    Architecture,
    JobStatus,
    ModelVersion,
    Prediction,
    PredictionChunk,
    PredictionJob,
    Review,
    TrainingRun,
)
from classifier.models.jobs import InvalidTransition
from classifier.read_only_admin import ReadOnlyAdminMixin
from classifier.signals import announce
from classifier.training import HED_BACKBONE
from ml.card import build_card, headline_metrics
from portal.accounts.models import Clinic


def _require_superuser(request: HttpRequest) -> User:
    """The signed-in superuser, else PermissionDenied."""
    user = request.user
    if not isinstance(user, User) or not user.is_active or not user.is_superuser:
        raise PermissionDenied("Only superusers manage model versions.")
    return user


# --- Model registry -------------------------------------------------------------------


class ImportArtifactForm(forms.Form):
    path = forms.CharField(
        label="Artifact directory on the server",
        max_length=500,
        help_text="A directory exported by ml/ (model.keras + metadata.json).",
    )
    version = forms.CharField(max_length=40, required=False, help_text="Default: from metadata, else a timestamp.")
    activate = forms.BooleanField(required=False, help_text="Make it the active version now (new jobs only).")
    override_reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Only if its metrics are below the activation floors and you activate it anyway: why (audited).",
    )


class OverrideForm(forms.Form):
    override_reason = forms.CharField(
        label="Reason for activating anyway",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        min_length=10,
        max_length=2000,
        help_text="Kept in the audit trail and shown on the model card.",
    )


def _card_meta(version: ModelVersion) -> dict[str, Any]:
    """The metadata the card and the activation gate read (metrics from the artifact's
    metadata; the stored copy only when the metadata has none)."""
    meta = dict(version.metadata or {})
    if not meta.get("metrics") and version.metrics:
        meta["metrics"] = version.metrics
    return meta


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: versions come only from the import page or ``manage.py import_model``, the
    activate action and the import page make the changes, and predictions keep their
    version (PROTECT), so nothing is deleted here."""

    list_display = ["__str__", "architecture", "version", "is_active", "threshold", "auc", "created_at", "activated_at",
                    "imported_by"]
    list_filter = ["architecture", "is_active"]
    search_fields = ["version", "artifact_sha256"]
    ordering = ["architecture", "-created_at"]
    actions = ["activate_selected"]
    readonly_fields = [
        "architecture", "version", "artifact_path", "artifact_sha256", "threshold", "is_active",
        "imported_by", "created_at", "activated_at", "activation_floors", "override_reason", "override_by",
        "override_at", "model_card", "metrics_table", "plots", "metadata_json",
    ]
    fields = tuple(readonly_fields)
    change_list_template = "admin/classifier/modelversion/change_list.html"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        from classifier.shipped import status

        return super().changelist_view(request, {**(extra_context or {}), "shipped_status": status()})

    @admin.display(description="ROC AUC")
    def auc(self, obj: ModelVersion) -> str:
        """The AUC the activation gate reads (grouped-CV mean, else validation), as the card does."""
        head = headline_metrics(_card_meta(obj))
        if head["auc"] is None:
            return "—"
        return format_html('<span title="{}">{}</span>', head["source"], f"{head['auc']:.3f}")

    @admin.display(description="Activation floors")
    def activation_floors(self, obj: ModelVersion) -> str:
        shortfalls = obj.gate_shortfalls()
        if not shortfalls:
            return "Clears the floors."
        return format_html_join("", "<div class=\"errornote\">{}</div>", ((s,) for s in shortfalls))

    @admin.display(description="Model card")
    def model_card(self, obj: ModelVersion) -> str:
        return format_html('<a href="{}">Model card</a>', reverse("model_card", args=[obj.pk]))

    @admin.display(description="Metrics")
    def metrics_table(self, obj: ModelVersion) -> str:
        """The model card's performance and validation tables (ml.card), not the raw JSON."""
        card = build_card(_card_meta(obj), min_auc=settings.MODEL_MIN_AUC, min_accuracy=settings.MODEL_MIN_ACCURACY)
        parts = []
        for section in card["sections"]:
            table = section.get("table")
            if section["id"] not in ("performance", "validation", "calibration", "ood"):
                continue
            head = ""
            if table:
                head = format_html("<tr>{}</tr>", format_html_join("", "<th>{}</th>", ((h,) for h in table["head"])))
                body = format_html_join(
                    "", "<tr>{}</tr>",
                    ((format_html_join("", "<td>{}</td>", ((c,) for c in row)),) for row in table["rows"]),
                )
            elif section.get("rows"):
                body = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", section["rows"])
            else:  # nothing recorded: the card's sentence says so
                parts.append(format_html_join("", "<p>{}</p>", ((t,) for t in section.get("paragraphs", []))))
                continue
            note = table.get("note", "") if table else ""
            parts.append(format_html(
                '<table class="metrics-compact"><caption>{}</caption>{}{}</table>{}',
                section["title"], head, body, format_html("<p class=\"help\">{}</p>", note) if note else "",
            ))
        return format_html_join("", "{}", ((p,) for p in parts)) if parts else "No metrics recorded."
    @admin.display(description="Plots")
    def plots(self, obj: ModelVersion) -> str:
        from classifier.registry import PLOTS, plot_path

        parts = [
            format_html(
                '<figure class="plot-figure"><img src="{}" alt="{}"><figcaption>{}</figcaption></figure>',
                reverse("admin:classifier_modelversion_plot", args=[obj.pk, kind]),
                kind,
                {"roc": "ROC curve", "confusion": "Confusion matrix"}[kind],
            )
            for kind in PLOTS
            if plot_path(obj, kind)
        ]
        return format_html_join("", "{}", ((p,) for p in parts)) if parts else "No plots in this artifact."

    @admin.display(description="Metadata")
    def metadata_json(self, obj: ModelVersion) -> str:
        return format_html(
            "<details><summary>Full metadata (JSON)</summary><pre>{}</pre></details>",
            json.dumps(obj.metadata, indent=2, sort_keys=True),
        )

    def get_urls(self) -> list[URLPattern]:
        urls = [
            path("import/", self.admin_site.admin_view(self.import_view), name="classifier_modelversion_import"),
            path("<int:pk>/plot/<str:kind>.png", self.admin_site.admin_view(self.plot_view),
                 name="classifier_modelversion_plot"),
        ]
        return urls + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        user = _require_superuser(request)
        from classifier.registry import RegistryError, import_artifact

        form = ImportArtifactForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                version = import_artifact(
                    form.cleaned_data["path"],
                    user=user,
                    activate=form.cleaned_data["activate"],
                    version=form.cleaned_data["version"] or None,
                    request=request,
                    override_reason=form.cleaned_data["override_reason"],
                )
            except RegistryError as exc:
                form.add_error("path", str(exc))
            else:
                state = "and activated it" if version.is_active else "(inactive)"
                self.message_user(request, f"Imported {version} {state}.", messages.SUCCESS)
                return redirect("admin:classifier_modelversion_change", version.pk)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "title": "Import a model artifact"}
        return TemplateResponse(request, "admin/classifier/modelversion/import.html", context)

    def plot_view(self, request: HttpRequest, pk: int, kind: str) -> FileResponse:
        from classifier.registry import plot_response

        version = get_object_or_404(ModelVersion, pk=pk)
        if not self.has_view_permission(request, version):
            raise PermissionDenied
        return plot_response(version, kind)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not request.user.is_superuser:
            actions.pop("activate_selected", None)
        return actions

    @admin.action(description="Activate the selected version (new jobs only)")
    def activate_selected(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> HttpResponse | None:
        user = _require_superuser(request)
        from classifier.registry import ActivationRefused, activate_version

        chosen = list(queryset)
        if len({v.architecture for v in chosen}) != len(chosen):
            self.message_user(request, "Choose at most one version per architecture.", messages.ERROR)
            return None
        below = [(v, v.gate_shortfalls()) for v in chosen if v.gate_shortfalls()]
        form = OverrideForm(request.POST if "confirm_override" in request.POST else None)
        if below and not form.is_valid():
            # An intermediate page: the floors each version misses, and a reason to type.
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Activate below the floors?",
                "below": below,
                "chosen": chosen,
                "form": form,
                "floors": {"auc": settings.MODEL_MIN_AUC, "accuracy": settings.MODEL_MIN_ACCURACY},
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/classifier/modelversion/activate_override.html", context)
        reason = form.cleaned_data["override_reason"] if below else ""
        for version in chosen:
            try:
                activate_version(version, user=user, request=request, override_reason=reason)
            except ActivationRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(request, f"{version} is now active; running and earlier jobs keep their version.",
                              messages.SUCCESS)
        return None


# --- Jobs -----------------------------------------------------------------------------


CHUNK_FIELDS = [
    "round", "index", "status", "worker", "attempt", "interruptions", "heartbeat_at",
    "sent_at", "finished_at", "in_flight", "suspects",
]


class PredictionChunkInline(admin.TabularInline):
    """Which worker holds which slice of the job, and what it is doing."""

    model = PredictionChunk
    readonly_fields = CHUNK_FIELDS
    fields = tuple(CHUNK_FIELDS)
    extra = 0
    can_delete = False
    ordering = ["-round", "index"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PredictionChunk)
class PredictionChunkAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "job", "round", "index", "status", "worker", "attempt", "heartbeat_at"]
    list_filter = ["status"]
    search_fields = ["=job__id", "worker", "worker_task_id"]
    readonly_fields = ["job", *CHUNK_FIELDS, "scan_ids", "worker_task_id"]


@admin.register(PredictionJob)
class PredictionJobAdmin(admin.ModelAdmin):
    list_display = ["id", "batch", "model_version", "status", "attempt", "done", "failed", "total", "created_at",
                    "finished_at"]
    list_filter = ["status", "model_version__architecture", "batch__case__clinic"]
    search_fields = ["=id", "batch__case__patient_ref", "user_error", "admin_error"]
    readonly_fields = [f.name for f in PredictionJob._meta.fields]
    actions = ["requeue", "cancel"]
    list_select_related = ["model_version", "batch__case"]
    inlines = [PredictionChunkInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(
        description="Re-run the selected failed, partial or cancelled jobs (every scan without a result)",
        permissions=["change"],
    )
    def requeue(self, request: HttpRequest, queryset: QuerySet[PredictionJob]) -> None:
        from classifier.jobs import RERUNNABLE, rerun

        done, skipped = 0, []
        for pk in queryset.values_list("pk", flat=True):
            with transaction.atomic():
                job = PredictionJob.objects.select_for_update().select_related("batch__case").get(pk=pk)
                if job.status not in RERUNNABLE:
                    skipped.append(f"#{job.pk} ({job.get_status_display().lower()})")
                    continue
                rerun(job)
                announce("job_requeue", request=request, obj=job, clinic_id=job.batch.case.clinic_id,
                         attempt=job.attempt, round=job.round)
                done += 1
        if done:
            self.message_user(request, f"Re-running {done} job(s).", messages.SUCCESS)
        if skipped:
            self.message_user(request, "Not re-run (only failed, partial or cancelled jobs can be): "
                              f"{', '.join(skipped)}.", messages.WARNING)

    @admin.action(description="Cancel the selected queued or running jobs", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[PredictionJob]) -> None:
        done, skipped = 0, []
        for pk in queryset.values_list("pk", flat=True):
            with transaction.atomic():
                job = PredictionJob.objects.select_for_update().select_related("batch__case").get(pk=pk)
                try:
                    job.set_status(JobStatus.CANCELLED, user_error="Cancelled by an administrator.")
                except InvalidTransition:
                    skipped.append(f"#{job.pk} ({job.get_status_display().lower()})")
                    continue
                announce("job_cancel", request=request, obj=job, clinic_id=job.batch.case.clinic_id)
                done += 1
        if done:
            self.message_user(request, f"Cancelled {done} job(s); a running job stops after its current batch of "
                              "scans.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Not cancelled (already finished): {', '.join(skipped)}.", messages.WARNING)


HED_WEIGHTS = HED_BACKBONE  # resolved to the verified local file by the worker (classifier.training)


class TrainingStartForm(forms.Form):
    architecture = forms.ChoiceField(choices=Architecture.choices)
    epochs = forms.IntegerField(min_value=1, max_value=2000, initial=300,
                                help_text="Epochs of the head on the frozen backbone (early stopping).")
    fine_tune_epochs = forms.IntegerField(min_value=0, max_value=50, initial=0,
                                          help_text="Epochs of fine-tuning the top block afterwards (0: none).")
    input_size = forms.IntegerField(min_value=32, max_value=512, initial=160)
    weights = forms.ChoiceField(
        label="Backbone weights",
        help_text="The local HED-derived VGG16 backbone is the one the shipped model uses (BACKBONE_CACHE_DIR). "
        "ImageNet is offered only where its weights file is present on this server.",
    )
    clinics: "forms.ModelMultipleChoiceField[Clinic]" = forms.ModelMultipleChoiceField(
        queryset=None, required=False, help_text="Reviewed scans of these clinics (default: all clinics)."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelMultipleChoiceField, self.fields["clinics"]).queryset = Clinic.objects.all()
        self.imagenet = imagenet_available()
        choices = [(HED_WEIGHTS, "HED-derived VGG16, local (not ImageNet; the shipped model's backbone; VGG16 only)")]
        choices += [
            (f"imagenet:{arch}", f"ImageNet ({Architecture(arch).label}; weights file present)")
            for arch in self.imagenet
        ]
        choices.append(("none", "None (random initialisation)"))
        cast(forms.ChoiceField, self.fields["weights"]).choices = choices
        self.fields["weights"].initial = HED_WEIGHTS
        self.fields["architecture"].initial = "vgg16"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        arch, weights = cleaned.get("architecture"), cleaned.get("weights")
        if weights == HED_WEIGHTS and arch and arch != "vgg16":
            self.add_error("weights", "The HED-derived backbone is a VGG16: choose VGG16, or other weights.")
        if weights and weights.startswith("imagenet:"):
            if weights != f"imagenet:{arch}":
                self.add_error("weights", "These ImageNet weights belong to another architecture.")
            else:
                cleaned["weights"] = "imagenet"
        return cleaned


def imagenet_available() -> list[str]:
    """The architectures whose genuine Keras ImageNet weights file is on this server."""
    from ml.backbones import imagenet_file

    found = []
    for arch in Architecture.values:
        configured = settings.RESNET50_IMAGENET_WEIGHTS if arch == "resnet50" else None
        path, _ = imagenet_file(arch, configured or None)
        if path is not None:
            found.append(arch)
    return found


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "architecture", "status", "percent", "requested_by", "created_at", "finished_at",
                    "result_version"]
    list_filter = ["status", "architecture"]
    search_fields = ["=id", "log", "user_error"]
    readonly_fields = [f.name for f in TrainingRun._meta.fields]
    change_form_template = "admin/classifier/trainingrun/change_form.html"
    change_list_template = "admin/classifier/trainingrun/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs start from the "Start training" page

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            path("start/", self.admin_site.admin_view(self.start_view), name="classifier_trainingrun_start"),
            path("<int:pk>/status.json", self.admin_site.admin_view(self.status_view),
                 name="classifier_trainingrun_status"),
        ] + super().get_urls()

    def start_view(self, request: HttpRequest) -> HttpResponse:
        user = _require_superuser(request)
        from classifier.training import TrainingError, reviewed_counts, start_training

        form = TrainingStartForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                run = start_training(
                    user=user,
                    architecture=data["architecture"],
                    options={
                        "epochs": data["epochs"],
                        "fine_tune_epochs": data["fine_tune_epochs"],
                        "input_size": data["input_size"],
                        "weights": data["weights"],
                    },
                    clinics=list(data["clinics"]) or None,
                    request=request,
                )
            except TrainingError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, "Training started; the new version stays inactive until you activate it.",
                                  messages.SUCCESS)
                return redirect("admin:classifier_trainingrun_change", run.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "counts": reviewed_counts(),
            "title": "Train a new model version on reviewed scans",
        }
        return TemplateResponse(request, "admin/classifier/trainingrun/start.html", context)

    def status_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        run = get_object_or_404(TrainingRun, pk=pk)
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return JsonResponse(
            {
                "status": run.status,
                "status_display": run.get_status_display(),
                "done": run.done,
                "total": run.total,
                "percent": run.percent,
                "stage": run.stage,
                "fraction": run.fraction,
                "finished": run.is_finished,
                "error": run.user_error,
                "log": run.log[-4000:],
                "result_version": str(run.result_version) if run.result_version_id else None,
                "result_url": reverse("admin:classifier_modelversion_change", args=[run.result_version_id])
                if run.result_version_id
                else None,
            }
        )


# --- Read-only records ----------------------------------------------------------------


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "scan", "model_version", "probability", "label", "threshold", "error", "created_at"]
    list_filter = ["label", "model_version", "scan__case__clinic"]
    search_fields = ["=id", "scan__original_name", "scan__case__patient_ref", "error"]
    list_select_related = ["scan", "model_version"]
    date_hierarchy = "created_at"


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "scan", "prediction", "reviewer", "verdict", "label", "created_at"]
    list_filter = ["verdict", "label", "prediction__model_version", "scan__case__clinic"]
    search_fields = ["reviewer__username", "scan__original_name", "scan__case__patient_ref", "note"]
    list_select_related = ["scan", "reviewer", "prediction__model_version"]
    date_hierarchy = "created_at"
