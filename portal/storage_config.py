"""The STORAGES setting: private files (scans, thumbnails, heatmaps) and model artifacts.

Without a bucket both live on local disk (MEDIA_ROOT, MODEL_ROOT). With one they live in a
private S3 bucket (any S3-compatible server: AWS, SeaweedFS, MinIO) under ``media/`` and
``models/``, so that web and worker hosts share no disk. Tests build the S3 shape with
the same function against their own SeaweedFS server.
"""


from typing import Any


def s3_options(*, bucket: str, region: str | None, endpoint_url: str | None, access_key: str | None,
               secret_key: str | None, expire_seconds: int, location: str) -> dict[str, Any]:
    return {
        "bucket_name": bucket,
        "region_name": region,
        "endpoint_url": endpoint_url,
        "access_key": access_key,
        "secret_key": secret_key,
        "location": location,
        "default_acl": "private",
        "querystring_auth": True,
        "querystring_expire": expire_seconds,
        "file_overwrite": False,
        "signature_version": "s3v4",
        # S3-compatible servers behind one host name (SeaweedFS, MinIO) want path-style URLs.
        "addressing_style": "path" if endpoint_url else None,
    }


def build_storages(*, media_root: Any, model_root: Any, debug: bool,
                   s3: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """STORAGES for local disk, or for the bucket described by ``s3`` (keyword arguments of
    :func:`s3_options` less ``location``)."""
    default: dict[str, Any]
    models: dict[str, Any]
    if s3:
        from boto3.s3.transfer import TransferConfig

        # Scans, thumbnails and heatmaps are small: each is one request on the calling thread
        # (no s3transfer thread pool per file). Model artifacts (hundreds of MB) keep its threads.
        default = {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {**s3_options(**s3, location="media"), "transfer_config": TransferConfig(use_threads=False)},
        }
        models = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": s3_options(**s3, location="models")}
    else:
        default = {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(media_root), "base_url": None},
        }
        models = {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(model_root), "base_url": None},
        }
    return {
        "default": default,
        "models": models,
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
            if debug
            else "whitenoise.storage.CompressedStaticFilesStorage"
        },
    }


def s3_image_origins(bucket: str | None, public_endpoint_url: str | None, region: str | None) -> list[str]:
    """Origins the browser fetches presigned image URLs from (for CSP img-src)."""
    from urllib.parse import urlsplit

    if public_endpoint_url:
        parts = urlsplit(public_endpoint_url)
        return [f"{parts.scheme}://{parts.netloc}"]
    # AWS itself: virtual-hosted URLs, global or regional.
    origins = [f"https://{bucket}.s3.amazonaws.com"]
    if region:
        origins.append(f"https://{bucket}.s3.{region}.amazonaws.com")
    return origins
