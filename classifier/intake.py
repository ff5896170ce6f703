"""The image intake limits from the settings: one definition for the upload page (portal)
and the worker's engine, so a file accepted at upload is judged the same way when predicted."""

from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from ml.intake import IntakeLimits


def intake_limits() -> "IntakeLimits":
    from ml.intake import IntakeLimits

    return IntakeLimits(
        max_bytes=settings.UPLOAD_MAX_FILE_BYTES,
        max_pixels=settings.UPLOAD_MAX_PIXELS,
        min_side=settings.UPLOAD_MIN_SIDE_PX,
        max_aspect=float(settings.UPLOAD_MAX_ASPECT_RATIO),
        work_budget_bytes=settings.IMAGE_WORK_BUDGET_BYTES,
    )
