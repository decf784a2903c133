"""Notices, the pure part: templates, audiences, rate limits, quiet hours, retries, states.

A notice is a text made from a :class:`NoticeTemplate` and its variables, sent on one
:class:`NoticeChannel` to every recipient of an :class:`Audience`; each (recipient,
channel) is a *delivery* with a life of its own::

    queued --claim--> sending --accepted--> sent --receipt--> delivered
       ^                 |                    |
       |   retryable,    |                    +--negative receipt--> failed
       +---attempts left-+--refused / opted out / out of attempts--> failed

``sending`` is a claim with a lease: a worker killed while sending leaves the row there,
and once the lease has run out another claim picks it up and sends it again under the
*same* delivery id, the idempotency key a gateway drops repeats by. A retry goes back to
``queued`` with ``next_attempt_at`` moved on by a capped, jittered backoff
(:class:`edge_agent.backoff.Backoff`'s rule). A receipt may come before the worker has
recorded ``sent`` (a fast gateway), so ``sending`` takes receipts too.

Nothing here does I/O or reads a clock: times are passed in.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from central_hub.domain.errors import NoticeError
from edge_agent.backoff import Backoff

__all__ = [
    "AUDIENCE_KINDS",
    "Accepted",
    "Audience",
    "DeliveryState",
    "NoticeChannel",
    "NoticeTemplate",
    "QuietHours",
    "Recipient",
    "Refused",
    "RenderedNotice",
    "RetryPolicy",
    "Retryable",
    "SendOutcome",
    "Step",
    "TokenBucket",
    "after_attempt",
    "after_receipt",
    "make_template",
    "render",
]

#: Variable names a template may declare.
_VARIABLE = re.compile(r"[a-z_][a-z0-9_]{0,31}\Z")
#: Template names.
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}\Z")
#: Longest value one variable may take (a shop's name, a plate, an address).
VALUE_MAX = 200
SUBJECT_MAX = 200
BODY_MAX = 2000


class NoticeChannel(enum.StrEnum):
    """How a notice reaches people: e-mail (SMTP), a text message through the SMS
    gateway's webhook, or the loudspeakers of a grid area."""

    EMAIL = "email"
    SMS = "sms"
    SPEAKER = "speaker"


class DeliveryState(enum.StrEnum):
    """Where one delivery is (see the module docstring)."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        """True for the states a delivery never leaves (``delivered``, ``failed``)."""
        return self in (DeliveryState.DELIVERED, DeliveryState.FAILED)


# --- templates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    """A literal piece of text, or a variable (``is_variable``) named by ``text``."""

    text: str
    is_variable: bool


def _parse(text: str, where: str) -> tuple[_Part, ...]:
    """Split ``text`` into literals and ``{name}`` variables; ``{{``/``}}`` are braces."""
    parts: list[_Part] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in "{}" and text[i + 1 : i + 2] == char:
            literal.append(char)
            i += 2
            continue
        if char == "}":
            raise NoticeError(f"{where}: a lone '}}' at character {i + 1} (write '}}}}')")
        if char == "{":
            end = text.find("}", i + 1)
            name = text[i + 1 : end] if end != -1 else ""
            if end == -1 or not _VARIABLE.match(name):
                raise NoticeError(
                    f"{where}: '{{' at character {i + 1} does not open a variable such as "
                    "{plate} (lowercase letters, digits, _; write '{{' for a brace)"
                )
            if literal:
                parts.append(_Part("".join(literal), False))
                literal = []
            parts.append(_Part(name, True))
            i = end + 1
            continue
        literal.append(char)
        i += 1
    if literal:
        parts.append(_Part("".join(literal), False))
    return tuple(parts)


@dataclass(frozen=True)
class NoticeTemplate:
    """A checked template: every ``{variable}`` of its subject and body is declared in
    ``variables`` and every declared variable is used. Build it with :func:`make_template`."""

    name: str
    subject: str
    body: str
    variables: tuple[str, ...]
    _subject: tuple[_Part, ...] = field(repr=False, compare=False)
    _body: tuple[_Part, ...] = field(repr=False, compare=False)


def make_template(name: str, subject: str, body: str, variables: Sequence[str]) -> NoticeTemplate:
    """Check and build a template; :class:`NoticeError` names every problem found.

    The substitution is deliberately small: ``{name}`` is replaced by the value's text and
    nothing else is interpreted, so a value or a template a city writes cannot run code.
    """
    problems: list[str] = []
    if not _NAME.match(name):
        problems.append(f"name: {name!r} is not 1-64 of a-z, 0-9, _, . and - (starting a-z0-9)")
    if len(subject) > SUBJECT_MAX:
        problems.append(f"subject: {len(subject)} characters, at most {SUBJECT_MAX}")
    if not body.strip():
        problems.append("body: empty")
    if len(body) > BODY_MAX:
        problems.append(f"body: {len(body)} characters, at most {BODY_MAX}")
    bad = [v for v in variables if not _VARIABLE.match(v)]
    if bad:
        problems.append(
            "variables: not a variable name (a-z, 0-9, _; at most 32): "
            + ", ".join(repr(v) for v in bad)
        )
    doubled = sorted({v for v in variables if list(variables).count(v) > 1})
    if doubled:
        problems.append("variables: declared twice: " + ", ".join(doubled))
    parsed: dict[str, tuple[_Part, ...]] = {}
    for where, text in (("subject", subject), ("body", body)):
        try:
            parsed[where] = _parse(text, where)
        except NoticeError as exc:
            problems.append(str(exc))
    if problems:
        raise NoticeError("; ".join(problems))
    used = {p.text for parts in parsed.values() for p in parts if p.is_variable}
    unknown = sorted(used - set(variables))
    unused = sorted(set(variables) - used)
    if unknown:
        problems.append("unknown variables (not declared): " + ", ".join(unknown))
    if unused:
        problems.append("declared variables the text never uses: " + ", ".join(unused))
    if problems:
        raise NoticeError("; ".join(problems))
    return NoticeTemplate(
        name=name,
        subject=subject,
        body=body,
        variables=tuple(variables),
        _subject=parsed["subject"],
        _body=parsed["body"],
    )


@dataclass(frozen=True)
class RenderedNotice:
    """A template with its variables filled in."""

    subject: str
    body: str


def _fill(parts: tuple[_Part, ...], values: Mapping[str, str]) -> str:
    return "".join(values[p.text] if p.is_variable else p.text for p in parts)


def render(template: NoticeTemplate, values: Mapping[str, str]) -> RenderedNotice:
    """Fill ``template`` with ``values``; :class:`NoticeError` names missing, unknown and
    overlong variables (all of them, not only the first)."""
    problems: list[str] = []
    missing = sorted(set(template.variables) - values.keys())
    unknown = sorted(values.keys() - set(template.variables))
    if missing:
        problems.append(f"missing variables of template {template.name}: " + ", ".join(missing))
    if unknown:
        problems.append(f"unknown variables for template {template.name}: " + ", ".join(unknown))
    for key in sorted(values.keys() & set(template.variables)):
        value = values[key]
        if not isinstance(value, str):
            problems.append(f"variables.{key}: not text")
        elif len(value) > VALUE_MAX:
            problems.append(f"variables.{key}: {len(value)} characters, at most {VALUE_MAX}")
    if problems:
        raise NoticeError("; ".join(problems))
    return RenderedNotice(_fill(template._subject, values), _fill(template._body, values))


# --- audiences ---------------------------------------------------------------------------

AudienceKind = Literal["contacts", "contact", "object", "industry", "subcategory", "area"]
#: Every kind of audience; ``contacts`` (an explicit list) needs no registry.
AUDIENCE_KINDS: tuple[AudienceKind, ...] = (
    "contacts",
    "contact",
    "object",
    "industry",
    "subcategory",
    "area",
)


@dataclass(frozen=True)
class Recipient:
    """One person (or, on the speaker channel, one loudspeaker) a notice goes to.

    ``contact_id`` is stable for the person (the registry's contact id, or a caller's own
    key for an explicit list): a notice reaches each ``(contact_id, channel)`` once.
    """

    contact_id: str
    name: str = ""
    phone: str | None = None
    email: str | None = None

    def address(self, channel: NoticeChannel) -> str | None:
        """Where ``channel`` reaches this recipient (None: it cannot)."""
        if channel is NoticeChannel.SMS:
            return self.phone
        if channel is NoticeChannel.EMAIL:
            return self.email
        return self.contact_id  # a loudspeaker: its device id


@dataclass(frozen=True)
class Audience:
    """Whom a notice is for: an explicit list of ``recipients`` (kind ``contacts``), or a
    ``key`` the registry resolves: one contact's id, one object's id, an industry, a
    subcategory, or a grid area (cell id; on the speaker channel its loudspeakers)."""

    kind: AudienceKind
    key: str = ""
    recipients: tuple[Recipient, ...] = ()

    def describe(self) -> str:
        """A short text for lists: ``industry 餐饮``, ``3 contacts``."""
        if self.kind == "contacts":
            return f"{len(self.recipients)} contacts"
        return f"{self.kind} {self.key}"


# --- rate limits and quiet hours --------------------------------------------------------


@dataclass
class TokenBucket:
    """``rate_per_s`` sends a second on average, ``burst`` at once (the clock is passed in).

    Mutable on purpose: one per channel in a worker, refilled from the time it is given.
    """

    rate_per_s: float
    burst: int
    tokens: float = field(init=False)
    at: datetime | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst < 1:
            raise NoticeError(
                f"rate limit needs rate_per_s > 0 and burst >= 1, got "
                f"{self.rate_per_s}, {self.burst}"
            )
        self.tokens = float(self.burst)

    def _refill(self, now: datetime) -> None:
        if self.at is not None and now > self.at:
            gained = (now - self.at).total_seconds() * self.rate_per_s
            self.tokens = min(float(self.burst), self.tokens + gained)
        if self.at is None or now > self.at:
            self.at = now

    def available(self, now: datetime) -> int:
        """Whole sends allowed at ``now``."""
        self._refill(now)
        return int(self.tokens)

    def take(self, now: datetime, count: int = 1) -> None:
        """Spend ``count`` tokens (the caller asked :meth:`available` first)."""
        self._refill(now)
        self.tokens -= count

    def wait_s(self, now: datetime) -> float:
        """Seconds until one send is allowed (0: now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate_per_s


@dataclass(frozen=True)
class QuietHours:
    """Local hours (in the city's zone, the WorkCalendar's) when notices wait.

    ``start`` to ``end`` may span midnight (22:00-07:00). A loudspeaker always waits;
    texts and e-mails wait unless the notice is urgent (:meth:`holds`).
    """

    start: time
    end: time
    tz: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise NoticeError(f"quiet hours: start and end are both {self.start}")

    def _quiet(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def release_at(self, now: datetime) -> datetime | None:
        """When the quiet hours around ``now`` end (UTC); None when ``now`` is not quiet."""
        local = now.astimezone(ZoneInfo(self.tz))
        if not self._quiet(local.time().replace(tzinfo=None)):
            return None
        end = datetime.combine(local.date(), self.end, tzinfo=local.tzinfo)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, local.tzinfo)
        return end.astimezone(UTC)

    @staticmethod
    def holds(channel: NoticeChannel, urgent: bool) -> bool:
        """Whether quiet hours hold a delivery on ``channel``: speakers always (an urgent
        announcement at night is for the emergency services, not for us), others unless
        the notice is urgent."""
        return channel is NoticeChannel.SPEAKER or not urgent


def due_at(
    at: datetime, channel: NoticeChannel, urgent: bool, quiet: QuietHours | None
) -> datetime:
    """When a delivery wanted at ``at`` may go: ``at``, or the end of quiet hours."""
    if quiet is None or not quiet.holds(channel, urgent):
        return at
    return quiet.release_at(at) or at


# --- sending and receipts ---------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """The channel took the notice: ``provider_id`` is its message id (the receipt's key)."""

    provider_id: str


@dataclass(frozen=True)
class Retryable:
    """A failure worth another try (a 5xx, a timeout, a refused connection)."""

    reason: str


@dataclass(frozen=True)
class Refused:
    """A failure that another try would repeat (a 4xx, a refused recipient, opted out)."""

    reason: str


SendOutcome = Accepted | Retryable | Refused


@dataclass(frozen=True)
class RetryPolicy:
    """Capped, jittered backoff between attempts, and how many attempts in all."""

    initial_s: float = 10.0
    cap_s: float = 900.0
    max_attempts: int = 8

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.cap_s:
            raise NoticeError(f"retry needs 0 < initial <= cap, got {self.initial_s}, {self.cap_s}")
        if self.max_attempts < 1:
            raise NoticeError(f"retry needs max_attempts >= 1, got {self.max_attempts}")

    def delay_s(self, attempts: int, uniform: Callable[[float, float], float]) -> float:
        """The wait after the ``attempts``-th failed attempt (1-based)."""
        return Backoff(self.initial_s, self.cap_s, uniform, attempts=max(0, attempts - 1)).next()


@dataclass(frozen=True)
class Step:
    """What an attempt's outcome makes of a delivery."""

    state: DeliveryState
    next_attempt_at: datetime | None = None
    provider_id: str | None = None
    error: str | None = None


def after_attempt(
    outcome: SendOutcome,
    attempts: int,
    policy: RetryPolicy,
    now: datetime,
    uniform: Callable[[float, float], float],
) -> Step:
    """The delivery's next state after its ``attempts``-th attempt ended in ``outcome``."""
    if isinstance(outcome, Accepted):
        return Step(DeliveryState.SENT, provider_id=outcome.provider_id)
    if isinstance(outcome, Refused):
        return Step(DeliveryState.FAILED, error=outcome.reason)
    if attempts >= policy.max_attempts:
        return Step(
            DeliveryState.FAILED, error=f"gave up after {attempts} attempts: {outcome.reason}"
        )
    wait = timedelta(seconds=policy.delay_s(attempts, uniform))
    return Step(DeliveryState.QUEUED, next_attempt_at=now + wait, error=outcome.reason)


#: The states a receipt may move a delivery out of: ``sending`` too, because a fast
#: gateway's receipt can arrive before the worker recorded ``sent``.
RECEIPT_FROM = (DeliveryState.SENDING, DeliveryState.SENT)


def after_receipt(state: DeliveryState, delivered: bool) -> DeliveryState | None:
    """The state a receipt moves ``state`` to; None when it changes nothing (a repeated
    receipt, or one for a delivery already final or not yet sent)."""
    if state not in RECEIPT_FROM:
        return None
    return DeliveryState.DELIVERED if delivered else DeliveryState.FAILED
