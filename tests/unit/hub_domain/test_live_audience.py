"""The hub's live audience: one stream per camera whoever watches, renewals while
anyone does, a stop when the last one leaves."""

from __future__ import annotations

import pytest

from central_hub.domain.live import Audience, Camera

MAST = Camera("pole-01", "mast")
GATE = Camera("pole-01", "gate")


def test_only_the_first_viewer_asks_and_only_the_last_stops() -> None:
    audience = Audience(renew_s=10.0)
    assert audience.join(MAST, 1) is True
    assert audience.join(MAST, 2) is False
    assert audience.join(MAST, 3) is False
    assert audience.viewers(MAST) == 3
    assert audience.leave(MAST, 2) is False
    assert audience.leave(MAST, 2) is False  # leaving twice changes nothing
    assert audience.leave(MAST, 1) is False
    assert audience.leave(MAST, 3) is True
    assert audience.viewers(MAST) == 0
    assert audience.cameras() == []
    assert audience.leave(MAST, 3) is False


def test_renewals_fall_due_while_watched_and_stop_when_nobody_watches() -> None:
    audience = Audience(renew_s=10.0)
    audience.join(MAST, 1)
    audience.join(GATE, 2)
    assert audience.due(0.0) == [GATE, MAST]  # never asked yet
    audience.asked(MAST, 0.0)
    audience.asked(GATE, 4.0)
    assert audience.due(9.9) == []
    assert audience.due(10.0) == [MAST]
    assert audience.due(14.0) == [GATE, MAST]
    audience.leave(MAST, 1)
    assert audience.due(100.0) == [GATE]
    audience.asked(MAST, 100.0)  # a late answer for a camera nobody watches is ignored
    assert audience.cameras() == [GATE]


def test_a_renewal_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="renew_s must be above 0"):
        Audience(renew_s=0)
