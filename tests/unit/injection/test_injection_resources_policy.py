"""injection.md §14.2: resourcesPolicy scenarios from Kruise's ``sidecarset_resources_test.go``."""

from __future__ import annotations

from typing import Any

import pytest
from injection_builders import by_name, container, make_pod, make_sidecarset, run_injection

from sidecarhub.sidecarset import InjectionError


def _resources(
    limits: dict[str, str] | None = None, requests: dict[str, str] | None = None
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    return {"resources": resources}


def _policy(
    mode: str, regex: str, limits: dict | None = None, requests: dict | None = None
) -> dict[str, Any]:
    expressions: dict[str, Any] = {}
    if limits is not None:
        expressions["limits"] = limits
    if requests is not None:
        expressions["requests"] = requests
    return {"targetContainersMode": mode, "targetContainersNameRegex": regex, "resourcesExpr": expressions}


def _sidecar_resources(pod: dict, policy: dict, *, native_init: bool = False) -> dict[str, Any]:
    """The resources the policy gives a sidecar named ``sidecar1`` in ``pod``."""
    if native_init:
        sidecarset = make_sidecarset(
            initContainers=[container("sidecar1", restartPolicy="Always", resourcesPolicy=policy)],
            updateStrategy={"type": "NotUpdate"},
        )
        return by_name(run_injection(pod, sidecarset), "sidecar1", "initContainers")["resources"]
    sidecarset = make_sidecarset(containers=[container("sidecar1", resourcesPolicy=policy)])
    return by_name(run_injection(pod, sidecarset), "sidecar1")["resources"]


# §14.2 scenario 27
def test_sum_over_all_containers() -> None:
    pod = make_pod(
        containers=[
            container(
                "app1", **_resources({"cpu": "200m", "memory": "200Mi"}, {"cpu": "50m", "memory": "100Mi"})
            ),
            container(
                "app2", **_resources({"cpu": "400m", "memory": "400Mi"}, {"cpu": "100m", "memory": "200Mi"})
            ),
        ]
    )
    policy = _policy(
        "sum",
        ".*",
        limits={"cpu": "cpu*50%", "memory": "200Mi"},
        requests={"cpu": "cpu*50%", "memory": "100Mi"},
    )
    assert _sidecar_resources(pod, policy) == {
        "limits": {"cpu": "300m", "memory": "200Mi"},
        "requests": {"cpu": "75m", "memory": "100Mi"},
    }


def _engine_pod() -> dict:
    return make_pod(
        containers=[
            container("large.engine.v4", **_resources({"cpu": "200m"}, {"cpu": "50m"})),
            container("large.engine.v8", **_resources({"cpu": "400m"}, {"cpu": "100m"})),
            container("small.engine", **_resources({"cpu": "4"}, {"cpu": "2"})),
        ]
    )


# §14.2 scenario 28
def test_max_over_containers_matching_the_regex() -> None:
    policy = _policy(
        "max",
        "^large.engine.v.*$",
        limits={"cpu": "max(cpu*50%, 50m)"},
        requests={"cpu": "max(cpu*50%, 50m)"},
    )
    assert _sidecar_resources(_engine_pod(), policy) == {
        "limits": {"cpu": "200m"},
        "requests": {"cpu": "50m"},
    }


# §14.2 scenario 29
def test_sum_over_a_single_regex_match() -> None:
    policy = _policy(
        "sum", "^large.engine.v4$", limits={"cpu": "max(cpu*50%, 50m)"}, requests={"cpu": "max(cpu*50%, 50m)"}
    )
    assert _sidecar_resources(_engine_pod(), policy) == {
        "limits": {"cpu": "100m"},
        "requests": {"cpu": "50m"},
    }


# §14.2 scenario 30
def test_regex_matching_no_container_refuses_the_pod() -> None:
    policy = _policy("sum", "^nothing-matches$", limits={"cpu": "cpu*50%"})
    with pytest.raises(InjectionError, match="no containers match"):
        _sidecar_resources(_engine_pod(), policy)


ALL_30_PERCENT = {"cpu": "cpu*30%", "memory": "memory*30%"}


# §14.2 scenario 31
def test_sum_with_one_container_without_cpu_limit_sets_no_cpu_limit() -> None:
    pod = make_pod(
        containers=[
            container("app1", **_resources({"memory": "200Mi"}, {"cpu": "50m", "memory": "100Mi"})),
            container(
                "app2", **_resources({"cpu": "400m", "memory": "400Mi"}, {"cpu": "100m", "memory": "100Mi"})
            ),
        ]
    )
    policy = _policy("sum", ".*", limits=ALL_30_PERCENT, requests=ALL_30_PERCENT)
    assert _sidecar_resources(pod, policy) == {
        "limits": {"memory": "180Mi"},
        "requests": {"cpu": "45m", "memory": "60Mi"},
    }


# §14.2 scenario 32
def test_max_with_one_container_without_memory_limit_sets_no_memory_limit() -> None:
    pod = make_pod(
        containers=[
            container("app1", **_resources({"cpu": "400m"}, {"cpu": "125m", "memory": "50Mi"})),
            container(
                "app2", **_resources({"cpu": "200m", "memory": "200Mi"}, {"cpu": "100m", "memory": "25Mi"})
            ),
        ]
    )
    forty = {"cpu": "cpu*40%", "memory": "memory*40%"}
    assert _sidecar_resources(pod, _policy("max", ".*", limits=forty, requests=forty)) == {
        "limits": {"cpu": "160m"},
        "requests": {"cpu": "50m", "memory": "20Mi"},
    }


# §14.2 scenario 33
def test_sum_with_one_container_without_requests_counts_it_as_zero() -> None:
    pod = make_pod(
        containers=[
            container("app1", **_resources({"cpu": "100m", "memory": "100Mi"})),
            container(
                "app2", **_resources({"cpu": "200m", "memory": "200Mi"}, {"cpu": "100m", "memory": "200Mi"})
            ),
        ]
    )
    policy = _policy("sum", ".*", requests={"cpu": "cpu*30%", "memory": "memory*10%"})
    assert _sidecar_resources(pod, policy) == {"requests": {"cpu": "30m", "memory": "20Mi"}}


# §14.2 scenario 34
def test_native_sidecar_init_container_as_policy_owner() -> None:
    pod = make_pod(
        init_containers=[
            container(
                "app1",
                restartPolicy="Always",
                **_resources({"cpu": "1", "memory": "2000Mi"}, {"cpu": "200m", "memory": "300Mi"}),
            ),
            # A plain init container is never a target, whatever it asks for.
            container(
                "plain-init", **_resources({"cpu": "8", "memory": "8Gi"}, {"cpu": "8", "memory": "8Gi"})
            ),
        ],
        containers=[
            container(
                "app2", **_resources({"cpu": "500m", "memory": "1000Mi"}, {"cpu": "100m", "memory": "100Mi"})
            )
        ],
    )
    policy = _policy(
        "max",
        ".*",
        limits={"cpu": "max(cpu*30%,50m)", "memory": "max(memory*25%,100Mi)"},
        requests={"cpu": "cpu*50%", "memory": "memory*50%"},
    )
    assert _sidecar_resources(pod, policy, native_init=True) == {
        "limits": {"cpu": "300m", "memory": "500Mi"},
        "requests": {"cpu": "100m", "memory": "150Mi"},
    }


# §14.2 scenario 35
def test_target_selection_excludes_sidecarset_containers_and_plain_init_containers() -> None:
    hundred = _resources(requests={"cpu": "100m"})
    pod = make_pod(
        init_containers=[
            container("init-sidecar1", restartPolicy="Always", **hundred),  # a name of the SidecarSet
            container("native-init", restartPolicy="Always", **hundred),
            container("plain-init", **hundred),
        ],
        containers=[
            container("sidecar1", **hundred),
            container("app1", **hundred),
            container("app2", **hundred),
        ],
    )
    sidecarset = make_sidecarset(
        initContainers=[container("init-sidecar1", restartPolicy="Always")],
        containers=[container("sidecar1", resourcesPolicy=_policy("sum", ".*", requests={"cpu": "cpu"}))],
        updateStrategy={"type": "NotUpdate"},
    )
    result = run_injection(pod, sidecarset)
    # Three targets of 100m each: native-init, app1, app2.
    assert by_name(result, "sidecar1")["resources"] == {"requests": {"cpu": "300m"}}


# §14.2 scenario 36
@pytest.mark.parametrize(
    ("kind", "resource", "expression", "aggregate", "expected"),
    [
        pytest.param("limits", "cpu", "", "200m", None, id="empty-limit-is-unset"),
        pytest.param("requests", "cpu", "", "200m", None, id="empty-request-is-unset"),
        pytest.param("limits", "cpu", "cpu*50%", "200m", "100m", id="cpu-half"),
        pytest.param("limits", "memory", "memory*30%", "600Mi", "180Mi", id="memory-30%"),
        pytest.param("limits", "cpu", "max(cpu*50%,100m)", "150m", "100m", id="max-floor"),
        pytest.param("limits", "cpu", "max(cpu*50%,100m)", "400m", "200m", id="max-half"),
        pytest.param("limits", "cpu", "cpu + 50m", "100m", "150m", id="plus"),
        pytest.param("limits", "memory", "max(memory*20% + 100Mi, 200Mi)", "800Mi", "260Mi", id="nested"),
        pytest.param("limits", "cpu", "500m", "1", "500m", id="constant-cpu"),
        pytest.param("limits", "memory", "1Gi", "100Mi", "1Gi", id="constant-memory"),
        pytest.param("limits", "memory", "1", "100Mi", "1", id="plain-number-is-cores-even-for-memory"),
        pytest.param("requests", "memory", "0.5", "100Mi", "500m", id="fraction-is-millicores"),
    ],
)
def test_expression_cases(
    kind: str, resource: str, expression: str, aggregate: str, expected: str | None
) -> None:
    pod = make_pod(
        containers=[
            container("app", resources={"limits": {resource: aggregate}, "requests": {resource: aggregate}})
        ]
    )
    computed = _sidecar_resources(pod, _policy("sum", ".*", **{kind: {resource: expression}}))
    assert computed.get(kind, {}).get(resource) == expected


# §14.2 scenario 36 (invalid syntax)
def test_expression_with_invalid_syntax_refuses_the_pod() -> None:
    pod = make_pod(containers=[container("app", resources={"limits": {"cpu": "1"}})])
    with pytest.raises(InjectionError, match="cannot evaluate"):
        _sidecar_resources(pod, _policy("sum", ".*", limits={"cpu": "cpu +*/ 50%"}))


def test_hot_upgrade_twins_both_get_the_computed_resources() -> None:
    # injection.md §11.3: for hot-upgrade containers the resources are computed once and copied.
    pod = make_pod(containers=[container("app", resources={"limits": {"cpu": "400m"}})])
    sidecarset = make_sidecarset(
        containers=[
            container(
                "proxy",
                resourcesPolicy=_policy("sum", ".*", limits={"cpu": "cpu*50%"}),
                upgradeStrategy={"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"},
            )
        ]
    )
    result = run_injection(pod, sidecarset)
    for twin in ("proxy-1", "proxy-2"):
        assert by_name(result, twin)["resources"] == {"limits": {"cpu": "200m"}}
