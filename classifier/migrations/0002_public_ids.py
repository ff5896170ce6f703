"""Random public ids for jobs and predictions (URLs never show sequential ids), and the
task message that holds a running job.

Unique UUIDs on tables that may already hold rows: add nullable, fill one by one, then
make unique and required (Django docs, "Migrations that add unique fields")."""

import uuid

from django.db import migrations, models


def fill_public_ids(apps, schema_editor):
    for model_name in ("PredictionJob", "TrainingRun", "Prediction"):
        model = apps.get_model("classifier", model_name)
        for pk in model.objects.filter(public_id__isnull=True).values_list("pk", flat=True):
            model.objects.filter(pk=pk).update(public_id=uuid.uuid4())


def public_id_field():
    return models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False, help_text="The id used in URLs."
    )


class Migration(migrations.Migration):

    dependencies = [
        ("classifier", "0001_initial"),
    ]

    operations = [
        *[
            migrations.AddField(
                model_name=name, name="public_id", field=models.UUIDField(null=True, editable=False)
            )
            for name in ("predictionjob", "trainingrun", "prediction")
        ],
        migrations.RunPython(fill_public_ids, migrations.RunPython.noop),
        *[
            migrations.AlterField(model_name=name, name="public_id", field=public_id_field())
            for name in ("predictionjob", "trainingrun", "prediction")
        ],
        *[
            migrations.AddField(
                model_name=name,
                name="worker_task_id",
                field=models.CharField(
                    blank=True,
                    max_length=255,
                    help_text="The task message that holds the running job; a second message "
                    "skips it.",
                ),
            )
            for name in ("predictionjob", "trainingrun")
        ],
    ]
