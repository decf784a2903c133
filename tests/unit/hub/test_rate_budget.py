"""RateBudget: a token bucket per key, with a count of what each key was refused."""

from __future__ import annotations

from central_hub.services.throttle import RateBudget


def test_a_burst_then_the_rate_per_key_with_the_refusals_counted() -> None:
    now = [0.0]
    budget = RateBudget(per_minute=60, burst=3, clock=lambda: now[0])
    assert [budget.take("a")[0] for _ in range(5)] == [True, True, True, False, False]
    assert budget.take("b") == (True, 0)  # keys do not share
    assert budget.take("a") == (False, 3)
    now[0] = 1.0  # one a second
    assert budget.take("a") == (True, 3)  # allowed, and it says what it was refused
    assert budget.take("a") == (False, 1)
    now[0] = 100.0
    assert [budget.take("a")[0] for _ in range(4)] == [True, True, True, False]


def test_memory_is_bounded_by_forgetting_the_oldest_keys() -> None:
    budget = RateBudget(per_minute=1, burst=1, clock=lambda: 0.0, keys=10)
    for i in range(100):
        budget.take(f"k{i}")
    assert len(budget._state) == 10
    assert budget.take("k0") == (True, 0)  # forgotten, so a fresh bucket
