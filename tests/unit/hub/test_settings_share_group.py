"""XH_HUB_SHARE_GROUP can switch shared subscriptions off (single worker on Mosquitto)."""

from __future__ import annotations

import pytest

from central_hub.settings import HubSettings
from edge_agent.protocol import hub_subscriptions


def test_default_is_the_hub_share_group() -> None:
    subs = hub_subscriptions(HubSettings().share_group)
    assert all(s.startswith("$share/hub/") for s in subs)


def test_empty_share_group_means_plain_persistent_subscriptions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XH_HUB_SHARE_GROUP", "")
    settings = HubSettings()
    assert settings.share_group is None
    assert all(s.startswith("xh/v1/dev/+/") for s in hub_subscriptions(settings.share_group))
