"""Training progress as data: the stage and fraction ml reports (ml.progress.ProgressEvent)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("classifier", "0007_artifact_files")]

    operations = [
        migrations.AddField(
            model_name="trainingrun",
            name="stage",
            field=models.CharField(
                blank=True,
                help_text="The training stage ml reported last (ml.progress.ProgressEvent).",
                max_length=40,
            ),
        ),
        migrations.AddField(
            model_name="trainingrun",
            name="fraction",
            field=models.FloatField(default=0.0, help_text="Share of the training done, 0..1, as ml reported it."),
        ),
    ]
