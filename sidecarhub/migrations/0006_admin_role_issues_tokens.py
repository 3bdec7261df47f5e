"""The ``admin`` role also issues API tokens (``authtoken.add/change/delete/view_token``:
``sidecarhub.roles``), so an organisation admin who is not a superuser can run
``sidecarhub token create``. The viewer role does not get them (token rows hold the keys)."""

from django.db import migrations

from sidecarhub.roles import install_roles


def reinstall_roles(apps, schema_editor):
    install_roles(apps)


class Migration(migrations.Migration):

    dependencies = [
        ("sidecarhub", "0005_ready_made_roles"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    # Reversing keeps the groups as they are (the permissions added do no harm).
    operations = [migrations.RunPython(reinstall_roles, migrations.RunPython.noop)]
