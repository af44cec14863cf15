"""The documentation: README.md is a short landing page that starts with the two commands,
docs/operations.md documents every setting and nothing that is not one, the command line
client's table lists every command, docs/meta-training.md every shipped checkpoint, and
every relative link of README.md and docs/*.md reaches an existing file (and heading)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from app.cli import build_parser
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# Linked from the README before it is written; checked like any other page once it exists.
PENDING = {DOCS / "reliability.md"}


def test_settings_table_matches_the_settings_class() -> None:
    text = (DOCS / "operations.md").read_text()
    documented = set(re.findall(r"^\| `FEWSHOT_([A-Z_]+)`", text, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    blocks = re.findall(r"```bash\n(.*?)\n```", README.read_text(), flags=re.DOTALL)
    serve, test = blocks[0].strip(), blocks[1].strip()
    assert serve.endswith("fewshot serve") and "constraints.txt" in serve
    assert test.endswith("pytest -q") and "constraints.txt" in test
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pytest -q" in ci and 'pip install -c constraints.txt -e ".[test]"' in ci


def test_readme_is_a_landing_page_under_300_lines() -> None:
    assert len(README.read_text().splitlines()) < 300


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def test_the_command_line_client_table_lists_every_command() -> None:
    text = (DOCS / "api.md").read_text()
    section = text[text.index("## Command line client"):]
    for group in ("tasks", "tenants"):
        documented = set(re.findall(rf"`fewshot {group} ([a-z-]+)|`{group} ([a-z-]+) ", section))
        documented = {a or b for a, b in documented} - {"COMMAND"}
        assert documented == set(_subcommands(_subcommands(build_parser())[group])), group


def test_every_shipped_checkpoint_is_listed() -> None:
    text = (DOCS / "meta-training.md").read_text()
    section = text[text.index("## Shipped checkpoints"):].split("\n## ")[0]
    shipped = {d.name for d in (ROOT / "models" / "checkpoints").iterdir() if (d / "manifest.json").is_file()}
    assert shipped, "no shipped checkpoints found"
    assert {name for name in shipped if f"`{name}`" not in section} == set()


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _prose(page.read_text()), flags=re.MULTILINE):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL))


def _broken_links(page: Path) -> list[str]:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(page.read_text())):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            if file not in PENDING:
                broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(target)
    return broken


def test_every_relative_link_reaches_a_file_and_heading() -> None:
    pages = [README, *sorted(DOCS.glob("*.md"))]
    assert len(pages) > 3
    assert {page.name: _broken_links(page) for page in pages if _broken_links(page)} == {}


def test_the_link_check_finds_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](missing.md) [no heading](page.md#nowhere) "
                    "`[code](not-a-link.md)`\n")
    assert _broken_links(page) == ["missing.md", "page.md#nowhere"]
