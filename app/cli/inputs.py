"""Input files of the ``fewshot tasks`` commands: examples, labels, texts, documents.

Standard library only (the CLI module imports this at parse time). Every problem with
a file is an :class:`InputError` naming the file and line, which the commands turn
into one ``error:`` line and exit status 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


class InputError(Exception):
    """An input file or argument the command cannot use (exit status 2)."""



def _lines(path: str) -> list[tuple[int, str]]:
    """(line number, line) of the non-blank lines of a file, or of stdin for ``-``."""
    text = _read(path)
    return [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def _read(path: str) -> str:
    """A UTF-8 file's text, or stdin's for ``-``."""
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8") from error


def _json_line(path: str, number: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{number}: not JSON ({error.msg})") from error


def read_examples(path: str, oos_label: str | None = None, allow_none: bool = False) -> list[dict[str, Any]]:
    """A JSONL file of ``{"text": ..., "label": ...}`` objects (other keys are ignored).

    With ``allow_none`` (evaluation data) a null label, or ``oos_label``, marks an
    out-of-scope text."""
    examples = []
    for number, line in _lines(path):
        row = _json_line(path, number, line)
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise InputError(f'{path}:{number}: expected an object with "text" and "label"')
        label = row.get("label")
        if allow_none and oos_label is not None and label == oos_label:
            label = None
        if not (isinstance(label, str) or (allow_none and label is None)):
            raise InputError(f'{path}:{number}: "label" must be a string')
        examples.append({"text": row["text"], "label": label})
    return examples


def read_texts(path: str) -> list[str]:
    """Texts, one per line. A line that is a JSON object with ``"text"`` (e.g.
    ``{"text": ..., "label": "oos"}``: the label is ignored) gives that text, whatever
    the file is called; in a ``.jsonl``/``.ndjson`` file every line must be a JSON
    string or such an object."""
    texts = []
    jsonl = path.endswith((".jsonl", ".ndjson"))
    for number, line in _lines(path):
        if not jsonl:
            row = _json_object(line)
            texts.append(row["text"] if row is not None else line.strip())
            continue
        row = _json_line(path, number, line)
        if isinstance(row, dict) and isinstance(row.get("text"), str):
            texts.append(row["text"])
        elif isinstance(row, str):
            texts.append(row)
        else:
            raise InputError(f'{path}:{number}: expected a JSON string or an object with "text"')
    return texts


def _json_object(line: str) -> dict[str, Any] | None:
    """The line as a JSON object with a string ``"text"``, else None (a plain text line)."""
    if not line.lstrip().startswith("{"):
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("text"), str) else None


def read_labels(path: str) -> list[dict[str, Any]]:
    """A JSON file: a list of names and/or ``{"name", "description"}`` objects, or an
    object ``{name: description or null}``."""
    data = read_json(path)
    if isinstance(data, dict):
        data = [{"name": name, "description": description} for name, description in data.items()]
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a list of labels or an object {{name: description}}")
    labels = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InputError(f'{path}: labels[{i}] must be a name or an object with "name"')
        labels.append({"name": item["name"], "description": item.get("description")})
    return labels


def read_json(path: str) -> Any:
    text = _read(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not JSON ({error.msg})") from error
