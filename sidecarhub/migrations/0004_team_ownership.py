"""Teams own SidecarSets (issue 16 item 5): the free-text ``owner_team`` becomes a foreign key
to a new ``Team``; every distinct non-blank text becomes a team (blanks: no team)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def teams_from_owner_text(apps, schema_editor):
    team_model = apps.get_model("sidecarhub", "Team")
    sidecarset_model = apps.get_model("sidecarhub", "SidecarSet")
    for text in sidecarset_model.objects.exclude(owner_team="").values_list("owner_team", flat=True).distinct():
        name = text.strip()
        if not name:
            continue
        team, _ = team_model.objects.get_or_create(name=name)
        sidecarset_model.objects.filter(owner_team=text).update(team=team)


def owner_text_from_teams(apps, schema_editor):
    sidecarset_model = apps.get_model("sidecarhub", "SidecarSet")
    for sidecarset in sidecarset_model.objects.filter(team__isnull=False).select_related("team"):
        sidecarset_model.objects.filter(pk=sidecarset.pk).update(owner_team=sidecarset.team.name)


class Migration(migrations.Migration):

    dependencies = [
        ("sidecarhub", "0003_console_verbose_names"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Team",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(help_text="Shown as the owner team everywhere", max_length=100, unique=True)),
                ("description", models.CharField(blank=True, max_length=300)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "members",
                    models.ManyToManyField(
                        blank=True,
                        help_text="Their roles (groups) apply to this team's SidecarSets and clusters",
                        related_name="teams",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ("name",),
                "permissions": [
                    ("act_for_all_teams", "Can act on every team's SidecarSets and clusters (organisation admin)")
                ],
            },
        ),
        migrations.AddField(
            model_name="sidecarset",
            name="team",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="sidecarhub.team"
            ),
        ),
        migrations.RunPython(teams_from_owner_text, owner_text_from_teams),
        migrations.RemoveField(model_name="sidecarset", name="owner_team"),
        migrations.RenameField(model_name="sidecarset", old_name="team", new_name="owner_team"),
        migrations.AlterField(
            model_name="sidecarset",
            name="owner_team",
            field=models.ForeignKey(
                blank=True,
                help_text="The team whose authors and approvers act on it (empty: see sidecarhub.teams)",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="sidecarsets",
                to="sidecarhub.team",
            ),
        ),
    ]
