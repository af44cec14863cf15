"""The README documents every setting, and nothing that is not one."""

from __future__ import annotations

import re
from pathlib import Path

from app.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_settings_table_matches_the_settings_class() -> None:
    documented = set(re.findall(r"^\| `FEWSHOT_([A-Z_]+)`", README.read_text(), flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    blocks = re.findall(r"```bash\n(.*?)\n```", README.read_text(), flags=re.DOTALL)
    serve, test = blocks[0].strip(), blocks[1].strip()
    assert serve.endswith("fewshot serve") and "constraints.txt" in serve
    assert test.endswith("pytest -q") and "constraints.txt" in test
    ci = (README.parent / ".ci" / "run").read_text()
    assert "pytest -q" in ci and 'pip install -c constraints.txt -e ".[test]"' in ci
