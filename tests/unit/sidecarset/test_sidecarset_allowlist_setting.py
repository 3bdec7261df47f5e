"""The patchPodMetadata allow-list as a hub setting (issue 15): Kruise's ConfigMap JSON
(``SidecarSet_PatchPodMetadata_WhiteList``) in ``SIDECARHUB_PATCH_POD_METADATA_ALLOWLIST``, and
Kruise's gate ``SidecarSetPatchPodMetadataDefaultsAllowed`` in
``SIDECARHUB_PATCH_POD_METADATA_DEFAULTS_ALLOWED`` (default true)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidecarhub.sidecarset import (
    LabelSelector,
    PatchMetadataAllowRule,
    SidecarSet,
    parse_patch_metadata_allowlist,
    parse_sidecarset,
    validate_sidecarset,
)

ROOT = Path(__file__).resolve().parents[3]
KRUISE_EXAMPLE = json.dumps(
    {
        "rules": [
            {"selector": {"matchLabels": {"team": "mesh"}}, "allowedAnnotationKeyExprs": ["^mesh\\.io/.*"]},
            {"allowedAnnotationKeyExprs": ["log"]},
            {"selector": {}, "allowedAnnotationKeyExprs": []},
        ]
    }
)


def test_kruise_configmap_json_becomes_rules() -> None:
    rules = parse_patch_metadata_allowlist(KRUISE_EXAMPLE)
    assert rules == (
        PatchMetadataAllowRule(
            ("^mesh\\.io/.*",), LabelSelector.from_dict({"matchLabels": {"team": "mesh"}})
        ),
        PatchMetadataAllowRule(("log",)),
        PatchMetadataAllowRule(()),  # an empty selector applies to every SidecarSet
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not valid JSON"),
        ("[]", '{"rules": [...]}'),
        ('{"rules": [1]}', "rules[0] must be an object"),
        ('{"rules": [{"allowedAnnotationKeyExprs": "x"}]}', "must be a list of strings"),
        ('{"rules": [{"allowedAnnotationKeyExprs": ["("]}]}', "is not a regular expression"),
        ('{"rules": [{"selector": "team=mesh"}]}', "must be a label selector object"),
        (
            '{"rules": [{"selector": {"matchExpressions": [{"key": "a", "operator": "Nope"}]}}]}',
            "not a valid label selector",
        ),
    ],
)
def test_invalid_values_are_refused_with_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_patch_metadata_allowlist(text)
    assert problem in str(raised.value)


def _patching(labels: dict[str, str], *keys: str) -> SidecarSet:
    return parse_sidecarset(
        {
            "apiVersion": "apps.kruise.io/v1beta1",
            "kind": "SidecarSet",
            "metadata": {"name": "s", "labels": labels},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "containers": [{"name": "c", "image": "i"}],
                "patchPodMetadata": [{"annotations": {key: "v" for key in keys}, "patchPolicy": "Overwrite"}],
            },
        }
    )


def test_kruise_semantics_with_and_without_the_defaults_gate() -> None:
    rules = parse_patch_metadata_allowlist(KRUISE_EXAMPLE)
    mesh = _patching({"team": "mesh"}, "mesh.io/a", "x-log-y")  # unanchored search: "log" matches
    assert (
        validate_sidecarset(mesh, patch_metadata_allowlist=rules, patch_metadata_defaults_allowed=False) == []
    )
    refused = _patching({"team": "mesh"}, "other.io/a")
    errors = validate_sidecarset(refused, patch_metadata_allowlist=rules)
    assert [error.path for error in errors] == ["spec.patchPodMetadata[0].annotations[other.io/a]"]
    only_team_rule = parse_patch_metadata_allowlist(
        '{"rules": [{"selector": {"matchLabels": {"team": "mesh"}}, "allowedAnnotationKeyExprs": ["x"]}]}'
    )
    other_team = _patching({"team": "db"}, "anything")
    # No rule applies: the gate decides (hub default on; Kruise's default off).
    assert validate_sidecarset(other_team, patch_metadata_allowlist=only_team_rule) == []
    assert validate_sidecarset(
        other_team, patch_metadata_allowlist=only_team_rule, patch_metadata_defaults_allowed=False
    )


def _settings_value(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import sidecarhub.settings as s;"
        "print(repr(s.SIDECARHUB_PATCH_POD_METADATA_ALLOWLIST),"
        " s.SIDECARHUB_PATCH_POD_METADATA_DEFAULTS_ALLOWED)"
    )
    base = {key: value for key, value in os.environ.items() if not key.startswith("SIDECARHUB_PATCH_POD")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **base,
            "SIDECARHUB_ENV": "test",
            "SECRET_KEY": "x",
            "SIDECARHUB_ENCRYPTION_KEY": "k",
            "DATABASE_URL": "sqlite:////tmp/unused.sqlite",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_settings_read_the_environment_and_refuse_bad_values() -> None:
    unset = _settings_value({})
    assert unset.returncode == 0, unset.stderr
    assert unset.stdout.split() == ["None", "True"]
    configured = _settings_value(
        {
            "SIDECARHUB_PATCH_POD_METADATA_ALLOWLIST": '{"rules": [{"allowedAnnotationKeyExprs": ["^a$"]}]}',
            "SIDECARHUB_PATCH_POD_METADATA_DEFAULTS_ALLOWED": "false",
        }
    )
    assert configured.returncode == 0, configured.stderr
    assert "allowed_key_patterns=('^a$',)" in configured.stdout and configured.stdout.split()[-1] == "False"
    bad = _settings_value(
        {"SIDECARHUB_PATCH_POD_METADATA_ALLOWLIST": '{"rules": [{"allowedAnnotationKeyExprs": ["("]}]}'}
    )
    assert bad.returncode != 0 and "SIDECARHUB_PATCH_POD_METADATA_ALLOWLIST" in bad.stderr
