"""``PlanningCaches``: per-key planning caches of one process (the engine's passes and the status
write-back keep one per rollout or placement).

- a key gets the same cache back between uses, so the second status round reuses evaluations
  and gives the same counters as a round without a cache;
- a cache already lent out is not lent again (a ``PlanningCache`` is not thread-safe): the
  second caller plans without one, and gets the cache again once it is returned;
- beyond ``capacity`` keys, the least recently used cache is dropped.
"""

from __future__ import annotations

import threading

from planning_pods import kubelet_restart, make_pods, make_sidecarset, patch_pod, replace

from sidecarhub.sidecarset import PlanningCaches, compute_status

V1 = make_sidecarset("envoy:1")
V2 = make_sidecarset("envoy:2")


def test_a_key_gets_its_cache_back_and_the_counters_do_not_depend_on_it() -> None:
    caches = PlanningCaches(capacity=4)
    pods = make_pods(6, injected=V1)
    for index, pod in enumerate(pods):  # unique, as the apiserver's are
        pod["metadata"]["resourceVersion"] = str(100 * (index + 1))
    with caches.borrow("placement-1") as first:
        assert first is not None
        counted = compute_status(V2, pods, cache=first)
    assert len(first) == 6  # every pod has a uid and a resourceVersion: all kept

    # Two pods are patched and restarted: their resourceVersions change, the others hit the cache.
    moved = [kubelet_restart(patch_pod(pod, V2)) for pod in pods[:2]]
    pods = replace(pods, moved)
    with caches.borrow("placement-1") as second:
        assert second is first
        counted = compute_status(V2, pods, cache=second)
    assert counted == compute_status(V2, pods)
    assert counted.as_status() == {"matchedPods": 6, "updatedPods": 2, "readyPods": 6, "updatedReadyPods": 2}


def test_a_lent_cache_is_not_lent_twice() -> None:
    caches = PlanningCaches(capacity=4)
    with caches.borrow("rollout-7") as held:
        assert held is not None
        with caches.borrow("rollout-7") as again:
            assert again is None  # planned without a cache, never with one in use
        with caches.borrow("rollout-8") as other:
            assert other is not None and other is not held
    with caches.borrow("rollout-7") as returned:
        assert returned is held


def test_threads_never_share_a_cache() -> None:
    caches = PlanningCaches(capacity=4)
    inside = threading.Barrier(2)
    seen: list[object] = []

    def borrow() -> None:
        with caches.borrow("shared") as cache:
            seen.append(cache)
            inside.wait(timeout=5)  # both threads are inside their ``with`` at the same time

    threads = [threading.Thread(target=borrow) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(seen) == 2
    assert sum(cache is None for cache in seen) == 1  # exactly one of them got the cache


def test_the_least_recently_used_cache_is_dropped_beyond_capacity() -> None:
    caches = PlanningCaches(capacity=2)
    with caches.borrow("a") as cache_a:
        pass
    with caches.borrow("b"):
        pass
    with caches.borrow("a") as again_a:  # "a" is now the most recently used
        assert again_a is cache_a
    with caches.borrow("c"):  # drops "b", the least recently used
        pass
    assert len(caches) == 2
    with caches.borrow("a") as still_a:
        assert still_a is cache_a
    with caches.borrow("b") as new_b:
        assert new_b is not None and len(new_b) == 0  # a fresh cache: the old one was dropped
