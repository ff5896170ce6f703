"""How a private file (scan, thumbnail, heatmap) reaches the browser, once the view has
checked clinic membership and written the audit record.

* Object storage (S3_BUCKET set): a 302 to a presigned GET URL that expires after
  S3_URL_EXPIRE_SECONDS, signed for S3_PUBLIC_ENDPOINT_URL. The bytes never pass through
  Django, the bucket stays private (an unsigned, tampered or expired URL is refused by the
  S3 server) and neither the redirect nor the object may be cached.
* Local disk behind nginx (PRIVATE_FILES_ACCEL_PREFIX): X-Accel-Redirect.
* Local disk: streamed by Django.
"""

from functools import lru_cache
from typing import Any, TypeVar

from django.conf import settings
from django.core.files.storage import Storage
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase

NO_STORE = "private, no-store"
R = TypeVar("R", bound=HttpResponseBase)


def private(response: R) -> R:
    response["Cache-Control"] = NO_STORE
    response["X-Content-Type-Options"] = "nosniff"
    return response


def is_object_storage(storage: Storage) -> bool:
    return hasattr(storage, "bucket_name") and hasattr(storage, "querystring_expire")


@lru_cache(maxsize=4)
def _signing_storage(storage_class: Any, options_key: tuple[tuple[str, Any], ...]) -> Any:
    return storage_class(**dict(options_key))


def _signer(storage: Any) -> Any:
    """``storage``, or a twin that signs for the browsers' address of the S3 server."""
    public = settings.S3_PUBLIC_ENDPOINT_URL
    if not public or public == storage.endpoint_url:
        return storage
    options = {
        "bucket_name": storage.bucket_name,
        "location": storage.location,
        "region_name": storage.region_name,
        "endpoint_url": public,
        "access_key": storage.access_key,
        "secret_key": storage.secret_key,
        "signature_version": storage.signature_version,
        "addressing_style": storage.addressing_style,
        "querystring_auth": True,
    }
    return _signing_storage(storage.__class__, tuple(sorted(options.items())))


def presigned_url(storage: Any, name: str, content_type: str, filename: str | None = None) -> str:
    disposition = f'inline; filename="{filename}"' if filename else "inline"
    return _signer(storage).url(
        name,
        parameters={
            "ResponseContentType": content_type,
            "ResponseContentDisposition": disposition,
            "ResponseCacheControl": NO_STORE,
        },
        expire=settings.S3_URL_EXPIRE_SECONDS,
    )


def redirect_to_object(storage: Any, name: str, content_type: str, filename: str | None = None) -> HttpResponseRedirect:
    """302 to a short-lived presigned URL; the redirect itself is never cached."""
    return private(HttpResponseRedirect(presigned_url(storage, name, content_type, filename)))


def serve_file(field_file: FieldFile, content_type: str, filename: str) -> HttpResponseBase:
    """The response for a stored file of a FileField, by the storage it lives in."""
    storage, name = field_file.storage, field_file.name
    if not name:
        raise FileNotFoundError("the field holds no file")
    if is_object_storage(storage):
        return redirect_to_object(storage, name, content_type, filename)
    prefix = settings.PRIVATE_FILES_ACCEL_PREFIX
    if prefix:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + name
        response["Content-Disposition"] = f'inline; filename="{filename}"'
        return private(response)
    return private(
        FileResponse(field_file.open("rb"), content_type=content_type, filename=filename, as_attachment=False)
    )


def serve_stored(storage: Storage, name: str, content_type: str, checked: bool = False) -> HttpResponseBase:
    """A derived file (thumbnail, heatmap) in ``storage``: a redirect to it in object storage,
    else its bytes. FileNotFoundError when it is not there (``checked``: the caller has just
    seen it exist)."""
    if is_object_storage(storage):
        if not checked and not storage.exists(name):
            raise FileNotFoundError(name)
        return redirect_to_object(storage, name, content_type)
    with storage.open(name, "rb") as handle:
        return private(HttpResponse(handle.read(), content_type=content_type))
