"""The retention policy's cutoffs: days before now, 0 keeps for ever, negatives refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from central_hub.domain.retention import RetentionPolicy

NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def test_each_kind_goes_its_own_number_of_days_before_now() -> None:
    cut = RetentionPolicy(evidence_days=730, frames_days=0, tracks_days=7).cutoffs(NOW)
    assert cut.evidence == NOW - timedelta(days=730)
    assert cut.frames is None  # 0: kept for ever
    assert cut.tracks == NOW - timedelta(days=7)
    assert cut.dead_letters == NOW - timedelta(days=30)  # the default


def test_a_negative_number_of_days_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="tracks_days"):
        RetentionPolicy(tracks_days=-1)
