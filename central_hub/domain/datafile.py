"""Reading the domain's editable data files (catalogue, calendar), with clear errors."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from central_hub.domain.errors import DomainError
from edge_agent.protocol import error_lines

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
    """``prefix.field: message; ...`` for a data file, worded as the edge's config errors."""
    return "; ".join(error_lines(exc, prefix=f"{prefix}." if prefix else ""))
