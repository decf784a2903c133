"""The notice settings: each wrong one refused naming the setting, secrets read from files."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from central_hub.domain.calendar import WorkCalendar
from central_hub.errors import SettingsError
from central_hub.settings import HubSettings
from central_hub.workers.notices import quiet_hours_of


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"notice_sms_url": "ftp://gw/{phone}"}, "notice_sms_url: not an http:// or https:// URL"),
        (
            {"notice_sms_url": "https://gw/{to}", "notice_sms_secret_file": "s"},
            "notice_sms_url: only {phone} and {id} may be filled in",
        ),
        ({"notice_sms_url": "https://gw/{phone}"}, "notice_sms_url needs notice_sms_secret_file"),
        ({"notice_smtp_host": "mail"}, "set both notice_smtp_host and notice_smtp_from"),
        (
            {"notice_retry_initial_s": 100, "notice_retry_cap_s": 10},
            "notice_retry_initial_s is above notice_retry_cap_s",
        ),
        ({"notice_quiet_hours": "22-07"}, "notice_quiet_hours"),
    ],
)
def test_a_wrong_notice_setting_is_named(values: dict[str, object], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected.replace("{", r"\{").replace("}", r"\}")):
        HubSettings.model_validate(values)


def test_the_secret_comes_from_its_file_and_a_bad_file_is_named(tmp_path: Path) -> None:
    secret = tmp_path / "sms.secret"
    secret.write_bytes(b"s3cret\n")
    settings = HubSettings(notice_sms_url="https://gw/{phone}", notice_sms_secret_file=secret)
    assert settings.notice_secret("notice_sms_secret_file") == b"s3cret"
    secret.write_bytes(b"\n")
    with pytest.raises(SettingsError, match=r"XH_HUB_NOTICE_SMS_SECRET_FILE.*is empty"):
        settings.notice_secret("notice_sms_secret_file")
    secret.unlink()
    with pytest.raises(SettingsError, match=r"notice_sms_secret_file .* no such file"):
        settings.notice_secret("notice_sms_secret_file")


def test_quiet_hours_from_the_setting_in_the_calendars_zone() -> None:
    quiet = quiet_hours_of("22:00-07:00", WorkCalendar(tz="Asia/Urumqi"))
    assert quiet is not None
    assert (quiet.start, quiet.end, quiet.tz) == (time(22), time(7), "Asia/Urumqi")
    assert quiet_hours_of("", WorkCalendar()) is None
    with pytest.raises(SettingsError, match="XH_HUB_NOTICE_QUIET_HOURS"):
        quiet_hours_of("07:00-07:00", WorkCalendar())
