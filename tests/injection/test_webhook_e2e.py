"""The admission webhook end to end: the sandbox apiserver calls the hub over HTTPS on 127.0.0.1,
and the pods it creates are exactly what the pure core says (issue 5 §2-§4, decisions 5-7, 10)."""

from __future__ import annotations

import io
import json
import time
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from kubernetes.client.rest import ApiException
from rest_framework.test import APIClient

from clusters.admission import invalidate_active_revisions
from clusters.drift import detect_drift
from clusters.kube import KubeClient
from clusters.models import DriftedPod
from clusters.push import serve_revision
from clusters.services import import_kubeconfig, update_cluster
from clusters.tasks import refresh_cluster_status_task, register_webhook_task
from clusters.webhooks import WEBHOOK_CONFIGURATION_NAME, webhook_configuration
from sandbox.testing import wait_for
from sidecarhub.models import SidecarSetRevision
from sidecarhub.sidecarset.annotations import ANNOTATION_HASH, ANNOTATION_INJECTED_LIST
from sidecarhub.signals import revision_published, sidecarset_deleted
from tests.injection.conftest import (
    Hub,
    assert_as_core_says,
    container_names,
    expected_injection,
    injection_time,
    make_pod,
    sidecarset,
)

pytestmark = [pytest.mark.k8s, pytest.mark.django_db(transaction=True)]


def _check_pod(hub: Hub, namespace: str, created: dict[str, Any], names: tuple[str, ...]) -> None:
    request = hub.request_for(namespace, created["metadata"]["name"])
    expected = expected_injection(request, hub.namespace_labels(namespace), names, injection_time(created))
    assert expected.injected == tuple(sorted(names))
    assert_as_core_says(created, expected)


def test_registration_matches_the_cluster_settings(hub: Hub, cli_admin: Any) -> None:
    out = io.StringIO()
    call_command(
        "sidecarhub", "cluster", "register-webhook", "alpha", "--url", hub.server.url + "/", stdout=out
    )
    assert f"-> {hub.server.url}/admission/v1/clusters/alpha/pods (failurePolicy Ignore" in out.getvalue()
    with pytest.raises(CommandError, match="no cluster named"):
        call_command("sidecarhub", "cluster", "register-webhook", "nowhere", stdout=io.StringIO())
    assert register_webhook_task(hub.cluster.pk) == f"{hub.server.url}/admission/v1/clusters/alpha/pods"
    body = json.loads(
        __import__("kubernetes")
        .client.AdmissionregistrationV1Api(hub.k8s.api_client)
        .read_mutating_webhook_configuration(WEBHOOK_CONFIGURATION_NAME, _preload_content=False)
        .data
    )
    webhook = body["webhooks"][0]
    assert webhook["clientConfig"]["url"] == f"{hub.server.url}/admission/v1/clusters/alpha/pods"
    assert webhook["failurePolicy"] == "Ignore" and webhook["timeoutSeconds"] == 10
    assert webhook["sideEffects"] == "None" and webhook["reinvocationPolicy"] == "Never"
    assert webhook["rules"][0]["operations"] == ["CREATE"] and webhook["rules"][0]["resources"] == ["pods"]
    assert webhook["matchConditions"][0]["name"] == "pod-not-opted-out"
    managers = {entry["manager"] for entry in body["metadata"]["managedFields"]}
    assert managers == {"sidecarhub"}
    ours = webhook_configuration(hub.cluster)["webhooks"][0]
    assert ours["namespaceSelector"] == webhook["namespaceSelector"]


def test_registering_or_changing_a_cluster_applies_its_webhook(
    hub: Hub, eager_tasks: None, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    admission = __import__("kubernetes").client.AdmissionregistrationV1Api(hub.k8s.api_client)

    def applied() -> dict[str, Any] | None:
        try:
            body = admission.read_mutating_webhook_configuration(
                WEBHOOK_CONFIGURATION_NAME, _preload_content=False
            ).data
        except ApiException as exc:
            assert exc.status == 404
            return None
        return dict(json.loads(body)["webhooks"][0])

    admission.delete_mutating_webhook_configuration(WEBHOOK_CONFIGURATION_NAME, _preload_content=False)
    assert applied() is None
    settings.SIDECARHUB_WEBHOOK_AUTO_REGISTER = True  # the default (tests turn it off)
    # A setting that changes the webhook: applied after commit, with no other step.
    with django_capture_on_commit_callbacks(execute=True):
        update_cluster(hub.cluster.pk, changes={"webhook_timeout_seconds": 5})
    webhook = applied()
    assert webhook is not None and webhook["timeoutSeconds"] == 5
    assert webhook["clientConfig"]["url"] == f"{hub.server.url}/admission/v1/clusters/alpha/pods"
    # A label change does not touch it.
    admission.delete_mutating_webhook_configuration(WEBHOOK_CONFIGURATION_NAME, _preload_content=False)
    with django_capture_on_commit_callbacks(execute=True):
        update_cluster(hub.cluster.pk, changes={"labels": {"env": "test"}})
    assert applied() is None
    # A newly registered cluster gets it too (the same apiserver under another name), with the
    # hub's URL when the cluster has none of its own.
    settings.SIDECARHUB_WEBHOOK_URL = hub.server.url
    with django_capture_on_commit_callbacks(execute=True):
        cluster, _ = import_kubeconfig(name="again", kubeconfig_path=hub.k8s.kubeconfig, context="alpha")
    assert cluster.webhook_url == ""
    webhook = applied()
    assert webhook is not None
    assert webhook["clientConfig"]["url"] == f"{hub.server.url}/admission/v1/clusters/again/pods"
    # Switched off (webhooks managed elsewhere): a change applies nothing.
    settings.SIDECARHUB_WEBHOOK_AUTO_REGISTER = False
    admission.delete_mutating_webhook_configuration(WEBHOOK_CONFIGURATION_NAME, _preload_content=False)
    with django_capture_on_commit_callbacks(execute=True):
        update_cluster(cluster.pk, changes={"webhook_timeout_seconds": 7})
    assert applied() is None


def test_bare_pod_with_several_sidecarsets_in_name_order(hub: Hub, k8s_namespace: str) -> None:
    hub.publish(sidecarset("zeta"))
    hub.publish(sidecarset("alpha-mesh", volumes=[{"name": "mesh-conf", "emptyDir": {}}]))
    hub.publish(sidecarset("other", selector={"app": "db"}))
    mesh = sidecarset("alpha-mesh", volumes=[{"name": "mesh-conf", "emptyDir": {}}])
    mesh["spec"]["containers"][0]["volumeMounts"] = [{"name": "mesh-conf", "mountPath": "/etc/mesh"}]
    hub.publish(mesh)
    hub.wait_active(k8s_namespace)

    created = hub.create_pod(k8s_namespace, make_pod("web"))

    assert container_names(created) == ["alpha-mesh-agent", "zeta-agent", "app"]
    assert created["metadata"]["annotations"][ANNOTATION_INJECTED_LIST] == "alpha-mesh,zeta"
    assert [volume["name"] for volume in created["spec"]["volumes"]] == ["mesh-conf"]
    records = json.loads(created["metadata"]["annotations"][ANNOTATION_HASH])
    assert records["alpha-mesh"]["controllerRevision"] == "alpha-mesh-2"
    _check_pod(hub, k8s_namespace, created, ("alpha-mesh", "zeta"))


def test_deployment_pods_are_injected_and_the_template_is_unchanged(hub: Hub, k8s_namespace: str) -> None:
    hub.publish(sidecarset("logger", initContainers=[{"name": "init-conf", "image": "busybox:1"}]))
    hub.wait_active(k8s_namespace)
    template = make_pod("ignored")
    template["metadata"].pop("name")
    template.pop("apiVersion")
    template.pop("kind")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template},
    }
    hub.k8s.apps.create_namespaced_deployment(k8s_namespace, deployment, _preload_content=False)  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is

    def pods() -> list[dict[str, Any]] | None:
        items = json.loads(hub.core.list_namespaced_pod(k8s_namespace, _preload_content=False).data)["items"]  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response
        return items if len(items) == 2 else None

    for pod in wait_for(pods, timeout_seconds=60, what="the Deployment's two pods"):
        assert container_names(pod) == ["logger-agent", "app"]
        assert container_names(pod, "initContainers") == ["init-conf"]
        found = hub.server.seen(
            lambda r, p=pod: (  # type: ignore[misc]  # mypy cannot infer a lambda with a default argument
                r.get("namespace") == k8s_namespace
                and r["object"]["metadata"].get("generateName") == p["metadata"]["generateName"]
            )
        )
        expected = expected_injection(
            found[-1], hub.namespace_labels(k8s_namespace), ("logger",), injection_time(pod)
        )
        assert_as_core_says(pod, expected)
    stored = json.loads(
        hub.k8s.apps.read_namespaced_deployment("web", k8s_namespace, _preload_content=False).data  # type: ignore[attr-defined]  # _preload_content=False: a raw urllib3 response
    )
    template_spec = stored["spec"]["template"]["spec"]
    assert [c["name"] for c in template_spec["containers"]] == ["app"]
    assert "initContainers" not in template_spec
    assert not (stored["spec"]["template"]["metadata"].get("annotations") or {})


def test_namespace_selector_scopes_injection(hub: Hub) -> None:
    team_a, team_b = f"ta-{uuid.uuid4().hex[:6]}", f"tb-{uuid.uuid4().hex[:6]}"
    for name, team in ((team_a, "a"), (team_b, "b")):
        hub.core.create_namespace(
            {"metadata": {"name": name, "labels": {"team": team}}},  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
            _preload_content=False,
        )
    try:
        hub.publish(sidecarset("team-a-only", namespaceSelector={"matchLabels": {"team": "a"}}))
        hub.wait_active(team_a)
        in_a = hub.create_pod(team_a, make_pod("web"))
        in_b = hub.create_pod(team_b, make_pod("web"))
        assert container_names(in_a) == ["team-a-only-agent", "app"]
        assert container_names(in_b) == ["app"]
        _check_pod(hub, team_a, in_a, ("team-a-only",))
    finally:
        for name in (team_a, team_b):
            hub.core.delete_namespace(name, _preload_content=False)


def test_paused_injection_and_a_pinned_revision(hub: Hub, k8s_namespace: str) -> None:
    hub.publish(sidecarset("paused", injectionStrategy={"paused": True}))
    hub.publish(sidecarset("pinned"))  # revision pinned-1: pinned-agent:1.0
    pin = {"revision": {"revisionName": "pinned-1", "policy": "Always"}}
    moved = sidecarset("pinned", injectionStrategy=pin)
    moved["spec"]["containers"][0]["image"] = "pinned-agent:2.0"
    hub.publish(moved)  # revision pinned-2 pins pinned-1
    hub.wait_active(k8s_namespace)

    created = hub.create_pod(k8s_namespace, make_pod("web"))

    assert container_names(created) == ["pinned-agent", "app"]
    assert created["spec"]["containers"][0]["image"] == "pinned-agent:1.0"
    records = json.loads(created["metadata"]["annotations"][ANNOTATION_HASH])
    assert records["pinned"]["controllerRevision"] == "pinned-1"
    _check_pod(hub, k8s_namespace, created, ("pinned",))


def test_hot_upgrade_twins(hub: Hub, k8s_namespace: str) -> None:
    document = sidecarset("hot")
    document["spec"]["containers"] = [
        {
            "name": "proxy",
            "image": "envoy:2",
            "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"},
        }
    ]
    hub.publish(document)
    hub.wait_active(k8s_namespace)

    created = hub.create_pod(k8s_namespace, make_pod("web"))

    images = {c["name"]: c["image"] for c in created["spec"]["containers"]}
    assert images == {"app": "nginx:1.25", "proxy-1": "envoy:2", "proxy-2": "empty:1"}
    annotations = created["metadata"]["annotations"]
    assert json.loads(annotations["sidecarhub.io/sidecarset-working-hotupgrade-container"]) == {
        "proxy": "proxy-1"
    }
    assert annotations["version.sidecarset.sidecarhub.io/proxy-1"] == "1"
    _check_pod(hub, k8s_namespace, created, ("hot",))


def test_excluded_namespaces_and_the_pod_opt_out_never_reach_the_hub(hub: Hub, k8s_namespace: str) -> None:
    hub.publish(sidecarset("everywhere"))
    hub.wait_active(k8s_namespace)
    disabled = f"off-{uuid.uuid4().hex[:6]}"
    hub.core.create_namespace(
        {"metadata": {"name": disabled, "labels": {"sidecarhub.io/inject": "disabled"}}},  # type: ignore[arg-type]  # stubs want a model object; a dict is sent as is
        _preload_content=False,
    )
    system_pod = f"web-{uuid.uuid4().hex[:6]}"
    try:
        in_disabled = hub.create_pod(disabled, make_pod("web"))
        in_system = hub.create_pod("kube-system", make_pod(system_pod))
        opt_out, opt_in = {"sidecarhub.io/inject": "false"}, {"sidecarhub.io/inject": "true"}
        opted_out = hub.create_pod(k8s_namespace, make_pod("quiet", annotations=opt_out))
        opted_in = hub.create_pod(k8s_namespace, make_pod("loud", annotations=opt_in))
        for pod in (in_disabled, in_system, opted_out):
            assert container_names(pod) == ["app"]
            assert ANNOTATION_INJECTED_LIST not in (pod["metadata"].get("annotations") or {})
        assert container_names(opted_in) == ["everywhere-agent", "app"]
        assert not hub.server.seen(lambda r: r.get("namespace") in (disabled, "kube-system"))
        assert not hub.server.seen(lambda r: r.get("name") == "quiet")
    finally:
        hub.core.delete_namespace(disabled, _preload_content=False)
        hub.core.delete_namespaced_pod(system_pod, "kube-system", _preload_content=False)


def test_dry_run_gets_the_same_patch_and_creates_nothing(hub: Hub, k8s_namespace: str) -> None:
    hub.publish(sidecarset("dry"))
    hub.wait_active(k8s_namespace)

    dry = hub.create_pod(k8s_namespace, make_pod("web"), dry_run=True)

    assert container_names(dry) == ["dry-agent", "app"]
    request = hub.server.seen(lambda r: r.get("name") == "web" and bool(r.get("dryRun")))[-1]
    expected = expected_injection(request, hub.namespace_labels(k8s_namespace), ("dry",), injection_time(dry))
    assert_as_core_says(dry, expected)
    with pytest.raises(ApiException) as missing:
        hub.core.read_namespaced_pod("web", k8s_namespace, _preload_content=False)
    assert missing.value.status == 404
    real = hub.create_pod(k8s_namespace, make_pod("web"))
    assert container_names(real) == container_names(dry)


def test_a_refusal_of_the_core_denies_the_pod(hub: Hub, k8s_namespace: str) -> None:
    hub.publish(sidecarset("strict"))
    hub.wait_active(k8s_namespace)
    with pytest.raises(ApiException) as denied:
        hub.create_pod(k8s_namespace, make_pod("web", annotations={ANNOTATION_HASH: "not json"}))
    assert denied.value.status == 400
    assert denied.value.body is not None
    assert "sidecarset-hash is not valid JSON" in json.loads(denied.value.body)["message"]


def test_hub_down_pods_are_created_without_sidecars_and_reported_as_drift(
    hub: Hub, k8s_namespace: str, monkeypatch: pytest.MonkeyPatch, eager_tasks: None
) -> None:
    hub.publish(sidecarset("needed"))  # pushed to alpha at once (eager tasks): it gets a status
    hub.wait_active(k8s_namespace)
    hub.server.stop()
    try:
        created = hub.create_pod(k8s_namespace, make_pod("orphan"))
    finally:
        hub.server.start()  # same port
    assert container_names(created) == ["app"]  # failurePolicy Ignore
    injected = hub.create_pod(k8s_namespace, make_pod("fine"))
    assert container_names(injected) == ["needed-agent", "app"]

    lists: list[str] = []
    list_pods = KubeClient.list_pods

    def counted(kube: KubeClient, **kwargs: Any) -> list[dict[str, Any]]:
        lists.append("pods")
        return list_pods(kube, **kwargs)

    monkeypatch.setattr(KubeClient, "list_pods", counted)  # the real call, counted
    result = refresh_cluster_status_task(hub.cluster.pk)  # the periodic status refresh, run in-process
    # The status write-back and the drift check read one pod list.
    assert result["statuses_written"] >= 1 and lists == ["pods"]

    # Pods of earlier tests (other namespaces, app=web) lack "needed" too: scope to this one.
    assert result["drift_error"] == "" and result["drifted_pods"] >= 1
    row = DriftedPod.objects.get(cluster=hub.cluster, namespace=k8s_namespace)
    assert (row.namespace, row.pod_name, row.missing_sidecarsets) == (k8s_namespace, "orphan", ["needed"])
    root = User.objects.create_superuser("root", password="pw-root-1234")
    console = Client()
    console.force_login(root)
    page = console.get("/admin/clusters/driftedpod/", {"namespace": k8s_namespace})
    assert page.status_code == 200 and b"orphan" in page.content and b"needed" in page.content
    api = APIClient()
    api.force_authenticate(root)
    listed = api.get("/api/v1/clusters/alpha/drift/", {"namespace": k8s_namespace})
    assert listed.status_code == 200
    assert [(item["pod_name"], item["missing_sidecarsets"]) for item in listed.json()["results"]] == [
        ("orphan", ["needed"])
    ]
    hub.core.delete_namespaced_pod("orphan", k8s_namespace, _preload_content=False)
    wait_for(
        lambda: (
            detect_drift(hub.cluster.pk).error == ""
            and not DriftedPod.objects.filter(namespace=k8s_namespace).exists()
        ),
        timeout_seconds=30,
        interval_seconds=0.5,
        what="the deleted pod to leave the drift list",
    )


def test_a_publish_takes_effect_within_two_seconds_in_another_process(hub: Hub, k8s_namespace: str) -> None:
    hub.publish(sidecarset("fast"))
    hub.wait_active(k8s_namespace)
    assert hub.create_pod(k8s_namespace, make_pod("before"))["spec"]["containers"][0]["image"] == (
        "fast-agent:1.0"
    )
    # Another web process never receives this process's signals: only the generation check counts.
    revision_published.disconnect(dispatch_uid="clusters.admission.published")
    sidecarset_deleted.disconnect(dispatch_uid="clusters.admission.deleted")
    try:
        document = sidecarset("fast")
        document["spec"]["containers"][0]["image"] = "fast-agent:2.0"
        hub.publish(document, serve=False)
        # Published, not served: the cluster keeps injecting revision 1 (decision 17).
        pod = hub.create_pod(k8s_namespace, make_pod(f"p-{uuid.uuid4().hex[:6]}"), dry_run=True)
        assert pod["spec"]["containers"][0]["image"] == "fast-agent:1.0"
        revision = SidecarSetRevision.objects.get(sidecarset__name="fast", number=2)
        serve_revision(revision.sidecarset_id, hub.cluster.pk, revision.pk)  # the release's gate opens
        published = time.monotonic()

        def new_image() -> bool:
            pod = hub.create_pod(k8s_namespace, make_pod(f"p-{uuid.uuid4().hex[:6]}"), dry_run=True)
            return pod["spec"]["containers"][0]["image"] == "fast-agent:2.0"

        wait_for(new_image, timeout_seconds=5, interval_seconds=0.05, what="the new revision in admission")
        elapsed = time.monotonic() - published
    finally:
        revision_published.connect(invalidate_active_revisions, dispatch_uid="clusters.admission.published")
        sidecarset_deleted.connect(invalidate_active_revisions, dispatch_uid="clusters.admission.deleted")
    print(f"\ngate opened → admission (generation check only): {elapsed:.3f}s")
    assert elapsed < 2.0
