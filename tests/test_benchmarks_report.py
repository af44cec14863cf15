"""docs/benchmarks.md is generated from docs/results/*.json: the committed page must be what
``python -m benchmarks.report`` renders now, with every heading once and the summary first."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.report import read_results

ROOT = Path(__file__).resolve().parent.parent


def _headings(text: str) -> list[str]:
    prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.findall(r"^#{1,6} (.+)$", prose, flags=re.MULTILINE)


def test_committed_page_is_what_the_results_render() -> None:
    assert report.main(["--check"]) == 0, "run: python -m benchmarks.report"


def test_every_heading_appears_once_and_the_summary_comes_first() -> None:
    headings = _headings((ROOT / "docs" / "benchmarks.md").read_text())
    assert [h for h in headings if headings.count(h) > 1] == []
    assert headings[:3] == ["Benchmarks", "Summary", "What did not help"]
    assert len(headings) == 3 + len([r for r in read_results() if r["name"] != report.NOT_HELPFUL])


def test_every_summary_row_and_plot_points_at_something_real() -> None:
    for record in read_results():
        for row in record["summary"]:
            assert {"figure", "value"} <= row.keys(), record["name"]
        for plot in record["plots"]:
            file = plot if isinstance(plot, str) else plot["file"]
            assert (ROOT / "docs" / file).is_file(), file


def _result(folder: Path, name: str, title: str, **extra: object) -> None:
    record = {"name": name, "title": title, "order": 1, "command": "python benchmarks/x.py",
              "environment": {"date": "2026-01-01 00:00 UTC", "commit": "abc1234"},
              "body_markdown": "Body.\n", "summary": [], "plots": [], "data": {}, **extra}
    (folder / f"{name}.json").write_text(json.dumps(record))


def test_render_gathers_summary_rows_and_the_not_helpful_table(tmp_path: Path) -> None:
    _result(tmp_path, "speed", "Speed", summary=[{"topic": "latency and throughput", "figure": "p50", "value": "3 ms"}])
    _result(tmp_path, "acc", "Accuracy | A", summary=[{"topic": "accuracy", "figure": "top-1", "value": "90%", "note": "n"}])
    _result(tmp_path, "not_helpful", "What did not help",
            data={"rows": [{"idea": "Bigger", "effect": "-1", "command": "`x`", "section": "speed"}]})
    page = report.render(tmp_path)
    summary = page[page.index("## Summary"):page.index("## What did not help")]
    assert summary.index("top-1") < summary.index("p50")  # topics in their fixed order
    assert "| accuracy | top-1 | 90% | n | [Accuracy \\| A](#accuracy--a) |" in summary
    assert "| Bigger | -1 ([details](#speed)) | `x` |" in page
    assert page.count("## What did not help") == 1 and "Run: 2026-01-01 00:00 UTC, commit abc1234" in page
    assert report.render(tmp_path) == page


def test_render_refuses_two_results_with_one_title(tmp_path: Path) -> None:
    _result(tmp_path, "one", "Same title")
    _result(tmp_path, "two", "Same title")
    with pytest.raises(ValueError, match="same-title"):
        report.render(tmp_path)


def test_the_benchmarks_summary_rows_read_their_stored_results() -> None:
    from benchmarks import customer_service, oos_scores, predict_load, service_http, setfit_baseline

    data = {r["name"]: r["data"] for r in read_results()}
    rows = {
        "customer_service": customer_service.summary_rows(data["customer_service"]),
        "service_http": service_http.summary_rows("banking77", "default", data["service_http_banking77"]["splits"]),
        "oos_scores": oos_scores.summary_rows(data["oos_scores_3shot"]),
        "predict_load": predict_load.summary_rows(data["predict_load"]),
        "setfit_baseline": setfit_baseline.summary_rows(data["setfit_baseline"]),
    }
    assert {name: [r for r in found if not r["value"]] for name, found in rows.items()} == {name: [] for name in rows}
    assert rows["customer_service"][0]["value"] == str(data["customer_service"]["out_of_scope_clinc150"]["auroc"])
    assert oos_scores.summary_rows({**data["oos_scores_3shot"], "shots": 10}) == []
