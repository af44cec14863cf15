"""Benchmark results as data: one JSON file per benchmark under ``docs/results/``.

Each benchmark calls :func:`write_result` when it finishes; the file it writes replaces
that benchmark's previous result (nothing is appended), and ``python -m benchmarks.report``
renders ``docs/benchmarks.md`` from all of them. A result holds what produced it (the
command, git commit, hardware, library versions, date), the section's Markdown body, the
figures as data, the plots it drew, and optional rows for the report's summary table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from benchmarks.common import command_line, environment
from benchmarks.report import RESULTS, write_report

FORMAT_VERSION = 1


def result_path(name: str) -> Path:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise ValueError(f"result names are lower-case slugs, not {name!r}")
    return RESULTS / f"{name}.json"


def write_result(
    name: str,
    title: str,
    body_markdown: str,
    data: dict[str, Any],
    *,
    summary: list[dict[str, str]] | None = None,
    plots: list[str | dict[str, str]] | None = None,
    command: str | None = None,
    order: int = 100,
    render: bool = True,
) -> Path:
    """Write (replace) ``docs/results/<name>.json``.

    ``summary`` rows (``{"figure", "value", "note"}``, optionally ``"topic"``, which groups
    the row in the report's summary table) feed that table; ``plots`` are file names under
    ``docs/`` (or ``{"file", "caption"}``) shown under the section; ``command`` overrides
    the command line of this process (for results produced by ``fewshot`` commands);
    ``order`` places the section in the report (lower first); ``render`` re-renders
    docs/benchmarks.md afterwards, so the page never lags its results."""
    record = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "title": title,
        "order": order,
        "command": command or command_line(),
        "environment": environment(),
        "body_markdown": body_markdown.strip() + "\n",
        "summary": summary or [],
        "plots": plots or [],
        "data": data,
    }
    path = result_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    if render:
        write_report()
    return path
