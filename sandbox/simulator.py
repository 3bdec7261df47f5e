"""A pod-status simulator that plays the kubelet for one fake Node.

It watches every pod, binds unscheduled ones to its node, and writes the status a kubelet
would: phase, conditions, and container statuses (image, imageID, containerID, ready,
started, restartCount, state, lastState). When a running container's image changes in place,
it "restarts" that container the way the kubelet does: a new containerID and imageID,
restartCount + 1, and the old run in lastState.terminated. Pods being deleted are
force-deleted, as a kubelet would after the containers stopped.

Per-image behaviour is set with ``SimulatorKnobs`` (fnmatch patterns on the image): a
readiness delay, images that fail to pull, images that crash-loop, a ``postStart`` hook that
takes a while (the container runs but is not ``started`` nor ready until it returns) and a
``postStart`` hook that fails (the kubelet kills the container: it crash-loops, never ready).
Knobs can be changed while the simulator runs; ``resync()`` makes it look at every pod again.

The simulator derives everything from the pod's current spec and status, so it can be
restarted at any time and never rewrites a status that is already right.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import hashlib
import heapq
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

__all__ = ["PodSimulator", "SimulatorKnobs"]

log = logging.getLogger(__name__)

Json = dict[str, Any]
_MERGE_PATCH = "application/merge-patch+json"


@dataclass
class SimulatorKnobs:
    """What the fake kubelet does per image (fnmatch patterns, e.g. ``"registry/bad:*"``)."""

    ready_delay_seconds: dict[str, float] = field(default_factory=dict)
    pull_failures: set[str] = field(default_factory=set)
    crash_loops: set[str] = field(default_factory=set)
    # postStart: the container runs, ``started``/``ready`` stay false until the hook returns.
    post_start_delay_seconds: dict[str, float] = field(default_factory=dict)
    # postStart fails (after its delay): the kubelet kills the container → CrashLoopBackOff.
    post_start_failures: set[str] = field(default_factory=set)

    @staticmethod
    def _match(image: str, patterns: set[str] | dict[str, float]) -> str | None:
        for pattern in patterns:
            if fnmatch.fnmatchcase(image, pattern):
                return pattern
        return None

    def ready_delay(self, image: str) -> float:
        pattern = self._match(image, self.ready_delay_seconds)
        return self.ready_delay_seconds[pattern] if pattern is not None else 0.0

    def fails_to_pull(self, image: str) -> bool:
        return self._match(image, self.pull_failures) is not None

    def crash_loops_on(self, image: str) -> bool:
        return self._match(image, self.crash_loops) is not None

    def post_start_delay(self, image: str) -> float:
        pattern = self._match(image, self.post_start_delay_seconds)
        return self.post_start_delay_seconds[pattern] if pattern is not None else 0.0

    def post_start_fails(self, image: str) -> bool:
        return self._match(image, self.post_start_failures) is not None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _ts(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_ts(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def image_id(image: str) -> str:
    """What a container runtime reports as imageID: a digest that changes with the image."""
    return f"sim-registry/{image.split(':')[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def _new_container_id() -> str:
    return f"containerd://{uuid.uuid4().hex}"


class PodSimulator:
    """Run with ``start()`` (a watch thread and a worker thread) and ``stop()``."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        node_name: str = "sim-node-0",
        knobs: SimulatorKnobs | None = None,
    ) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.node_name = node_name
        self.knobs = knobs or SimulatorKnobs()
        self._pods: dict[tuple[str, str], Json] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._timers: list[tuple[float, tuple[str, str]]] = []
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_ip = 2
        self.errors: list[str] = []

    # --- public ----------------------------------------------------------------------
    def start(self) -> None:
        self._ensure_node()
        self._threads = [
            threading.Thread(target=self._watch_loop, name=f"sim-watch-{self.node_name}", daemon=True),
            threading.Thread(target=self._work_loop, name=f"sim-work-{self.node_name}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def request_stop(self) -> None:
        """Ask the threads to finish (the watch ends within its 5 s timeout); ``stop()`` waits."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()

    def stop(self) -> None:
        self.request_stop()
        for thread in self._threads:
            thread.join(timeout=10)

    def resync(self) -> None:
        """Look at every known pod again (after a knob change)."""
        with self._cond:
            self._dirty.update(self._pods)
            self._cond.notify_all()

    # --- node ------------------------------------------------------------------------
    def _ensure_node(self) -> None:
        node: Any = {  # a plain manifest: the client sends dicts as they are
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {"kubernetes.io/hostname": self.node_name, "type": "sim"},
            },
        }
        try:
            self.core.create_node(node, _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:
                raise
        now = _ts(_now())
        status = {
            "status": {
                "capacity": {"cpu": "1000", "memory": "4000Gi", "pods": "100000"},
                "allocatable": {"cpu": "1000", "memory": "4000Gi", "pods": "100000"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "sidecarhub pod simulator",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": "",
                    "containerRuntimeVersion": "sim://1",
                    "kernelVersion": "",
                    "kubeProxyVersion": "",
                    "kubeletVersion": "v1.37.2",
                    "machineID": "",
                    "operatingSystem": "linux",
                    "osImage": "sim",
                    "systemUUID": "",
                },
            }
        }
        self.core.patch_node_status(
            self.node_name, status, _content_type=_MERGE_PATCH, _preload_content=False, _request_timeout=10
        )

    # --- watch -----------------------------------------------------------------------
    def _watch_loop(self) -> None:
        resource_version = ""
        while not self._stopping.is_set():
            try:
                if not resource_version:
                    resource_version = self._relist()
                stream = watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    resource_version=resource_version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=5,
                    _request_timeout=15,
                    deserialize=False,
                )
                for event in stream:
                    if self._stopping.is_set():
                        break
                    obj = event.get("raw_object") or event.get("object")
                    if isinstance(obj, str):
                        obj = json.loads(obj)
                    kind = event.get("type")
                    if kind == "ERROR":
                        resource_version = ""  # 410 Gone or similar: list again
                        break
                    resource_version = obj.get("metadata", {}).get("resourceVersion", resource_version)
                    if kind == "BOOKMARK":
                        continue
                    self._observe(obj, deleted=kind == "DELETED")
            except ApiException as exc:
                resource_version = ""
                if exc.status != 410:
                    self._record_error(f"watch: {exc.status} {exc.reason}")
                    time.sleep(0.5)
            except Exception as exc:  # connection resets while the apiserver restarts
                # Start again from a fresh list: the client raises KeyError('raw_object') on a
                # 410 ERROR event when deserialize=False, and after an apiserver restart the old
                # resourceVersion may be gone anyway.
                resource_version = ""
                if not self._stopping.is_set():
                    self._record_error(f"watch: {type(exc).__name__}: {exc}")
                    time.sleep(0.5)

    def _relist(self) -> str:
        response: Any = self.core.list_pod_for_all_namespaces(_preload_content=False, _request_timeout=30)
        body = json.loads(response.data)
        seen = set()
        for pod in body.get("items", []):
            seen.add(self._key(pod))
            self._observe(pod, deleted=False)
        with self._cond:
            for key in list(self._pods):
                if key not in seen:
                    self._pods.pop(key, None)
        return str(body["metadata"]["resourceVersion"])

    @staticmethod
    def _key(pod: Json) -> tuple[str, str]:
        return pod["metadata"]["namespace"], pod["metadata"]["name"]

    def _observe(self, pod: Json, *, deleted: bool) -> None:
        key = self._key(pod)
        with self._cond:
            if deleted:
                self._pods.pop(key, None)
                self._dirty.discard(key)
                return
            self._pods[key] = pod
            self._dirty.add(key)
            self._cond.notify_all()

    # --- work ------------------------------------------------------------------------
    def _work_loop(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, key = heapq.heappop(self._timers)
                    if key in self._pods:
                        self._dirty.add(key)
                if not self._dirty:
                    wait = self._timers[0][0] - now if self._timers else 1.0
                    self._cond.wait(timeout=max(0.01, min(wait, 1.0)))
                    continue
                key = self._dirty.pop()
                pod = self._pods.get(key)
            if pod is None:
                continue
            try:
                self._reconcile(pod)
            except ApiException as exc:
                if exc.status not in (404, 409):
                    self._record_error(f"{key}: {exc.status} {exc.reason}")
            except Exception as exc:
                self._record_error(f"{key}: {type(exc).__name__}: {exc}")

    def _record_error(self, message: str) -> None:
        log.warning("pod simulator %s: %s", self.node_name, message)
        self.errors.append(message)
        del self.errors[:-100]

    def _wake_at(self, key: tuple[str, str], delay_seconds: float) -> None:
        with self._cond:
            heapq.heappush(self._timers, (time.monotonic() + delay_seconds, key))
            self._cond.notify_all()

    def _reconcile(self, pod: Json) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        namespace, name = meta["namespace"], meta["name"]
        if meta.get("deletionTimestamp"):
            if spec.get("nodeName") == self.node_name:
                # The containers "stopped": finish the deletion as the kubelet would.
                with contextlib.suppress(ApiException):
                    self.core.delete_namespaced_pod(
                        name, namespace, grace_period_seconds=0, _preload_content=False, _request_timeout=10
                    )
            return
        node = spec.get("nodeName")
        if not node:
            self._bind(namespace, name)
            return  # the binding's MODIFIED event brings the pod back
        if node != self.node_name:
            return
        status = pod.get("status", {})
        desired, wake_in = self.desired_status(pod, _now())
        if wake_in is not None:
            self._wake_at((namespace, name), wake_in)
        if desired != {key: status.get(key) for key in desired}:
            self.core.patch_namespaced_pod_status(
                name,
                namespace,
                {"status": desired},
                _content_type=_MERGE_PATCH,
                _preload_content=False,
                _request_timeout=10,
            )

    def _bind(self, namespace: str, name: str) -> None:
        body: Any = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            # The generated client fails to deserialize the Status reply (kubernetes-client/python#547).
            self.core.create_namespaced_pod_binding(
                name, namespace, body, _preload_content=False, _request_timeout=10
            )
        except ApiException as exc:
            if exc.status != 409:  # already bound by an earlier event
                raise

    # --- the kubelet's view: pure function of spec + previous status --------------------
    def desired_status(self, pod: Json, now: dt.datetime) -> tuple[Json, float | None]:
        """The status fields this fake kubelet owns, and when to look again (seconds) if ever."""
        spec, status = pod["spec"], pod.get("status", {})
        wake: list[float] = []
        previous = {s["name"]: s for s in status.get("containerStatuses") or []}
        previous_init = {s["name"]: s for s in status.get("initContainerStatuses") or []}

        init_statuses = [
            self._init_container_status(c, previous_init.get(c["name"]), now, wake)
            for c in spec.get("initContainers") or []
        ]
        container_statuses = [
            self._container_status(c, previous.get(c["name"]), now, wake)
            for c in spec.get("containers") or []
        ]
        all_ready = all(s["ready"] for s in container_statuses) and all(
            s["ready"]
            for s, c in zip(init_statuses, spec.get("initContainers") or [], strict=True)
            if c.get("restartPolicy") == "Always"
        )
        any_running = any("running" in s["state"] for s in container_statuses)
        gates_ok = all(
            any(
                cond.get("type") == gate["conditionType"] and cond.get("status") == "True"
                for cond in status.get("conditions") or []
            )
            for gate in spec.get("readinessGates") or []
        )
        conditions = self._conditions(
            status.get("conditions") or [],
            {
                "PodReadyToStartContainers": True,
                "Initialized": True,
                "ContainersReady": all_ready,
                "Ready": all_ready and gates_ok,
                "PodScheduled": True,
            },
            now,
        )
        pod_ip = status.get("podIP") or self._allocate_ip()
        desired: Json = {
            "phase": "Running" if any_running else "Pending",
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": status.get("startTime") or _ts(now),
            "containerStatuses": container_statuses,
            "qosClass": status.get("qosClass") or "BestEffort",
        }
        if init_statuses:
            desired["initContainerStatuses"] = init_statuses
        return desired, (min(wake) if wake else None)

    def _allocate_ip(self) -> str:
        self._next_ip += 1
        return f"10.244.{(self._next_ip // 250) % 250}.{self._next_ip % 250 + 2}"

    def _conditions(self, existing: list[Json], wanted: dict[str, bool], now: dt.datetime) -> list[Json]:
        by_type = {c.get("type"): c for c in existing}
        result = []
        for kind, ok in wanted.items():
            value = "True" if ok else "False"
            old = by_type.get(kind)
            if old and old.get("status") == value:
                result.append(old)
            else:
                condition: Json = {
                    "type": kind,
                    "status": value,
                    "lastProbeTime": None,
                    "lastTransitionTime": _ts(now),
                }
                if not ok and kind in ("Ready", "ContainersReady"):
                    condition["reason"] = "ContainersNotReady"
                result.append(condition)
        # Conditions other components own (readiness gates, Kruise-style ones) are kept as they are.
        result.extend(c for c in existing if c.get("type") not in wanted)
        return result

    def _container_status(
        self, container: Json, previous: Json | None, now: dt.datetime, wake: list[float]
    ) -> Json:
        image = container.get("image", "")
        name = container["name"]
        if (
            previous is not None
            and previous.get("image") == image
            and not self._should_retry(previous, image)
        ):
            return self._advance(previous, image, now, wake)
        # A new container instance: first start, an in-place image change, or a retried pull.
        restarted = previous is not None and bool(previous.get("containerID"))
        restart_count = int(previous.get("restartCount", 0)) if previous else 0
        last_state: Json = {}
        if restarted and previous is not None:
            old_state = previous.get("state", {})
            started = old_state.get("running", {}).get("startedAt") or _ts(now)
            last_state = {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "containerID": previous["containerID"],
                    "startedAt": started,
                    "finishedAt": _ts(now),
                }
            }
            restart_count += 1
        elif previous is not None:
            last_state = previous.get("lastState") or {}
        if self.knobs.fails_to_pull(image):
            return {
                "name": name,
                "image": image,
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": restart_count,
                "state": {
                    "waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
                },
                "lastState": last_state,
            }
        post_start = self.knobs.post_start_delay(image)
        if self.knobs.post_start_fails(image) and post_start <= 0:
            return self._post_start_failed(name, image, restart_count + (1 if restarted else 0), now)
        if self.knobs.crash_loops_on(image):
            return {
                "name": name,
                "image": image,
                "imageID": image_id(image),
                "containerID": _new_container_id(),
                "ready": False,
                "started": False,
                "restartCount": restart_count + (0 if restarted else 1),
                "state": {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": "back-off restarting failed container",
                    }
                },
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": _ts(now)}},
            }
        delay = self.knobs.ready_delay(image) + post_start
        if delay > 0:
            wake.append((post_start or delay) + 0.05)
        return {
            "name": name,
            "image": image,
            "imageID": image_id(image),
            "containerID": _new_container_id(),
            "ready": delay <= 0,
            "started": post_start <= 0,
            "restartCount": restart_count,
            "state": {"running": {"startedAt": _ts(now)}},
            "lastState": last_state,
        }

    def _post_start_failed(self, name: str, image: str, restart_count: int, now: dt.datetime) -> Json:
        """The postStart hook failed: the kubelet killed the container and backs off restarting it."""
        return {
            "name": name,
            "image": image,
            "imageID": image_id(image),
            "containerID": _new_container_id(),
            "ready": False,
            "started": False,
            "restartCount": restart_count,
            "state": {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": "back-off restarting failed container: PostStartHookError",
                }
            },
            "lastState": {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": _ts(now)}},
        }

    def _should_retry(self, previous: Json, image: str) -> bool:
        """A container stuck pulling or crash-looping starts once its image is no longer bad."""
        waiting = previous.get("state", {}).get("waiting", {}).get("reason")
        if waiting == "ImagePullBackOff":
            return not self.knobs.fails_to_pull(image)
        if waiting == "CrashLoopBackOff":
            return not (self.knobs.crash_loops_on(image) or self.knobs.post_start_fails(image))
        return False

    def _advance(self, previous: Json, image: str, now: dt.datetime, wake: list[float]) -> Json:
        """Same container instance: ``started`` once postStart returned (or the container is
        killed when it fails), then readiness, after the image's delays."""
        current = dict(previous)
        running = previous.get("state", {}).get("running")
        if running and previous.get("started") is False:
            post_start_end = _parse_ts(running["startedAt"]) + dt.timedelta(
                seconds=self.knobs.post_start_delay(image)
            )
            if now < post_start_end:
                wake.append((post_start_end - now).total_seconds() + 0.05)
                return current
            if self.knobs.post_start_fails(image):
                return self._post_start_failed(
                    previous["name"], image, int(previous.get("restartCount", 0)) + 1, now
                )
            current["started"] = True
        if running and not previous.get("ready"):
            ready_at = _parse_ts(running["startedAt"]) + dt.timedelta(
                seconds=self.knobs.post_start_delay(image) + self.knobs.ready_delay(image)
            )
            if now >= ready_at:
                current["ready"] = True
            else:
                wake.append((ready_at - now).total_seconds() + 0.05)
        return current

    def _init_container_status(
        self, container: Json, previous: Json | None, now: dt.datetime, wake: list[float]
    ) -> Json:
        if container.get("restartPolicy") == "Always":
            if previous is not None:
                # The kubelet does not restart a native sidecar on an image change: the running
                # instance keeps its old image until the pod is recreated.
                return self._advance(previous, previous.get("image", ""), now, wake)
            return self._container_status(container, None, now, wake)
        if previous is not None:
            return previous
        return {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": image_id(container.get("image", "")),
            "containerID": _new_container_id(),
            "ready": True,
            "started": False,
            "restartCount": 0,
            "state": {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": _ts(now),
                    "finishedAt": _ts(now),
                }
            },
        }
