"""The Python client is a separate part: importing it loads nothing of the server.

An application installs the client to talk to the service over HTTP; if ``app.client``
pulled in FastAPI, SQLAlchemy, torch or the server's own modules, it would need the
whole service stack. Two checks: a fresh interpreter imports ``app.client`` and no
server module is in ``sys.modules``; and no file of ``app/client/`` names a server
module in any import, including imports inside functions that only run later."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parent.parent / "app" / "client"
SERVER = ("app.main", "app.routers", "app.services", "app.repositories", "app.db", "app.settings",
          "fastapi", "sqlalchemy", "torch", "models")


def _is_server(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in SERVER)


def test_importing_the_client_loads_no_server_module() -> None:
    code = ("import json, sys, app.client; "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    assert "app.client.client" in loaded  # the import really happened
    assert [name for name in loaded if _is_server(name)] == []


def _imported_modules(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # from app import db
    return names


def test_no_client_file_imports_the_server() -> None:
    files = sorted(CLIENT.glob("*.py"))
    assert files, f"no client modules under {CLIENT}"
    offending = {file.name: sorted(name for name in _imported_modules(file) if _is_server(name))
                 for file in files}
    assert {name: found for name, found in offending.items() if found} == {}


def test_the_checks_recognise_a_server_import(tmp_path: Path) -> None:
    module = tmp_path / "late.py"
    module.write_text("def late():\n    from app import settings\n    import sqlalchemy.orm\n")
    assert sorted(name for name in _imported_modules(module) if _is_server(name)) == [
        "app.settings", "sqlalchemy.orm"]
