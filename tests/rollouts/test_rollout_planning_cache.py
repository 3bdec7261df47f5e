"""The engine keeps one PlanningCache per rollout in a worker process, bounded (least recently
used dropped), so a pass re-evaluates only the pods that changed since the previous one."""

from __future__ import annotations

from rollouts import engine


def test_one_cache_per_rollout_least_recently_used_dropped() -> None:
    engine._planning_caches.clear()
    limit = engine.PLANNING_CACHE_ROLLOUTS
    first = engine.planning_cache(1)
    assert engine.planning_cache(1) is first
    second = engine.planning_cache(2)
    assert second is not first
    for rollout_id in range(3, limit + 1):
        engine.planning_cache(rollout_id)
    assert list(engine._planning_caches) == list(range(1, limit + 1))
    engine.planning_cache(1)  # used again: now the most recent
    engine.planning_cache(limit + 1)  # one too many: 2, the least recently used, goes
    assert list(engine._planning_caches) == [*range(3, limit + 1), 1, limit + 1]
    assert engine.planning_cache(1) is first and engine.planning_cache(2) is not second
