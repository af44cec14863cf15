"""Reading JSONL data sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.data import LabelledText, read_jsonl
from tests.helpers import FIXTURES


def test_reads_rows_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "hi", "label": "greet"}\n\n{"text": "bye", "label": 3, "extra": true}\n', "utf-8")
    assert read_jsonl(path) == [LabelledText("hi", "greet"), LabelledText("bye", "3")]


def test_reads_the_committed_fixture() -> None:
    rows = read_jsonl(FIXTURES / "banking77_subset.jsonl")
    assert len(rows) == 120 and len({row.label for row in rows}) == 8


@pytest.mark.parametrize(
    "bad_line",
    ['{"text": "no label"}', "not json", '{"label": "x"}', "[1, 2]", '"just a string"', "null",
     '{"text": null, "label": null}', '{"text": 12345, "label": "a"}', '{"text": "ok", "label": 1.5}',
     '{"text": "  ", "label": "a"}', '{"text": "ok", "label": ""}'],
)
def test_malformed_line_names_its_number(tmp_path: Path, bad_line: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n\n' + bad_line + "\n", "utf-8")
    with pytest.raises(ValueError, match=r"data\.jsonl:3:"):
        read_jsonl(path)
