"""injection.md Appendix A: the worked example, input and the exact expected pod."""

from __future__ import annotations

import jsonpatch
from injection_builders import NOW_TEXT, make_pod, make_sidecarset, run_injection

from sidecarhub.sidecarset import InjectionCandidate, InjectionRevision

DEFAULTED = {
    "imagePullPolicy": "IfNotPresent",
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
}


def _version_env(twin: str) -> list[dict]:
    return [
        {
            "name": "SIDECARSET_VERSION",
            "valueFrom": {
                "fieldRef": {"fieldPath": f"metadata.annotations['version.sidecarset.sidecarhub.io/{twin}']"}
            },
        },
        {
            "name": "SIDECARSET_VERSION_ALT",
            "valueFrom": {
                "fieldRef": {
                    "fieldPath": f"metadata.annotations['versionalt.sidecarset.sidecarhub.io/{twin}']"
                }
            },
        },
    ]


# injection.md Appendix A
def test_appendix_a_worked_example() -> None:
    mesh = make_sidecarset(
        "mesh",
        selector={"matchLabels": {"app": "web"}},
        initContainers=[{"name": "init-net", "image": "init-net:1.0"}],
        containers=[
            {
                "name": "envoy",
                "image": "envoy:1.0",
                "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1.0"},
            },
            {
                "name": "logtail",
                "image": "logtail:1.0",
                "podInjectPolicy": "AfterAppContainer",
                "shareVolumePolicy": {"type": "enabled"},
                "volumeMounts": [{"name": "sidecar-cfg", "mountPath": "/etc/logtail"}],
            },
        ],
        volumes=[
            {"name": "sidecar-cfg", "configMap": {"name": "logtail-config"}},
            {"name": "unused", "emptyDir": {}},
        ],
    )
    candidate = InjectionCandidate(
        latest=InjectionRevision(mesh, name="mesh-5d8f7c9b4", number=1, hash="H1", hash_without_image="H2")
    )
    pod = make_pod(
        name="web-0",
        labels={"app": "web"},
        containers=[
            {
                "name": "app",
                "image": "app:1.0",
                "env": [{"name": "FOO", "value": "1"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }
        ],
        volumes=[{"name": "data", "emptyDir": {}}],
    )

    result = run_injection(pod, candidate)

    is_injected = {"name": "IS_INJECTED", "value": "true"}
    expected = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-0",
            "namespace": "default",
            "labels": {"app": "web"},
            "annotations": {
                "sidecarhub.io/sidecarset-hash": (
                    '{"mesh":{"updateTimestamp":"' + NOW_TEXT + '","hash":"H1","sidecarSetName":"mesh",'
                    '"sidecarList":["envoy","logtail"],"controllerRevision":"mesh-5d8f7c9b4"}}'
                ),
                "sidecarhub.io/sidecarset-hash-without-image": (
                    '{"mesh":{"updateTimestamp":"' + NOW_TEXT + '","hash":"H2","sidecarSetName":"mesh",'
                    '"sidecarList":["envoy","logtail"]}}'
                ),
                "sidecarhub.io/sidecarset-injected-list": "mesh",
                "sidecarhub.io/sidecarset-working-hotupgrade-container": '{"envoy":"envoy-1"}',
                "version.sidecarset.sidecarhub.io/envoy-1": "1",
                "versionalt.sidecarset.sidecarhub.io/envoy-1": "0",
                "version.sidecarset.sidecarhub.io/envoy-2": "0",
                "versionalt.sidecarset.sidecarhub.io/envoy-2": "1",
            },
        },
        "spec": {
            "initContainers": [
                {"name": "init-net", "image": "init-net:1.0", **DEFAULTED, "env": [is_injected]}
            ],
            "containers": [
                {
                    "name": "envoy-1",
                    "image": "envoy:1.0",
                    **DEFAULTED,
                    "env": [is_injected, *_version_env("envoy-1")],
                },
                {
                    "name": "envoy-2",
                    "image": "empty:1.0",
                    **DEFAULTED,
                    "env": [is_injected, *_version_env("envoy-2")],
                },
                {
                    "name": "app",
                    "image": "app:1.0",
                    "env": [{"name": "FOO", "value": "1"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                },
                {
                    "name": "logtail",
                    "image": "logtail:1.0",
                    **DEFAULTED,
                    "volumeMounts": [
                        {"name": "sidecar-cfg", "mountPath": "/etc/logtail"},
                        {"name": "data", "mountPath": "/data"},
                    ],
                    "env": [is_injected],
                },
            ],
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "sidecar-cfg", "configMap": {"name": "logtail-config", "defaultMode": 420}},
            ],
        },
    }
    assert result.pod == expected
    assert result.injected == ("mesh",)
    assert result.warnings == ()
    assert jsonpatch.apply_patch(pod, result.json_patch()) == expected
