from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "portal.cases"
    label = "cases"
    verbose_name = "Patient cases and scans"

    def ready(self) -> None:
        # Pillow's own decompression-bomb guard, at the portal's pixel limit, for every
        # image this process opens (the intake also checks the limit before decoding).
        from django.conf import settings
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = settings.UPLOAD_MAX_PIXELS
