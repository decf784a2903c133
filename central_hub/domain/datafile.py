"""Reading the domain's editable data files (catalogue, calendar), with clear errors."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from central_hub.domain.errors import DomainError

__all__ = ["describe_validation", "read_yaml"]


def read_yaml(path: Path, what: str, error: type[DomainError]) -> object:
    """Parse the YAML file at ``path``; raise ``error`` naming the file if it can't."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc}") from exc
    except (yaml.YAMLError, ValueError) as exc:
        raise error(f"{path}: not valid YAML: {exc}") from exc


def describe_validation(exc: ValidationError, prefix: str = "") -> str:
    """Turn a pydantic error into ``prefix.field[0].name: message; ...``."""
    parts = []
    for item in exc.errors():
        loc = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"])
        parts.append(f"{loc.lstrip('.') or '(top)'}: {item['msg']}")
    return "; ".join(parts)
