"""Rendering pages: the shared template context (language, CSRF token, formatters)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from central_hub.console.i18n import Translator
from central_hub.console.present import (
    DEVICE_COLOURS,
    OVERDUE_COLOUR,
    STAGE_COLOURS,
    format_duration,
    format_rate,
)
from central_hub.console.security import COMMANDERS, READERS, Viewer
from central_hub.console.settings import Lang
from central_hub.console.state import ConsoleState, console_state

__all__ = ["page", "page_html"]


def _local(state: ConsoleState) -> Any:
    def fmt(value: datetime | None, with_seconds: bool = False) -> str:
        if value is None:
            return "—"
        local = value.astimezone(state.zone)
        return local.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")

    return fmt


def context(
    request: Request, who: Viewer | None, lang: Lang | None = None, **extra: Any
) -> dict[str, Any]:
    """The variables every template sees, plus ``extra``."""
    state = console_state(request)
    lang = lang or (who.session.lang if who else state.settings.default_lang)
    t = who.t if who else Translator(lang)
    return {
        "request": request,
        "who": who,
        "t": t,
        "lang": lang,
        "csrf": who.session.csrf if who else extra.pop("csrf", ""),
        "url": state.url,
        "prefix": state.settings.prefix,
        "local": _local(state),
        "now": state.hub.clock(),
        "duration": lambda s: format_duration(s, lang),
        "rate": format_rate,
        "stage_colours": STAGE_COLOURS,
        "device_colours": DEVICE_COLOURS,
        "overdue_colour": OVERDUE_COLOUR,
        "may_read": bool(who and who.may(*READERS)),
        "may_command": bool(who and who.may(*COMMANDERS)),
        # The vendor file's nav link, for the roles the city allows only.
        "may_vendor": bool(who and state.hub.vendor_file.may(who.user)),
        "tojs": lambda v: json.dumps(v, ensure_ascii=False),
        **extra,
    }


def page(
    request: Request,
    who: Viewer | None,
    template: str,
    status_code: int = 200,
    lang: Lang | None = None,
    **extra: Any,
) -> HTMLResponse:
    """Render ``template`` with the shared context."""
    state = console_state(request)
    response = state.templates.TemplateResponse(
        request, template, context(request, who, lang, **extra), status_code=status_code
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def page_html(request: Request, who: Viewer | None, template: str, **extra: Any) -> str:
    """Render ``template`` to a string (fragments for live refresh)."""
    state = console_state(request)
    tmpl = state.templates.get_template(template)
    return tmpl.render(context(request, who, **extra))
