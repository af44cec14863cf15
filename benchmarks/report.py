"""Render ``docs/benchmarks.md`` from the results under ``docs/results/`` (nothing else).

The page opens with a summary table gathered from every result's ``summary`` rows, then
the table of ideas that did not help (the result named ``not_helpful``: its ``data.rows``
of ``{"idea", "effect", "command"}``), then one section per result with the command, run
date, commit, hardware, versions, body and plots. The output depends only on the JSON
files, so re-rendering unchanged results gives the same bytes.

    python -m benchmarks.report          # write docs/benchmarks.md
    python -m benchmarks.report --check  # exit 1 if docs/benchmarks.md is not what it would render
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT

RESULTS = ROOT / "docs" / "results"
DOC = RESULTS.parent / "benchmarks.md"
NOT_HELPFUL = "not_helpful"
# Summary rows are grouped by topic in this order; other topics (a row without one is filed
# under its result's title) follow, alphabetically.
TOPICS = ["accuracy", "out of scope", "calibration", "zero shot", "continual updates", "time to ready",
          "latency and throughput", "memory", "restart and tenants", "SetFit", "meta-training"]

INTRO = """# Benchmarks

What the service measures on public intent data sets: accuracy per data set and shot
count, out-of-scope detection, calibration, zero shot, time to ready, predict latency and
throughput, memory per task, and a SetFit baseline. Every figure comes from the command
given in its section (a script in `benchmarks/`, or `fewshot meta-train` /
`fewshot evaluate`), which also gives the run date, the commit, the hardware and the
library versions; a section run at an older commit holds that commit's figures. Machines
are noisy (most runs are on a 2-core CPU VM shared with other work): where two things are
compared, they ran side by side in the same run.

**Regenerating this page.** Each benchmark writes its result to `docs/results/<name>.json`,
replacing its previous result (nothing is appended), and this page is rendered from those
files only: run `python -m benchmarks.report` after a benchmark. Do not edit this page by
hand: `python -m benchmarks.report --check` (run by the tests) fails when it differs from
what the results render.
"""


def read_results(folder: Path = RESULTS) -> list[dict[str, Any]]:
    """Every result in ``folder``, in report order (``order``, then title)."""
    records = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    return sorted(records, key=lambda record: (record.get("order", 100), record["title"]))

def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def cell(text: Any) -> str:
    """A value as one Markdown table cell (no line breaks, pipes escaped)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def topic_key(topic: str) -> tuple[int, str]:
    return (TOPICS.index(topic), "") if topic in TOPICS else (len(TOPICS), topic)


def summary_table(results: list[dict[str, Any]]) -> str:
    rows = []
    for record in results:
        for row in record.get("summary", []):
            rows.append((row.get("topic") or record["title"], row, record["title"]))
    rows.sort(key=lambda item: topic_key(item[0]))  # stable: result order, then row order
    lines = ["## Summary", "", "Current figures; each links to the section with its command and conditions.", "",
             "| topic | figure | value | note | section |", "|---|---|---|---|---|"]
    lines += [f"| {cell(topic)} | {cell(row['figure'])} | {cell(row['value'])} | {cell(row.get('note', ''))} "
              f"| [{cell(title)}](#{slug(title)}) |" for topic, row, title in rows]
    return "\n".join(lines) + "\n"


def not_helpful_table(record: dict[str, Any] | None, titles: dict[str, str]) -> str:
    lines = ["## What did not help", ""]
    if record is None:
        return "\n".join(lines + ["No result named `not_helpful` yet."]) + "\n"
    if record.get("body_markdown", "").strip():
        lines += [record["body_markdown"].strip(), ""]
    lines += ["| idea | measured effect | command |", "|---|---|---|"]
    for row in record["data"]["rows"]:
        effect = cell(row["effect"])
        if row.get("section") in titles:
            effect += f" ([details](#{slug(titles[row['section']])}))"
        lines.append(f"| {cell(row['idea'])} | {effect} | {cell(row['command'])} |")
    return "\n".join(lines) + "\n"


def provenance(record: dict[str, Any]) -> list[str]:
    """The command, run, hardware and versions lines of a section (whatever the result records)."""
    env = record.get("environment", {})
    command = record.get("command", "").strip()
    lines = [f"Command: `{command}`  "] if command and "\n" not in command else []
    if "\n" in command:
        lines = ["Commands:", "", "```bash", command, "```", ""]
    run = ", ".join(part for part in (env.get("date", ""), f"commit {env['commit']}" if env.get("commit") else "") if part)
    if run:
        lines.append(f"Run: {run}  ")
    if env.get("cpu") or env.get("gpu"):
        lines.append(f"Hardware: CPU {env.get('cpu', 'not recorded')}, GPU {env.get('gpu', 'not recorded')}  ")
    versions = ", ".join(f"{label} {env[key]}" for key, label in
                         (("python", "Python"), ("torch", "torch"), ("transformers", "transformers")) if env.get(key))
    if versions:
        lines.append(f"Versions: {versions}  ")
    if record.get("name"):
        lines.append(f"Figures as data: [results/{record['name']}.json](results/{record['name']}.json)  ")
    if env.get("note"):
        lines.append(env["note"].strip() + "  ")
    if lines and lines[-1].endswith("  "):
        lines[-1] = lines[-1].rstrip()
    return lines


def section(record: dict[str, Any]) -> str:
    lines = [f"## {record['title']}", "", *provenance(record), "", record.get("body_markdown", "").strip(), ""]
    for plot in record.get("plots", []):
        file, caption = (plot, Path(plot).stem.replace("-", " ").replace("_", " ")) if isinstance(plot, str) \
            else (plot["file"], plot.get("caption", Path(plot["file"]).stem))
        if f"]({file})" not in record.get("body_markdown", ""):  # a body may already show it
            lines += [f"![{caption}]({file})", ""]
    return "\n".join(lines)


def render(folder: Path = RESULTS) -> str:
    """The whole page from the results in ``folder``; raises if two results share a title."""
    results = read_results(folder)
    titles = {record["name"]: record["title"] for record in results}
    headings = ["Benchmarks", "Summary", "What did not help", *(r["title"] for r in results if r["name"] != NOT_HELPFUL)]
    duplicates = sorted({slug(h) for h in headings if [slug(x) for x in headings].count(slug(h)) > 1})
    if duplicates:
        raise ValueError(f"headings must be unique, these repeat: {duplicates}")
    helpful = next((r for r in results if r["name"] == NOT_HELPFUL), None)
    others = [r for r in results if r["name"] != NOT_HELPFUL]
    parts = [INTRO, summary_table(others), not_helpful_table(helpful, titles), *(section(r) for r in others)]
    return "\n".join(part.rstrip() + "\n" for part in parts)


def write_report() -> str:
    """Render the results into docs/benchmarks.md; returns the text written."""
    text = render()
    DOC.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/benchmarks.md is not current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is not what docs/results/ renders: run python -m benchmarks.report", file=sys.stderr)
            return 1
        return 0
    write_report()
    print(f"wrote {DOC} ({text.count(chr(10))} lines, {len(read_results())} results)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
