"""The 高空喊话 phrase library: what a loudspeaker can say with one pick, by violation type.

A data file the city edits (``data/voice_phrases.yaml``): ``phrases`` maps a catalogue
event code (quoted, ``"0501"``) to a list of sentences of 1-200 characters. Every
problem names the file, the line and the entry; nothing is half-loaded.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from central_hub.domain.errors import DomainError

__all__ = ["DEFAULT_PATH", "PhraseBook", "PhraseError", "load_phrases", "parse_phrases"]

DEFAULT_PATH = Path(__file__).with_name("data") / "voice_phrases.yaml"
#: The longest phrase (the speak panel's sentence limit).
MAX_CHARS = 200


class PhraseError(DomainError):
    """The phrase library is unreadable or wrong; ``problems`` lists each by line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class PhraseBook:
    """Phrases by event code, in file order."""

    by_code: Mapping[str, tuple[str, ...]]


def _line(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1}"


def parse_phrases(text: str, codes: Container[str], source: str = "<memory>") -> PhraseBook:
    """Read the library's YAML text, checking codes against ``codes`` (the catalogue)."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise PhraseError(source, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(root, yaml.MappingNode):
        raise PhraseError(source, ["expected a mapping with version: 1 and phrases"])
    top = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
    problems: list[str] = []
    version = top.get("version")
    if not isinstance(version, yaml.ScalarNode) or version.value != "1":
        problems.append(f"{_line(version or root)}: version: expected 1")
    listed = top.get("phrases")
    if not isinstance(listed, yaml.MappingNode):
        raise PhraseError(source, [*problems, f"{_line(listed or root)}: phrases: a mapping"])
    out: dict[str, tuple[str, ...]] = {}
    for key, value in listed.value:
        code = str(key.value)
        where = f"{_line(key)}: phrases.{code}"
        if key.tag != "tag:yaml.org,2002:str" or not code.isdigit() or len(code) != 4:
            problems.append(f'{where}: an event code of 4 digits, quoted ("0501")')
            continue
        if code not in codes:
            problems.append(f"{where}: no event code {code} in the catalogue")
            continue
        if code in out:
            problems.append(f"{where}: listed twice")
            continue
        if not isinstance(value, yaml.SequenceNode) or not value.value:
            problems.append(f"{where}: a list of phrases")
            continue
        texts = []
        for index, item in enumerate(value.value):
            text = str(item.value).strip() if isinstance(item, yaml.ScalarNode) else ""
            if not text or len(text) > MAX_CHARS:
                problems.append(
                    f"{_line(item)}: phrases.{code}[{index}]: a sentence of 1-{MAX_CHARS} "
                    "characters"
                )
                continue
            texts.append(text)
        out[code] = tuple(texts)
    if problems:
        raise PhraseError(source, problems)
    return PhraseBook(out)


def load_phrases(codes: Container[str], path: Path = DEFAULT_PATH) -> PhraseBook:
    """Read the library at ``path``; :class:`PhraseError` names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PhraseError(str(path), [f"cannot read: {exc}"]) from exc
    return parse_phrases(text, codes, str(path))
