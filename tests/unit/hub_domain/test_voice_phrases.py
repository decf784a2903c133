"""The 高空喊话 phrase library: the shipped file loads against the catalogue; each wrong
entry is named with its line and nothing is half-loaded."""

from __future__ import annotations

import pytest

from central_hub.domain.catalogue import Catalogue
from central_hub.domain.voice_phrases import PhraseError, load_phrases, parse_phrases


def test_the_shipped_library_loads_against_the_catalogue() -> None:
    book = load_phrases(Catalogue.load())
    assert "此处禁止停车，请尽快将车辆驶离。" in book.by_code["0505"]
    assert all(book.by_code.values())


def test_each_problem_is_named_with_its_line() -> None:
    text = """version: 1
phrases:
  "0501":
    - 请勿占道经营。
    - ""
  "9999":
    - 不存在的类型
  0505:
    - 不加引号
  "0504": 不是列表
"""
    with pytest.raises(PhraseError) as caught:
        parse_phrases(text, {"0501", "0504", "0505"}, "phrases.yaml")
    assert caught.value.problems == (
        "line 5: phrases.0501[1]: a sentence of 1-200 characters",
        "line 6: phrases.9999: no event code 9999 in the catalogue",
        'line 8: phrases.0505: an event code of 4 digits, quoted ("0501")',
        "line 10: phrases.0504: a list of phrases",
    )
    assert str(caught.value).startswith("phrases.yaml: line 5")


def test_wrong_version_and_shape() -> None:
    with pytest.raises(PhraseError, match="line 1: version: expected 1"):
        parse_phrases('version: 2\nphrases: {"0501": [好]}\n', {"0501"})
    with pytest.raises(PhraseError, match="not valid YAML"):
        parse_phrases("phrases: [\n", {"0501"})
    with pytest.raises(PhraseError, match="phrases: a mapping"):
        parse_phrases("version: 1\nphrases: []\n", {"0501"})
