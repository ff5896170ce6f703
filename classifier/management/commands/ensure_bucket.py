from typing import Any

from django.conf import settings
from django.core.files.storage import storages
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Create the private S3 bucket (S3_BUCKET) when it does not exist yet, and check that the "
        "credentials can write, read and delete in it. Does nothing without S3_BUCKET."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        if not settings.S3_BUCKET:
            self.stdout.write("S3_BUCKET is not set: files are kept on local disk.")
            return
        storage: Any = storages["default"]  # django-storages' S3Storage when S3_BUCKET is set
        client = storage.connection.meta.client
        try:
            names = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
            if settings.S3_BUCKET not in names:
                kwargs: dict[str, Any] = {}
                region = storage.region_name
                if region and region != "us-east-1":
                    kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
                client.create_bucket(Bucket=settings.S3_BUCKET, **kwargs)
                self.stdout.write(f"Created the bucket {settings.S3_BUCKET}.")
            # Never public: block every public ACL and policy where the server supports it.
            try:
                client.put_public_access_block(
                    Bucket=settings.S3_BUCKET,
                    PublicAccessBlockConfiguration={
                        "BlockPublicAcls": True, "IgnorePublicAcls": True,
                        "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
                    },
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in {"NotImplemented", "MethodNotAllowed", "501"}:
                    raise
            key = "ensure-bucket-probe"
            client.put_object(Bucket=settings.S3_BUCKET, Key=key, Body=b"ok")
            client.get_object(Bucket=settings.S3_BUCKET, Key=key)["Body"].read()
            client.delete_object(Bucket=settings.S3_BUCKET, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise CommandError(f"The bucket {settings.S3_BUCKET} is not usable: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(
            f"The bucket {settings.S3_BUCKET} is ready (private; write, read and delete work)."))
