"""The admission webhook's per-cluster credential (issue 15).

Clusters registered before this migration get ``webhook_auth_required = False``: their apiservers
have no admission configuration yet, and requiring a token at once would stop injection there
(or, with failurePolicy Fail, pod creation). New clusters default to required (the AlterField).
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('clusters', '0005_serving_revision_and_hold'),
    ]

    operations = [
        migrations.AddField(
            model_name='cluster',
            name='webhook_auth_required',
            field=models.BooleanField(default=False, help_text="Admission calls must carry this cluster's webhook token (answer 401 otherwise)"),
        ),
        migrations.AlterField(
            model_name='cluster',
            name='webhook_auth_required',
            field=models.BooleanField(default=True, help_text="Admission calls must carry this cluster's webhook token (answer 401 otherwise)"),
        ),
        migrations.AddField(
            model_name='cluster',
            name='webhook_token_ciphertext',
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name='cluster',
            name='webhook_token_updated_at',
            field=models.DateTimeField(editable=False, null=True),
        ),
        migrations.AlterField(
            model_name='clusterauditevent',
            name='action',
            field=models.CharField(choices=[('credentials_created', 'Credentials created'), ('credentials_replaced', 'Credentials replaced'), ('encryption_key_rotated', 'Re-encrypted with the newest key'), ('webhook_token_set', 'Webhook token set')], max_length=32),
        ),
    ]
