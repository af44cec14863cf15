"""Reading labelled texts: JSONL files with one ``{"text", "label"}`` object per line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: str


def read_jsonl(path: str | Path) -> list[LabelledText]:
    """All rows of a JSONL data set; a malformed line is an error naming its number."""
    rows: list[LabelledText] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                text, label = record["text"], record["label"]
                if isinstance(label, int) and not isinstance(label, bool):
                    label = str(label)  # class ids, as many published data sets have them
                if not (isinstance(text, str) and text.strip() and isinstance(label, str) and label):
                    raise ValueError(f"text and label must be non-empty strings (or an integer label), "
                                     f"got {text!r} and {label!r}")
                rows.append(LabelledText(text, label))
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: expected {{\"text\", \"label\"}}: {error}") from error
    return rows
