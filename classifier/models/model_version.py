"""A trained artifact exported by ml/, registered for serving."""

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone


class Architecture(models.TextChoices):
    VGG16 = "vgg16", "VGG16"
    RESNET50 = "resnet50", "ResNet50"


class ModelVersion(models.Model):
    architecture = models.CharField(max_length=20, choices=Architecture.choices)
    version = models.CharField(max_length=40)
    artifact_path = models.CharField(
        max_length=500, help_text="Directory of the ml/ artifact (model.keras + metadata.json)."
    )
    artifact_sha256 = models.CharField(max_length=64)
    artifact_files = models.JSONField(
        default=dict,
        blank=True,
        help_text="File name -> SHA-256 of each artifact file, as stored in the model storage; "
        "workers fetch and verify them by these hashes.",
    )
    metadata = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict, blank=True)
    threshold = models.FloatField()
    is_active = models.BooleanField(default=False)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)
    override_reason = models.TextField(
        blank=True,
        help_text="Why a superuser activated this version although its metrics are below the floors.",
    )
    override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    override_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["architecture", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["architecture", "version"], name="unique_version"),
            models.UniqueConstraint(
                fields=["architecture"],
                condition=models.Q(is_active=True),
                name="one_active_version_per_architecture",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_architecture_display()} {self.version}"

    def gate_shortfalls(self) -> list[str]:
        """Why this version is below the activation floors ([] when it clears them)."""
        from ml.card import gate_shortfalls

        return gate_shortfalls(self.metadata or {}, settings.MODEL_MIN_AUC, settings.MODEL_MIN_ACCURACY)

    @property
    def display_name(self) -> str:
        return str(self)

    @classmethod
    def active(cls, architecture: str) -> "ModelVersion | None":
        return cls.objects.filter(architecture=architecture, is_active=True).first()

    def activate(self) -> None:
        """Make this the active version of its architecture (new jobs only use it)."""
        with transaction.atomic():
            # Lock the architecture's versions (evaluated), so two activations at once queue up
            # instead of one failing on the one-active-version constraint.
            list(ModelVersion.objects.select_for_update().filter(architecture=self.architecture).values_list("pk"))
            ModelVersion.objects.filter(architecture=self.architecture, is_active=True).exclude(
                pk=self.pk
            ).update(is_active=False)
            self.is_active = True
            self.activated_at = timezone.now()
            self.save(update_fields=["is_active", "activated_at"])
