"""Sessions (expiry, logout, CSRF comparison) and the two message tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from central_hub.console.i18n import MESSAGES, Translator
from central_hub.console.sessions import SessionStore, same_secret
from central_hub.testing import FakeClock

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def store(clock: FakeClock) -> SessionStore:
    return SessionStore(clock, idle=timedelta(minutes=30), max_age=timedelta(hours=2))


def test_a_session_is_found_by_id_and_carries_its_own_csrf_token() -> None:
    clock = FakeClock(T0)
    sessions = store(clock)
    a = sessions.create("op", "xh_a", "zh")
    b = sessions.create("op", "xh_a", "en")
    assert a.sid != b.sid
    assert a.csrf != b.csrf
    assert len(a.sid) >= 40
    assert sessions.get(a.sid) is not None
    assert sessions.get(a.sid).lang == "zh"
    assert sessions.get("nope") is None
    assert sessions.get(None) is None


def test_idle_and_absolute_expiry() -> None:
    clock = FakeClock(T0)
    sessions = store(clock)
    s = sessions.create("op", "xh_a", "zh")
    for _ in range(3):  # activity keeps it alive past one idle period...
        clock.advance(minutes=25)
        assert sessions.get(s.sid) is not None
    clock.advance(minutes=31)  # ...but not past an idle gap
    assert sessions.get(s.sid) is None
    s2 = sessions.create("op", "xh_a", "zh")
    for _ in range(5):
        clock.advance(minutes=25)
        sessions.get(s2.sid)
    assert sessions.get(s2.sid) is None  # over two hours in total


def test_logout_and_dropping_a_users_sessions() -> None:
    sessions = store(FakeClock(T0))
    a = sessions.create("op", "xh_a", "zh")
    b = sessions.create("op", "xh_a", "zh")
    c = sessions.create("disp", "xh_b", "zh")
    sessions.drop(a.sid)
    assert sessions.get(a.sid) is None
    assert sessions.get(b.sid) is not None
    assert sessions.drop_user("op") == 1
    assert sessions.get(b.sid) is None
    assert sessions.get(c.sid) is not None
    sessions.set_lang(c.sid, "en")
    assert sessions.get(c.sid).lang == "en"  # type: ignore[union-attr]


def test_same_secret_refuses_missing_or_different_values() -> None:
    assert same_secret("abc", "abc")
    assert not same_secret("abc", "abd")
    assert not same_secret("", "")
    assert not same_secret(None, "abc")
    assert not same_secret("abc", None)


def test_both_languages_have_the_same_keys_and_chinese_is_chinese() -> None:
    assert set(MESSAGES["zh"]) == set(MESSAGES["en"])
    zh = Translator("zh")
    assert zh("nav.cases") == "案卷"
    assert Translator("en")("nav.cases") == "Cases"
    assert zh("no.such.key") == "no.such.key"
    assert "5.0 MB" in zh("upload.too_big", limit="5.0 MB", size="6.0 MB")
