"""Rollout policy as first-class fields (issue 16 item 8): ``SidecarSet.rollout_policy`` and
``SidecarSetRevision.rollout_policy``, filled from the ``rollouts.sidecarhub.io/*`` annotations,
which leave the stored annotations (and the revisions' documents) exactly as an import would.

Self-contained on purpose (no import of the app's code, which may change later): each known
annotation's text becomes the field's canonical value (steps a list, counts ints); a value that
is not valid stays as its text, so publishing that definition answers 400 naming
``rollout_policy.<key>`` and releasing such an old revision fails as it did before (the rules
live in ``sidecarhub.sidecarset.rollout_settings``). Unknown keys under the prefix stay
annotations. Revisions are rewritten here only: their hashes do not cover annotations.
"""

import re

from django.db import migrations, models

PREFIX = "rollouts.sidecarhub.io/"
KEYS = (
    "steps",
    "max_unavailable",
    "failure_threshold",
    "progress_deadline_seconds",
    "pod_timeout_seconds",
    "approval_ttl_seconds",
)
_COUNT = re.compile(r"[0-9]{1,18}")


def _value(text):
    return int(text) if _COUNT.fullmatch(text) else text


def _split(annotations):
    """(annotations without the known rollout keys, the policy they give)."""
    annotations = dict(annotations or {})
    policy = {}
    for key in KEYS:
        text = annotations.pop(PREFIX + key.replace("_", "-"), None)
        text = "" if text is None else str(text).strip()
        if not text:
            continue
        if key == "steps":
            policy[key] = [_value(part) for part in (p.strip() for p in text.split(",")) if part]
        else:
            policy[key] = _value(text)
    return annotations, policy


def _join(annotations, policy):
    annotations = dict(annotations or {})
    for key, value in (policy or {}).items():
        text = ",".join(str(step) for step in value) if isinstance(value, list) else str(value)
        annotations[PREFIX + key.replace("_", "-")] = text
    return annotations


def _with_annotations(document, annotations):
    metadata = dict(document.get("metadata") or {})
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    return {**document, "metadata": metadata}


def annotations_to_fields(apps, schema_editor):
    SidecarSet = apps.get_model("sidecarhub", "SidecarSet")
    Revision = apps.get_model("sidecarhub", "SidecarSetRevision")
    for row in SidecarSet.objects.iterator():
        annotations, policy = _split(row.annotations)
        if policy or annotations != row.annotations:
            SidecarSet.objects.filter(pk=row.pk).update(annotations=annotations, rollout_policy=policy)
    for row in Revision.objects.iterator():
        before = (row.document.get("metadata") or {}).get("annotations") or {}
        annotations, policy = _split(before)
        if annotations != before:
            # The base manager: the app's own refuses updates (revisions are immutable once written).
            Revision._base_manager.filter(pk=row.pk).update(
                document=_with_annotations(row.document, annotations), rollout_policy=policy
            )


def fields_to_annotations(apps, schema_editor):
    SidecarSet = apps.get_model("sidecarhub", "SidecarSet")
    Revision = apps.get_model("sidecarhub", "SidecarSetRevision")
    for row in SidecarSet.objects.iterator():
        if not row.rollout_policy:
            continue
        SidecarSet.objects.filter(pk=row.pk).update(annotations=_join(row.annotations, row.rollout_policy))
    for row in Revision.objects.iterator():
        if not row.rollout_policy:
            continue
        before = (row.document.get("metadata") or {}).get("annotations") or {}
        document = _with_annotations(row.document, _join(before, row.rollout_policy))
        Revision._base_manager.filter(pk=row.pk).update(document=document)


class Migration(migrations.Migration):
    dependencies = [
        ("sidecarhub", "0001_sidecarsets_revisions_changelog"),
    ]

    operations = [
        migrations.AddField(
            model_name="sidecarset",
            name="rollout_policy",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="How releases proceed: steps, max_unavailable, failure_threshold, "
                "progress_deadline_seconds, pod_timeout_seconds, approval_ttl_seconds (only the keys "
                "set; the rest are the hub's defaults). Frozen into each revision at publish",
            ),
        ),
        migrations.AddField(
            model_name="sidecarsetrevision",
            name="rollout_policy",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="The SidecarSet's rollout policy as published: every release of this revision "
                "follows it",
            ),
        ),
        migrations.RunPython(annotations_to_fields, fields_to_annotations),
    ]
