"""Exemptions from the rules: convenience service days (便民服务日) as a unit runs them (pure).

On a service day traditional trades (shoe repair, mending, locksmiths) serve at a set
place, so the rules that would report them there (the vendor rule, trading outside a
shop) are suspended for the day's hours. The hub keeps the city's calendar
(``central_hub/domain/data/service_days.yaml``) and pushes to each unit the exemptions
that concern its cameras as the ``service_days`` section of its signed desired config:
each one a camera (and optionally one zone of it), the rule kinds and event codes
suspended there, and one window ``[start, end)`` as aware instants, so the unit needs no
calendar and no time-zone data of its own, and honours the last calendar it received
while it has no network.

A rule is exempted at ``at`` when an exemption names its camera, its zone (or no zone:
every zone of the camera), its kind or its code, and ``start <= at < end``. The rule
engine keeps counting an object's dwell meanwhile and raises nothing; once the window
ends, a stall still there is reported at once (as outside a rule's schedule).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from edge_agent.vision.config import CameraId, Name, RuleConfig, RuleKind, VisionConfig

__all__ = [
    "MAX_EXEMPTIONS",
    "Exemption",
    "ServiceDaysSection",
    "active_exemption",
    "unused_exemptions",
]

#: Most exemptions one unit is sent: a year of quarterly and holiday service days on a
#: few cameras is a few dozen; the cap keeps a broken calendar from bloating the config
#: (500 of about 200 bytes each stay well inside a signed config's 256 KiB).
MAX_EXEMPTIONS = 500

EventCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{4,8}$")]


class Exemption(BaseModel):
    """One window in which some rules of one camera raise nothing (see the module docs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="the service day, as the city's calendar names it"
    )
    camera: CameraId
    zone: Name | None = Field(default=None, description="one zone of the camera; null: all")
    kinds: tuple[RuleKind, ...] = Field(default=(), description="rule kinds suspended")
    codes: tuple[EventCode, ...] = Field(default=(), description="event codes suspended")
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _checks(self) -> Exemption:
        if not self.kinds and not self.codes:
            raise ValueError("an exemption suspends at least one rule kind or event code")
        if self.end <= self.start:
            raise ValueError(
                f"end {self.end.isoformat()} is not after start {self.start.isoformat()}"
            )
        return self

    def suspends(self, rule: RuleConfig) -> bool:
        """Whether this exemption names ``rule``'s kind or code (whatever the place and time)."""
        return rule.kind in self.kinds or rule.code in self.codes

    def covers(self, camera_id: str, rule: RuleConfig, at: datetime) -> bool:
        """Whether ``rule`` of camera ``camera_id`` is exempted at the aware instant ``at``."""
        return (
            self.camera == camera_id
            and (self.zone is None or self.zone == rule.zone)
            and self.suspends(rule)
            and self.start <= at < self.end
        )


class ServiceDaysSection(BaseModel):
    """The ``service_days`` section of a unit's config: what the hub last pushed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calendar: Annotated[str, StringConstraints(max_length=200)] = Field(
        default="", description="which calendar the hub built these from (for a technician)"
    )
    exemptions: tuple[Exemption, ...] = Field(default=(), max_length=MAX_EXEMPTIONS)


def active_exemption(
    exemptions: Iterable[Exemption], camera_id: str, rule: RuleConfig, at: datetime
) -> Exemption | None:
    """The exemption covering ``rule`` of ``camera_id`` at ``at`` (the one ending last when
    several overlap, so a technician sees until when), or None."""
    best: Exemption | None = None
    for exemption in exemptions:
        if exemption.covers(camera_id, rule, at) and (best is None or exemption.end > best.end):
            best = exemption
    return best


def unused_exemptions(exemptions: Sequence[Exemption], vision: VisionConfig) -> list[str]:
    """One line per exemption that can never apply here: its camera or zone is not in
    ``vision``, or no rule there has a kind or code it suspends. Not an error (the city's
    calendar may name a camera this unit no longer has); the agent logs them."""
    lines = []
    for index, exemption in enumerate(exemptions):
        where = f"service_days.exemptions.{index} ({exemption.name})"
        try:
            camera = vision.camera(exemption.camera)
        except KeyError:
            known = ", ".join(c.id for c in vision.cameras) or "none"
            lines.append(f"{where}: no camera {exemption.camera!r} here (cameras: {known})")
            continue
        zones = [z.name for z in camera.zones]
        if exemption.zone is not None and exemption.zone not in zones:
            lines.append(
                f"{where}: camera {camera.id!r} has no zone {exemption.zone!r} (zones: "
                f"{', '.join(zones) or 'none'})"
            )
            continue
        rules = [
            r
            for r in camera.rules
            if (exemption.zone is None or r.zone == exemption.zone) and exemption.suspends(r)
        ]
        if not rules:
            lines.append(f"{where}: no rule of camera {camera.id!r} there is of what it suspends")
    return lines
