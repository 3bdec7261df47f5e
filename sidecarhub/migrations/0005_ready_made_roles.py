"""The ready-made roles (issue 16 item 5): groups viewer, author, approver, operator and admin
with the permissions ``sidecarhub.roles`` lists (its docstring documents each)."""

from django.db import migrations

from sidecarhub.roles import install_roles


def create_roles(apps, schema_editor):
    install_roles(apps)


class Migration(migrations.Migration):

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("sidecarhub", "0004_team_ownership"),
        ("clusters", "0008_team_ownership_and_rollout_policy"),
        ("rollouts", "0010_rollout_planned_pods"),
        # install_roles reads authtoken's permissions (the admin role's, since 0006)
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    # Reversing keeps the groups: people may have been added to them since.
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
