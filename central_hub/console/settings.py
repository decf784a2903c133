"""The console's settings (a frozen model; the hub passes one to :func:`install_console`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ConsoleSettings", "Lang"]

#: The interface languages: Chinese by default, English on request.
Lang = Literal["zh", "en"]


class ConsoleSettings(BaseSettings):
    """How the web console behaves; each field can be set as ``XH_CONSOLE_<NAME>``.

    ``cookie_secure``: ``None`` marks the session cookie ``Secure`` whenever the request
    came over HTTPS (directly or as ``X-Forwarded-Proto`` from a trusted proxy that
    uvicorn honours); ``True`` always, ``False`` never. Sessions end after
    ``session_idle_s`` without a request and after ``session_max_s`` in any case.
    """

    model_config = SettingsConfigDict(env_prefix="XH_CONSOLE_", frozen=True, extra="forbid")

    prefix: str = Field(default="/console", pattern=r"^/[a-z0-9-]+$")
    cookie_secure: bool | None = None
    session_idle_s: float = Field(default=8 * 3600, gt=0)
    session_max_s: float = Field(default=24 * 3600, gt=0)
    upload_max_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    upload_max_side_px: int = Field(default=2560, ge=64)
    tz: str = "Asia/Shanghai"
    default_lang: Lang = "zh"
    page_size: int = Field(default=50, ge=1, le=500)
    map_case_limit: int = Field(default=1000, ge=1, le=1000)
    live_poll_s: float = Field(default=1.0, gt=0)
    live_stream_max_s: float = Field(default=25.0, gt=0)
    stats_fresh_s: float = Field(default=30.0, gt=0)
