"""Pure presentation helpers: marker styles, countdowns, number formats, chart geometry."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from central_hub.console.settings import Lang

__all__ = [
    "STAGE_COLOURS",
    "Bar",
    "BarChart",
    "Countdown",
    "FormFields",
    "RateBar",
    "bar_chart",
    "countdown",
    "donut_arc",
    "format_bytes",
    "format_duration",
    "format_rate",
    "rate_bars",
]

#: Marker and badge colour per stage (overdue markers get a red ring on top).
STAGE_COLOURS: dict[str, str] = {
    "reported": "#e8890c",
    "verifying": "#d4a017",
    "registered": "#2f6fd0",
    "dispatched": "#7d3fc4",
    "returned": "#c43f8e",
    "reminded": "#b8860b",
    "handled": "#138a8a",
    "checking": "#0f9d58",
    "closed": "#5f8f3a",
    "cancelled": "#8a8a8a",
}
#: Colour of a device marker per presence state.
DEVICE_COLOURS: dict[str, str] = {
    "online": "#1e9e4a",
    "degraded": "#e0a800",
    "offline": "#777777",
    "unknown": "#aaaaaa",
}
OVERDUE_COLOUR = "#d62828"


@dataclass(frozen=True)
class Countdown:
    """Time to a deadline: ``seconds`` left (negative when overdue), None when unset."""

    seconds: int | None

    @property
    def overdue(self) -> bool:
        """True once the deadline has passed."""
        return self.seconds is not None and self.seconds < 0


def countdown(deadline: datetime | None, now: datetime, *, final: bool = False) -> Countdown:
    """The countdown to ``deadline`` at ``now``; a closed or cancelled case has none."""
    if deadline is None or final:
        return Countdown(None)
    return Countdown(math.floor((deadline - now).total_seconds()))


def format_duration(seconds: int, lang: Lang) -> str:
    """A short duration: ``2天3小时`` / ``2d 3h``, ``45分`` / ``45m`` (sign ignored)."""
    s = abs(int(seconds))
    days, rem = divmod(s, 86400)
    hours, rem = divmod(rem, 3600)
    minutes = rem // 60
    units = ("天", "小时", "分") if lang == "zh" else ("d", "h", "m")
    parts: list[str] = []
    if days:
        parts += [f"{days}{units[0]}", f"{hours}{units[1]}"]
    elif hours:
        parts += [f"{hours}{units[1]}", f"{minutes}{units[2]}"]
    else:
        parts.append(f"{minutes}{units[2]}")
    return ("" if lang == "zh" else " ").join(parts)


def format_rate(rate: float | None) -> str:
    """A rate as a percentage with two decimals (``93.28%``); ``—`` when undefined."""
    return "—" if rate is None else f"{rate * 100:.2f}%"


def format_bytes(size: int) -> str:
    """A byte count for people: ``5.0 MB``, ``812 KB``, ``17 B``."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size // 1024} KB"
    return f"{size} B"


@dataclass(frozen=True)
class Bar:
    """One bar of a grouped bar chart, in SVG units."""

    x: float
    y: float
    w: float
    h: float
    series: str
    value: int
    label: str


@dataclass(frozen=True)
class BarChart:
    """A grouped bar chart: bars, x labels under each group, and y ticks."""

    width: float
    height: float
    bars: tuple[Bar, ...]
    x_labels: tuple[tuple[float, str], ...]
    y_ticks: tuple[tuple[float, int], ...]
    top: int


def _nice_step(value: int) -> int:
    """A round tick step (1, 2 or 5 times a power of ten) so four steps reach ``value``."""
    need = max(1, math.ceil(value / 4))
    magnitude = int(10 ** math.floor(math.log10(need)))
    for step in (1, 2, 5, 10):
        if need <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def bar_chart(
    groups: Sequence[tuple[str, dict[str, int]]],
    series: Sequence[str],
    *,
    width: float = 640,
    height: float = 220,
    pad_left: float = 36,
    pad_bottom: float = 24,
) -> BarChart:
    """Lay out ``groups`` (label, {series: count}) as grouped bars of ``series``."""
    step = _nice_step(max((g.get(s, 0) for _, g in groups for s in series), default=0))
    top = 4 * step
    plot_w = width - pad_left - 4
    plot_h = height - pad_bottom - 8
    group_w = plot_w / max(len(groups), 1)
    bar_w = max(group_w * 0.8 / max(len(series), 1), 1.0)
    bars: list[Bar] = []
    labels: list[tuple[float, str]] = []
    every = max(1, math.ceil(len(groups) / 14))  # keep x labels legible on long periods
    for i, (label, values) in enumerate(groups):
        gx = pad_left + i * group_w + group_w * 0.1
        for j, name in enumerate(series):
            value = int(values.get(name, 0))
            h = plot_h * value / top
            bars.append(
                Bar(
                    x=round(gx + j * bar_w, 1),
                    y=round(8 + plot_h - h, 1),
                    w=round(bar_w, 1),
                    h=round(h, 1),
                    series=name,
                    value=value,
                    label=label,
                )
            )
        if i % every == 0:
            labels.append((round(pad_left + (i + 0.5) * group_w, 1), label))
    ticks = tuple((round(8 + plot_h - plot_h * k / 4, 1), step * k) for k in range(5))
    return BarChart(width, height, tuple(bars), tuple(labels), ticks, top)


@dataclass(frozen=True)
class RateBar:
    """A horizontal bar for a rate in [0, 1] (``width`` 0 when undefined)."""

    key: str
    rate: float | None
    width: float
    text: str


def rate_bars(items: Sequence[tuple[str, float | None]], *, full: float = 300) -> list[RateBar]:
    """Horizontal bars for rates; rates outside [0, 1] are clamped for drawing only."""
    out = []
    for key, rate in items:
        w = 0.0 if rate is None else full * min(max(rate, 0.0), 1.0)
        out.append(RateBar(key, rate, round(w, 1), format_rate(rate)))
    return out


def donut_arc(share: float | None, *, r: float = 60, cx: float = 80, cy: float = 80) -> str:
    """The SVG path of the filled part of a donut for ``share`` in [0, 1] ('' for none)."""
    if share is None or share <= 0:
        return ""
    share = min(share, 0.9999)  # a full circle is not an arc; the ring underneath shows it
    angle = 2 * math.pi * share
    x = cx + r * math.sin(angle)
    y = cy - r * math.cos(angle)
    large = 1 if share > 0.5 else 0
    return f"M{cx} {cy - r}A{r} {r} 0 {large} 1 {x:.2f} {y:.2f}"


class FormFields:
    """For a frozen dataclass of a form's checked fields: :meth:`params` writes them back
    as a query string (empty fields left out), with ``change`` applied (the next page)."""

    def params(self, **change: Any) -> str:
        """The query string for these fields with ``change`` applied."""
        values = {**self.__dict__, **change}
        return urlencode({k: v for k, v in values.items() if v not in ("", 0)})
