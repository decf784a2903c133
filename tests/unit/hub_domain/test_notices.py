"""Notices' pure core: templates, rate limits, quiet hours, retries and the state machine."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from central_hub.domain.errors import NoticeError
from central_hub.domain.notices import (
    Accepted,
    DeliveryState,
    NoticeChannel,
    QuietHours,
    Recipient,
    Refused,
    Retryable,
    RetryPolicy,
    TokenBucket,
    after_attempt,
    after_receipt,
    due_at,
    make_template,
    render,
)

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai


def _upper(_low: float, high: float) -> float:
    return high


# --- templates -----------------------------------------------------------------------------


def test_a_template_fills_its_declared_variables() -> None:
    tpl = make_template(
        "move-car",
        "挪车提醒 {plate}",
        "您的车辆 {plate} 停在 {place}，请尽快挪走。",
        ["plate", "place"],
    )
    out = render(tpl, {"plate": "浙J12345", "place": "县前街"})
    assert out.subject == "挪车提醒 浙J12345"
    assert out.body == "您的车辆 浙J12345 停在 县前街，请尽快挪走。"


def test_braces_are_written_doubled_and_values_are_never_interpreted() -> None:
    tpl = make_template("x", "", "{{literal}} {shop}", ["shop"])
    assert render(tpl, {"shop": "{plate} {{x}}"}).body == "{literal} {plate} {{x}}"


def test_unknown_and_unused_variables_are_named_at_creation() -> None:
    with pytest.raises(NoticeError) as err:
        make_template("x", "{shop}", "{plate} at {place}", ["plate", "owner"])
    text = str(err.value)
    assert "unknown variables (not declared): place, shop" in text
    assert "declared variables the text never uses: owner" in text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("a { b", "body: '{' at character 3"),
        ("a } b", "body: a lone '}' at character 3"),
        ("{Plate}", "body: '{' at character 1"),
        ("{a.b}", "body: '{' at character 1"),
        ("", "body: empty"),
    ],
)
def test_a_broken_template_is_refused_with_the_place(body: str, expected: str) -> None:
    with pytest.raises(NoticeError, match=expected.replace("{", r"\{").replace("}", r"\}")):
        make_template("x", "", body, [])


def test_names_may_be_namespaced_with_dots() -> None:
    assert make_template("parking.move_car", "", "{plate}", ["plate"]).name == "parking.move_car"


def test_bad_names_and_doubled_variables_are_named() -> None:
    with pytest.raises(NoticeError) as err:
        make_template("Bad Name", "", "{a}", ["a", "a", "B-1"])
    text = str(err.value)
    assert "name: 'Bad Name'" in text
    assert "declared twice: a" in text
    assert "'B-1'" in text


def test_render_names_missing_unknown_and_overlong_values() -> None:
    tpl = make_template("x", "", "{plate} {place}", ["plate", "place"])
    with pytest.raises(NoticeError) as err:
        render(tpl, {"plate": "A" * 201, "shop": "y"})
    text = str(err.value)
    assert "missing variables of template x: place" in text
    assert "unknown variables for template x: shop" in text
    assert "variables.plate: 201 characters" in text


def test_a_recipient_is_reached_by_the_channel_address() -> None:
    r = Recipient("c1", "王", phone="13800000000", email="w@example.com")
    assert r.address(NoticeChannel.SMS) == "13800000000"
    assert r.address(NoticeChannel.EMAIL) == "w@example.com"
    assert Recipient("c2").address(NoticeChannel.SMS) is None


# --- rate limit ------------------------------------------------------------------------------


def test_the_token_bucket_spaces_sends_after_its_burst() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=3)
    assert bucket.available(T0) == 3
    bucket.take(T0, 3)
    assert bucket.available(T0) == 0
    assert bucket.wait_s(T0) == pytest.approx(0.5)
    assert bucket.available(T0 + timedelta(seconds=0.5)) == 1
    assert bucket.available(T0 + timedelta(seconds=60)) == 3  # never more than the burst


def test_a_token_bucket_needs_a_positive_rate() -> None:
    with pytest.raises(NoticeError, match="rate_per_s > 0"):
        TokenBucket(rate_per_s=0, burst=1)


# --- quiet hours -------------------------------------------------------------------------


def test_quiet_hours_over_midnight_release_at_their_end_in_the_city_zone() -> None:
    quiet = QuietHours(time(22, 0), time(7, 0), "Asia/Shanghai")
    assert quiet.release_at(T0) is None  # 10:00 local
    late = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)  # 22:30 local
    assert quiet.release_at(late) == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # 07:00 next day
    early = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # 05:00 local on the 24th
    assert quiet.release_at(early) == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    assert quiet.release_at(datetime(2026, 11, 23, 23, 0, tzinfo=UTC)) is None  # 07:00 sharp


def test_quiet_hours_within_a_day() -> None:
    quiet = QuietHours(time(12, 0), time(14, 0), "Asia/Shanghai")
    noon = datetime(2026, 11, 23, 4, 30, tzinfo=UTC)  # 12:30 local
    assert quiet.release_at(noon) == datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def test_urgent_notices_skip_quiet_hours_except_on_speakers() -> None:
    quiet = QuietHours(time(22, 0), time(7, 0))
    late = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
    morning = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    assert due_at(late, NoticeChannel.SMS, False, quiet) == morning
    assert due_at(late, NoticeChannel.SMS, True, quiet) == late
    assert due_at(late, NoticeChannel.EMAIL, True, quiet) == late
    assert due_at(late, NoticeChannel.SPEAKER, True, quiet) == morning
    assert due_at(late, NoticeChannel.SMS, False, None) == late


def test_empty_quiet_hours_are_refused() -> None:
    with pytest.raises(NoticeError, match="quiet hours"):
        QuietHours(time(7, 0), time(7, 0))


# --- attempts and receipts -------------------------------------------------------------


def test_accepted_is_sent_with_the_provider_id() -> None:
    step = after_attempt(Accepted("gw-1"), 1, RetryPolicy(), T0, _upper)
    assert step.state is DeliveryState.SENT
    assert step.provider_id == "gw-1"


def test_refused_fails_at_once_with_the_reason() -> None:
    step = after_attempt(Refused("gateway answered 400: bad number"), 1, RetryPolicy(), T0, _upper)
    assert step.state is DeliveryState.FAILED
    assert step.error == "gateway answered 400: bad number"


def test_retryable_goes_back_to_queued_with_capped_backoff() -> None:
    policy = RetryPolicy(initial_s=10, cap_s=60, max_attempts=5)
    waits = [
        after_attempt(Retryable("503"), n, policy, T0, _upper).next_attempt_at for n in (1, 2, 3, 4)
    ]
    assert [(w - T0).total_seconds() for w in waits if w] == [10, 20, 40, 60]
    step = after_attempt(Retryable("503"), 2, policy, T0, _upper)
    assert step.state is DeliveryState.QUEUED
    assert step.error == "503"


def test_jitter_draws_between_half_and_the_ceiling() -> None:
    policy = RetryPolicy(initial_s=10, cap_s=60)
    seen: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        seen.append((low, high))
        return low

    after_attempt(Retryable("timeout"), 3, policy, T0, record)
    assert seen == [(20.0, 40.0)]


def test_out_of_attempts_fails_naming_the_last_reason() -> None:
    step = after_attempt(Retryable("timeout"), 3, RetryPolicy(max_attempts=3), T0, _upper)
    assert step.state is DeliveryState.FAILED
    assert step.error == "gave up after 3 attempts: timeout"


def test_receipts_move_sent_and_sending_only() -> None:
    assert after_receipt(DeliveryState.SENT, True) is DeliveryState.DELIVERED
    assert after_receipt(DeliveryState.SENDING, True) is DeliveryState.DELIVERED
    assert after_receipt(DeliveryState.SENT, False) is DeliveryState.FAILED
    assert after_receipt(DeliveryState.DELIVERED, False) is None
    assert after_receipt(DeliveryState.QUEUED, True) is None
    assert DeliveryState.DELIVERED.final
    assert not DeliveryState.SENT.final


def test_a_bad_retry_policy_is_refused() -> None:
    with pytest.raises(NoticeError, match="initial <= cap"):
        RetryPolicy(initial_s=10, cap_s=5)
    with pytest.raises(NoticeError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
