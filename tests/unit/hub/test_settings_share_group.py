"""The hub's share group and client id: derived from its signing key unless set."""

from __future__ import annotations

import pytest

from central_hub.hub import hub_client_id, share_group_of
from central_hub.settings import HubSettings
from edge_agent.protocol import generate_signing_key, hub_subscriptions


def test_the_default_group_is_derived_from_the_key_and_not_guessable() -> None:
    assert HubSettings().share_group == "auto"
    key, other = generate_signing_key(), generate_signing_key()
    group = share_group_of("auto", key)
    assert group is not None
    assert group == share_group_of("auto", key)  # every worker with the key: the same group
    assert group != share_group_of("auto", other)
    assert group.startswith("hub-")
    assert len(group) == 24
    assert all(s.startswith(f"$share/{group}/xh/v1/dev/+/") for s in hub_subscriptions(group))
    assert share_group_of("ingest", key) == "ingest"


def test_client_ids_keep_the_worker_name_and_add_a_secret_suffix() -> None:
    key = generate_signing_key()
    one, two = hub_client_id("hub-1", key), hub_client_id("hub-2", key)
    assert one.startswith("hub-1-")
    assert two.startswith("hub-2-")
    assert one != two
    assert one == hub_client_id("hub-1", key)  # stable across restarts: the session stays
    assert one != hub_client_id("hub-1", generate_signing_key())


def test_empty_share_group_means_plain_persistent_subscriptions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XH_HUB_SHARE_GROUP", "")
    settings = HubSettings()
    assert settings.share_group is None
    subs = hub_subscriptions(share_group_of(settings.share_group, generate_signing_key()))
    assert all(s.startswith("xh/v1/dev/+/") for s in subs)
