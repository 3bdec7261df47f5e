from django.db import migrations, models


class Migration(migrations.Migration):
    """Progress totals over all steps: the pods a rollout updates in place, counted when each of
    its steps is prepared (not only the pods of the steps prepared so far)."""

    dependencies = [
        ("rollouts", "0009_console_verbose_names"),
    ]

    operations = [
        migrations.AddField(
            model_name="rollout",
            name="planned_pods",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Pods the whole rollout updates in place, as counted when its latest step was "
                "prepared (its pods updated so far plus the in-place candidates left); empty until then",
                null=True,
            ),
        ),
    ]
