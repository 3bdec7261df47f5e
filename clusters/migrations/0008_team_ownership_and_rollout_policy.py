"""Clusters get an owner team and an approval lifetime in their rollout policy, and the
permission to change that policy (issue 16 item 5). Existing clusters have no team."""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("clusters", "0007_console_verbose_names"),
        ("sidecarhub", "0004_team_ownership"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="cluster",
            options={
                "ordering": ("name",),
                "permissions": [
                    ("hold_cluster", "Can hold a cluster at the revisions it serves (releases skip it)"),
                    (
                        "change_rollout_policy",
                        "Can change a cluster's rollout policy (four eyes, auto-approve, approval lifetime)",
                    ),
                ],
            },
        ),
        migrations.AddField(
            model_name="cluster",
            name="owner_team",
            field=models.ForeignKey(
                blank=True,
                help_text="The team whose people act on this cluster (empty: see sidecarhub.teams)",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="clusters",
                to="sidecarhub.team",
            ),
        ),
        migrations.AddField(
            model_name="cluster",
            name="rollout_approval_ttl_seconds",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Seconds a prepared step waits for approval here; empty: the SidecarSet's or hub's setting",
                null=True,
                validators=[django.core.validators.MinValueValidator(60)],
            ),
        ),
    ]
