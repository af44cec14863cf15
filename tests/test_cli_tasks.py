"""``fewshot tasks ...`` / ``fewshot tenants create``: the CLI against the in-process app.

The commands build their client with ``app.cli.tasks.make_client``; the fixture swaps it
for one that sends the requests through the test's TestClient (URL and keys are still
resolved from the options and the environment by the real code)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.cli import tasks as cli_tasks
from app.cli import build_parser, main
from app.client import FewShotClient
from tests.helpers import ADMIN_KEY, SYNTHETIC, SYNTHETIC_QUERIES, UNLABELLED_POOL, examples

Run = Callable[..., tuple[Any, str]]


@pytest.fixture
def run(client: TestClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """``run(*argv, code=0)``: (parsed JSON stdout or None, stderr) of one command."""
    used: list[tuple[str, str | None, str | None]] = []

    def make_client(args: Any) -> FewShotClient:
        url, api_key, admin_key = cli_tasks.connection(args)
        used.append((url, api_key, admin_key))
        return FewShotClient(url, api_key=api_key, admin_key=admin_key, http_client=client)

    monkeypatch.setattr(cli_tasks, "make_client", make_client)

    def invoke(*argv: str, code: int = 0) -> tuple[Any, str]:
        status = main(list(argv))
        out, err = capsys.readouterr()
        assert status == code, f"exit {status}: {err}"
        return (json.loads(out) if out.strip() else None), err

    invoke.used = used  # type: ignore[attr-defined]
    return invoke


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    examples_file = tmp_path / "examples.jsonl"
    examples_file.write_text("".join(json.dumps(e) + "\n" for e in examples()) + "\n", encoding="utf-8")
    labels_file = tmp_path / "labels.json"
    labels_file.write_text(json.dumps([{"name": "timer", "description": "start, stop or check a timer"}, "snooze"]))
    oos_file = tmp_path / "oos.txt"
    oos_file.write_text("tell me a joke\n\nhow do i cook pasta\n")
    test_file = tmp_path / "test.jsonl"
    test_file.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in SYNTHETIC_QUERIES)
                         + json.dumps({"text": "who are you", "label": "oos"}) + "\n")
    oos_test = tmp_path / "oos_test.jsonl"
    oos_test.write_text(json.dumps({"text": "what is the capital of france", "label": "oos"}) + "\n")
    texts = tmp_path / "texts.txt"
    texts.write_text("set my alarm\nplay a song\n")
    return {"examples": str(examples_file), "labels": str(labels_file), "oos": str(oos_file), "test": str(test_file),
            "oos_test": str(oos_test), "texts": str(texts), "dir": str(tmp_path)}


@pytest.fixture
def api_key(run: Run, monkeypatch: pytest.MonkeyPatch) -> str:
    """A tenant created with `fewshot tenants create`; its key in FEWSHOT_API_KEY."""
    monkeypatch.setenv("FEWSHOT_ADMIN_KEY", ADMIN_KEY)
    tenant, _ = run("tenants", "create", "acme")
    assert tenant["name"] == "acme" and tenant["api_key"].startswith("fsk_")
    monkeypatch.setenv("FEWSHOT_API_KEY", tenant["api_key"])
    return tenant["api_key"]


def test_task_commands_end_to_end(run: Run, files: dict[str, str], api_key: str) -> None:
    task, _ = run("tasks", "create", "--name", "assistant", "--examples", files["examples"], "--labels", files["labels"],
                  "--out-of-scope", files["oos"])
    task_id = task["id"]
    assert task["labels"] == sorted([*SYNTHETIC, "snooze", "timer"])
    assert task["label_descriptions"] == {"timer": "start, stop or check a timer"}
    assert task["num_examples"] == 12 and task["num_out_of_scope"] == 2

    listed, _ = run("tasks", "list")
    assert listed["total"] == 1 and listed["tasks"][0]["id"] == task_id
    assert run("tasks", "get", task_id)[0] == task

    predicted, _ = run("tasks", "predict", task_id, "what will the weather be tomorrow", "--file", files["texts"],
                       "--top-k", "2")
    assert [p["label"] for p in predicted["predictions"]] == ["weather", "alarm", "music"]
    assert all(len(p["top_k"]) == 2 for p in predicted["predictions"])

    more = Path(files["dir"]) / "more.jsonl"
    more.write_text(json.dumps({"text": "turn the music down", "label": "music", "source": "agent"}) + "\n")
    added, _ = run("tasks", "add", task_id, "--examples", str(more), "--out-of-scope", files["oos_test"])
    assert added["version"] == 2 and added["num_examples"] == 13 and added["num_out_of_scope"] == 3

    listed_examples, _ = run("tasks", "examples", task_id)
    assert listed_examples["version"] == 2 and len(listed_examples["examples"]) == 16
    assert len(run("tasks", "examples", task_id, "--version", "1")[0]["examples"]) == 14
    music_id = next(e["id"] for e in listed_examples["examples"] if e["text"] == "turn the music down")

    removed, _ = run("tasks", "remove", task_id, "--example-id", str(music_id), "--label", "snooze")
    assert removed["version"] == 3 and removed["num_examples"] == 12 and "snooze" not in removed["labels"]
    versions, _ = run("tasks", "versions", task_id)
    assert versions["current"] == 3 and [v["change"] for v in versions["versions"]] == ["create", "append", "remove"]
    rolled, _ = run("tasks", "rollback", task_id, "--version", "1")
    assert rolled["version"] == 4 and rolled["labels"] == task["labels"]
    pinned, _ = run("tasks", "predict", task_id, "play a song", "--version", "2")
    assert pinned["version"] == 2 and pinned["predictions"][0]["label"] == "music"

    report, _ = run("tasks", "evaluate", task_id, "--data", files["test"], "--oos-label", "oos",
                    "--out-of-scope", files["oos_test"])
    assert report["version"] == 4
    assert report["report"]["num_texts"] == len(SYNTHETIC_QUERIES) + 2
    assert report["report"]["num_in_scope"] == len(SYNTHETIC_QUERIES) and report["report"]["accuracy"] == 1.0
    assert report["report"]["out_of_scope"]["support"] == 2

    updated, _ = run("tasks", "update", task_id, "--name", "renamed", "--oos-threshold", "1.01")
    assert updated["name"] == "renamed" and updated["oos_threshold_override"] == 1.01
    strict, _ = run("tasks", "evaluate", task_id, "--data", files["test"], "--oos-label", "oos")
    assert strict["report"]["out_of_scope"]["recall"] == 1.0
    cleared, _ = run("tasks", "update", task_id, "--clear-oos-threshold")
    assert cleared["oos_threshold_override"] is None

    deleted, _ = run("tasks", "delete", task_id)
    assert deleted == {"deleted": task_id}
    assert run("tasks", "list")[0]["total"] == 0


def test_export_then_import(run: Run, files: dict[str, str], api_key: str, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    task, _ = run("tasks", "create", "--name", "assistant", "--examples", files["examples"], "--labels", files["labels"])
    document, _ = run("tasks", "export", task["id"])  # stdout: `fewshot tasks export ID > task.json`
    assert document["format"] == "fewshot-task" and document["name"] == "assistant"
    saved = tmp_path / "task.json"
    written, _ = run("tasks", "export", task["id"], "--version", "1", "--out", str(saved))
    assert written == {"exported": task["id"], "version": 1, "file": str(saved)}
    assert json.loads(saved.read_text()) == document

    imported, _ = run("tasks", "import", str(saved), "--name", "copy")
    assert imported["name"] == "copy" and imported["id"] != task["id"]
    for field in ("labels", "label_descriptions", "num_examples", "oos_threshold"):
        assert imported[field] == task[field], field
    original, _ = run("tasks", "predict", task["id"], *(t for t, _ in SYNTHETIC_QUERIES))
    copy, _ = run("tasks", "predict", imported["id"], *(t for t, _ in SYNTHETIC_QUERIES))
    assert copy["predictions"] == original["predictions"]


def test_zero_shot_create_from_a_labels_object(run: Run, api_key: str, tmp_path: Path) -> None:
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"weather": "questions about the weather forecast", "music": "play music or a song"}))
    task, _ = run("tasks", "create", "--name", "zero", "--labels", str(labels))
    assert task["labels"] == ["music", "weather"] and task["num_examples"] == 0
    assert run("tasks", "predict", task["id"], "play a song")[0]["predictions"][0]["label"] == "music"


def test_unlabelled_texts_from_a_file(run: Run, api_key: str, tmp_path: Path) -> None:
    labels, pool = tmp_path / "labels.json", tmp_path / "pool.jsonl"
    labels.write_text(json.dumps(sorted(SYNTHETIC)))
    pool.write_text("".join(json.dumps({"text": t, "label": "ignored"}) + "\n" for t in UNLABELLED_POOL))
    task, _ = run("tasks", "create", "--name", "zero", "--labels", str(labels), "--unlabelled", str(pool))
    assert task["num_unlabelled"] == len(UNLABELLED_POOL)
    predicted = run("tasks", "predict", task["id"], "is it going to rain today")[0]["predictions"][0]["label"]
    assert predicted == "weather"
    removed, _ = run("tasks", "remove", task["id"], "--unlabelled")
    assert removed["version"] == 2 and removed["num_unlabelled"] == 0
    added, _ = run("tasks", "add", task["id"], "--unlabelled", str(pool))
    assert added["version"] == 3 and added["num_unlabelled"] == len(UNLABELLED_POOL)


def test_errors_are_reported_with_a_non_zero_exit(run: Run, files: dict[str, str], api_key: str,
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out, err = run("tasks", "get", "0123456789abcdef0123456789abcdef", code=1)
    assert out is None and err == "error: 404 not_found: task 0123456789abcdef0123456789abcdef not found\n"

    one_label = tmp_path / "one.jsonl"
    one_label.write_text(json.dumps({"text": "play music", "label": "music"}) + "\n")
    _, err = run("tasks", "create", "--name", "x", "--examples", str(one_label), code=1)
    assert err.startswith("error: 422 validation_error: a task needs at least two labels")

    _, err = run("tasks", "create", "--name", "x", "--examples", str(tmp_path / "missing.jsonl"), code=2)
    assert "cannot read" in err and "missing.jsonl" in err
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"text": "a", "label": "b"}) + "\n{not json\n")
    _, err = run("tasks", "create", "--name", "x", "--examples", str(broken), code=2)
    assert f"{broken}:2: not JSON" in err
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text(json.dumps({"text": "a"}) + "\n")
    _, err = run("tasks", "add", "abc", "--examples", str(unlabelled), code=2)
    assert f'{unlabelled}:1: "label" must be a string' in err
    _, err = run("tasks", "create", "--name", "x", code=2)
    assert "--examples and/or --labels" in err
    _, err = run("tasks", "predict", "abc", code=2)
    assert "give texts" in err
    _, err = run("tasks", "remove", "abc", code=2)
    assert "--example-id" in err
    not_a_document = tmp_path / "list.json"
    not_a_document.write_text("[1, 2]")
    _, err = run("tasks", "import", str(not_a_document), code=2)
    assert "expected a JSON object" in err

    monkeypatch.delenv("FEWSHOT_API_KEY")
    _, err = run("tasks", "list", code=2)  # refused before anything is sent
    assert err.startswith("error: no API key: give --api-key or set FEWSHOT_API_KEY")
    monkeypatch.delenv("FEWSHOT_ADMIN_KEY")
    _, err = run("tenants", "create", "x", code=2)
    assert err.startswith("error: no admin key")
    _, err = run("tasks", "list", "--api-key", "fsk_wrong", code=1)
    assert err.startswith("error: 401 unauthorized")
    _, err = run("tenants", "create", "x", "--admin-key", "wrong", code=1)
    assert err.startswith("error: 403 forbidden")


def test_unusable_files_and_options_are_one_line_and_exit_2(run: Run, files: dict[str, str], api_key: str,
                                                             tmp_path: Path) -> None:
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 ouvert ?\n".encode("latin-1"))
    for argv in (("tasks", "predict", "abc", "--file", str(latin)), ("tasks", "add", "abc", "--out-of-scope", str(latin)),
                 ("tasks", "import", str(latin))):
        _, err = run(*argv, code=2)
        assert err == f"error: {latin}: not UTF-8 text (byte 3); save it as UTF-8\n"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    _, err = run("tasks", "create", "--name", "x", "--examples", str(empty), code=2)
    assert err == f"error: {empty}: no examples in it\n"
    no_labels = tmp_path / "labels.json"
    no_labels.write_text("[]")
    _, err = run("tasks", "create", "--name", "x", "--labels", str(no_labels), code=2)
    assert err == f"error: {no_labels}: no labels in it\n"
    _, err = run("tasks", "get", "", code=2)
    assert err == "error: an id is needed (got an empty one)\n"
    _, err = run("tasks", "list", "--api-key", "fsk_caf\xe9", code=2)
    assert "non-ASCII" in err and "fsk_" not in err  # the key itself is not echoed

    task, _ = run("tasks", "create", "--name", "t", "--examples", files["examples"])
    # a padded key (pasted with its newline) still works; a task id is one path segment
    got, _ = run("tasks", "get", task["id"], "--api-key", f" {api_key}\n")
    assert got["id"] == task["id"]
    _, err = run("tasks", "get", f"{task['id']}/versions", code=2)
    assert err == f"error: not an id: '{task['id']}/versions'\n"
    # out-of-scope texts as JSON objects in a file not called .jsonl: the text, not the JSON
    oos = tmp_path / "oos.json"
    oos.write_text(json.dumps({"text": "tell me a joke", "label": "oos"}) + "\n{not json, a plain line\n")
    run("tasks", "add", task["id"], "--out-of-scope", str(oos))
    listed, _ = run("tasks", "examples", task["id"])
    assert sorted(e["text"] for e in listed["examples"] if e["kind"] == "out_of_scope") == [
        "tell me a joke", "{not json, a plain line"]
    _, err = run("tasks", "export", task["id"], "--out", str(tmp_path), code=2)
    assert "is a folder" in err
    _, err = run("tasks", "export", task["id"], "--out", str(tmp_path / "no" / "such" / "dir.json"), code=2)
    assert err.startswith(f"error: cannot write {tmp_path / 'no' / 'such' / 'dir.json'}")
    for bad in ("nan", "inf"):
        with pytest.raises(SystemExit):  # argparse: must be a finite number
            main(["tasks", "update", "abc", "--oos-threshold", bad])
    for bad in ("0", "-1", "inf"):
        with pytest.raises(SystemExit):
            main(["tasks", "list", "--timeout", bad])


def test_tenant_commands_rotate_and_revoke_keys(run: Run, api_key: str) -> None:
    listed, _ = run("tenants", "list")
    tenant = listed["tenants"][0]
    assert listed["total"] == 1 and tenant["name"] == "acme" and tenant["num_tasks"] == 0
    keys, _ = run("tenants", "keys", tenant["id"])
    assert [k["prefix"] for k in keys] == [api_key[:12]]
    issued, _ = run("tenants", "issue-key", tenant["id"])
    assert issued["api_key"].startswith("fsk_") and issued["id"] != keys[0]["id"]
    assert run("tenants", "revoke-key", tenant["id"], str(keys[0]["id"]))[0] == {"revoked": keys[0]["id"]}
    _, err = run("tasks", "list", code=1)  # FEWSHOT_API_KEY holds the revoked key
    assert err.startswith("error: 401 unauthorized")
    assert run("tasks", "list", "--api-key", issued["api_key"])[0]["total"] == 0
    _, err = run("tenants", "revoke-key", tenant["id"], str(issued["id"]), code=1)
    assert "last key" in err
    assert run("tenants", "delete", tenant["id"])[0] == {"deleted": tenant["id"]}
    assert run("tenants", "list")[0]["total"] == 0


def test_url_and_keys_come_from_options_then_environment(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    run("health")
    assert run.used[-1] == ("http://127.0.0.1:8000", None, None)  # type: ignore[attr-defined]
    monkeypatch.setenv("FEWSHOT_URL", "http://fewshot.internal:9000")
    monkeypatch.setenv("FEWSHOT_API_KEY", "fsk_env")
    monkeypatch.setenv("FEWSHOT_ADMIN_KEY", "admin-env")
    health, _ = run("health")
    assert health["status"] == "ok"
    assert run.used[-1] == ("http://fewshot.internal:9000", "fsk_env", "admin-env")  # type: ignore[attr-defined]
    run("health", "--url", "http://other:1", "--api-key", "fsk_opt", "--admin-key", "admin-opt")
    assert run.used[-1] == ("http://other:1", "fsk_opt", "admin-opt")  # type: ignore[attr-defined]


def test_an_unreachable_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["tasks", "list", "--url", f"http://127.0.0.1:{port}", "--timeout", "5", "--api-key", "fsk_x"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: cannot reach http://127.0.0.1:{port}: ")
    for bad in ("http://[::1", "localhost:8000", "127.0.0.1:8000", "http://", "ftp://x"):
        assert main(["health", "--url", bad]) == 2
        assert capsys.readouterr().err.startswith(f"error: --url {bad!r} is not an http:// or https:// URL")


def test_a_timeout_says_the_change_may_have_been_applied(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import httpx

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    monkeypatch.setattr(cli_tasks, "make_client", lambda args: FewShotClient(
        cli_tasks.connection(args)[0], api_key="fsk_x", transport=httpx.MockTransport(slow)))
    assert main(["tasks", "list", "--api-key", "fsk_x", "--timeout", "0.5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no answer from http://127.0.0.1:8000 within 0.5 s; a change may still have been applied")


def test_parser_and_light_imports() -> None:
    args = build_parser().parse_args(["tasks", "remove", "abc", "--example-id", "1", "2", "--example-id", "3",
                                      "--label", "a", "--label", "b"])
    assert args.example_ids == [1, 2, 3] and args.labels == ["a", "b"] and args.task_id == "abc"
    args = build_parser().parse_args(["tasks", "predict", "abc", "one", "two", "--top-k", "1", "--version", "2"])
    assert args.texts == ["one", "two"] and args.top_k == 1 and args.version == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["tasks"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["tasks", "update", "abc", "--oos-threshold", "1", "--clear-oos-threshold"])
    code = "import sys, app.cli; app.cli.build_parser(); print(sorted(m for m in ('torch', 'httpx') if m in sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"  # `fewshot serve` does not pay for the client
