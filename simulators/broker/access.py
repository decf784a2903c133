"""Who may connect and what they may read and write (pure), in Mosquitto's file formats.

* Password file: ``user:$7$iterations$salt$hash`` lines (PBKDF2-SHA512, what
  ``mosquitto_passwd`` and ``central-hub provision`` write).
* ACL file: ``topic [read|write|readwrite] FILTER`` lines apply to the ``user NAME`` above
  them (or to anonymous clients before any ``user`` line); ``pattern ...`` lines apply to
  everyone, with ``%u`` (username) and ``%c`` (client id) substituted.

Topic filters follow MQTT: ``+`` matches one level, ``#`` the rest; topics starting with
``$`` are not matched by a leading wildcard.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AccessFileError",
    "Acl",
    "check_password",
    "load_acl",
    "load_passwords",
    "parse_acl",
    "parse_passwords",
    "split_shared",
    "topic_matches",
    "valid_filter",
]


class AccessFileError(ValueError):
    """A password or ACL file that cannot be read; the message names the file and line."""


def topic_matches(flt: str, topic: str) -> bool:
    """Whether ``topic`` matches the MQTT filter ``flt``."""
    if topic.startswith("$") and flt[:1] in ("+", "#"):
        return False
    f_parts, t_parts = flt.split("/"), topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts):
            return False
        if part != "+" and part != t_parts[i]:
            return False
    return len(f_parts) == len(t_parts)


def valid_filter(flt: str) -> bool:
    """Whether ``flt`` is a well-formed topic filter."""
    if not flt:
        return False
    parts = flt.split("/")
    for i, part in enumerate(parts):
        if "#" in part and (part != "#" or i != len(parts) - 1):
            return False
        if "+" in part and part != "+":
            return False
    return True


def split_shared(flt: str) -> tuple[str | None, str]:
    """``$share/GROUP/FILTER`` → ``(GROUP, FILTER)``; other filters → ``(None, filter)``."""
    if flt.startswith("$share/"):
        _, group, rest = flt.split("/", 2) if flt.count("/") >= 2 else (flt, "", "")
        if group and rest and "+" not in group and "#" not in group:
            return group, rest
        raise ValueError(f"bad shared subscription {flt!r}")
    return None, flt


def parse_passwords(text: str, source: str = "<passwords>") -> dict[str, str]:
    """``{user: hash}`` from a Mosquitto password file's text."""
    users: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise AccessFileError(f"{source}:{n}: not a 'user:hash' line")
        users[user] = hashed.strip()
    return users


def load_passwords(path: Path) -> dict[str, str]:
    """:func:`parse_passwords` of a file."""
    try:
        return parse_passwords(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessFileError(f"cannot read password file {path}: {exc}") from exc


def check_password(password: bytes, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` (PBKDF2-SHA512) or ``$6$`` (SHA512) hash."""
    parts = hashed.split("$")
    try:
        if len(parts) == 5 and parts[1] == "7":
            iterations, salt, expected = int(parts[2]), parts[3], parts[4]
            digest = hashlib.pbkdf2_hmac("sha512", password, base64.b64decode(salt), iterations)
            return hmac.compare_digest(digest, base64.b64decode(expected))
        if len(parts) == 4 and parts[1] == "6":
            salt_b, expected_b = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            return hmac.compare_digest(hashlib.sha512(password + salt_b).digest(), expected_b)
    except ValueError:
        return False
    return False


@dataclass(frozen=True)
class _Rule:
    access: str  # "read", "write" or "readwrite"
    pattern: str

    def allows(self, want: str) -> bool:
        return self.access in ("readwrite", want)


@dataclass
class Acl:
    """Parsed ACL: per-user rules, anonymous rules and patterns for everyone."""

    users: dict[str, list[_Rule]] = field(default_factory=dict)
    anonymous: list[_Rule] = field(default_factory=list)
    patterns: list[_Rule] = field(default_factory=list)

    def allows(self, username: str | None, client_id: str, topic: str, want: str) -> bool:
        """Whether this client may ``want`` (``read`` or ``write``) ``topic``."""
        rules = self.users.get(username, []) if username is not None else self.anonymous
        for rule in rules:
            if rule.allows(want) and topic_matches(rule.pattern, topic):
                return True
        for rule in self.patterns:
            if not rule.allows(want):
                continue
            flt = rule.pattern.replace("%c", client_id)
            if "%u" in flt:
                if username is None:
                    continue
                flt = flt.replace("%u", username)
            if topic_matches(flt, topic):
                return True
        return False


def parse_acl(text: str, source: str = "<acl>") -> Acl:
    """Parse a Mosquitto ACL file's text."""
    acl = Acl()
    current: list[_Rule] = acl.anonymous
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == "user":
            if not rest:
                raise AccessFileError(f"{source}:{n}: 'user' without a name")
            current = acl.users.setdefault(rest, [])
            continue
        if word not in ("topic", "pattern"):
            raise AccessFileError(f"{source}:{n}: unknown ACL line {line!r}")
        access, _, flt = rest.partition(" ")
        if access == "deny":
            raise AccessFileError(f"{source}:{n}: 'deny' rules are not supported here")
        if access not in ("read", "write", "readwrite"):
            access, flt = "readwrite", rest
        flt = flt.strip()
        if not flt or not valid_filter(flt.replace("%u", "u").replace("%c", "c")):
            raise AccessFileError(f"{source}:{n}: bad topic filter {flt!r}")
        rule = _Rule(access, flt)
        (acl.patterns if word == "pattern" else current).append(rule)
    return acl


def load_acl(path: Path) -> Acl:
    """:func:`parse_acl` of a file."""
    try:
        return parse_acl(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessFileError(f"cannot read ACL file {path}: {exc}") from exc
