"""``fewshot tasks ...`` and ``fewshot tenants ...``: the HTTP API from the command line.

Every command talks to a running server through :class:`app.client.FewShotClient`
and prints the answer as JSON on standard output. The server's URL and keys come
from ``--url``/``FEWSHOT_URL`` (default http://127.0.0.1:8000),
``--api-key``/``FEWSHOT_API_KEY`` and ``--admin-key``/``FEWSHOT_ADMIN_KEY``.
An error answer of the server, or no answer, is printed on standard error and exits
with status 1; unusable input files or arguments (a missing key included) exit with
status 2.

This module imports only the standard library; httpx is imported when a command
runs, so ``fewshot serve`` does not pay for it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from app.cli.inputs import InputError, read_examples, read_json, read_labels, read_texts

if TYPE_CHECKING:
    from app.client import FewShotClient

DEFAULT_URL = "http://127.0.0.1:8000"


# --- connection -------------------------------------------------------------------------
def connection(args: argparse.Namespace) -> tuple[str, str | None, str | None]:
    """(url, api key, admin key) from the options, else the environment, else defaults."""
    url = args.url or os.environ.get("FEWSHOT_URL") or DEFAULT_URL
    api_key = (args.api_key or os.environ.get("FEWSHOT_API_KEY") or "").strip() or None  # a pasted key's newline
    admin_key = (args.admin_key or os.environ.get("FEWSHOT_ADMIN_KEY") or "").strip() or None
    return url, api_key, admin_key


def make_client(args: argparse.Namespace) -> FewShotClient:
    """The client the commands use (tests replace this to talk to an in-process app)."""
    from app.client import FewShotClient

    url, api_key, admin_key = connection(args)
    return FewShotClient(url, api_key=api_key, admin_key=admin_key, timeout=args.timeout)


def _change(args: argparse.Namespace) -> dict[str, Any]:
    """examples / labels / out_of_scope / unlabelled keyword arguments from the file options
    (a given file with nothing in it is an error, not a silent no-op)."""
    readers = {"examples": read_examples, "labels": read_labels, "out_of_scope": read_texts, "unlabelled": read_texts}
    change: dict[str, Any] = {"examples": [], "labels": None, "out_of_scope": None, "unlabelled": None}
    for key, reader in readers.items():
        path = getattr(args, key)
        if path:
            change[key] = reader(path)
            if not change[key]:
                raise InputError(f"{path}: no {key.replace('_', '-')} in it")
    return change


# --- commands ---------------------------------------------------------------------------------
def _create(client: FewShotClient, args: argparse.Namespace) -> Any:
    change = _change(args)
    if not (change["examples"] or change["labels"]):
        raise InputError("give --examples and/or --labels")
    return client.create_task(args.name, oos_threshold=args.oos_threshold, **change)


def _add(client: FewShotClient, args: argparse.Namespace) -> Any:
    change = _change(args)
    if not any(change.values()):
        raise InputError("give --examples, --labels, --out-of-scope and/or --unlabelled")
    return client.add_examples(args.task_id, **change)


def _update(client: FewShotClient, args: argparse.Namespace) -> Any:
    from app.client import UNSET

    threshold = None if args.clear_oos_threshold else (UNSET if args.oos_threshold is None else args.oos_threshold)
    if args.name is None and threshold is UNSET:
        raise InputError("give --name, --oos-threshold or --clear-oos-threshold")
    return client.update_task(args.task_id, name=args.name, oos_threshold=threshold)


def _predict(client: FewShotClient, args: argparse.Namespace) -> Any:
    texts = list(args.texts) + (read_texts(args.file) if args.file else [])
    if not texts:
        raise InputError("give texts as arguments or --file")
    return client.predict(args.task_id, texts, top_k=args.top_k, version=args.version)


def _evaluate(client: FewShotClient, args: argparse.Namespace) -> Any:
    examples = read_examples(args.data, oos_label=args.oos_label, allow_none=True)
    if args.out_of_scope:
        examples += [{"text": text, "label": None} for text in read_texts(args.out_of_scope)]
    if not examples:
        raise InputError(f"{args.data}: no examples")
    return client.evaluate(args.task_id, examples, version=args.version)


def _remove(client: FewShotClient, args: argparse.Namespace) -> Any:
    if not (args.example_ids or args.labels or args.unlabelled):
        raise InputError("give --example-id, --label and/or --unlabelled")
    return client.remove_examples(args.task_id, example_ids=args.example_ids or (), labels=args.labels or (),
                                  unlabelled=args.unlabelled)


def _export(client: FewShotClient, args: argparse.Namespace) -> Any:
    if args.out and Path(args.out).is_dir():
        raise InputError(f"--out {args.out} is a folder; give a file name")
    document = client.export_task(args.task_id, version=args.version)
    if args.out:
        try:
            Path(args.out).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as error:
            raise InputError(f"cannot write {args.out}: {error.strerror or error}") from error
        return {"exported": args.task_id, "version": document.get("version"), "file": args.out}
    return document


def _import(client: FewShotClient, args: argparse.Namespace) -> Any:
    document = read_json(args.file)
    if not isinstance(document, dict):
        raise InputError(f"{args.file}: expected a JSON object (a `fewshot tasks export` document)")
    if args.name:
        document["name"] = args.name
    return client.import_task(document)


def _delete(client: FewShotClient, args: argparse.Namespace) -> Any:
    client.delete_task(args.task_id)
    return {"deleted": args.task_id}


COMMANDS: dict[str, Callable[[FewShotClient, argparse.Namespace], Any]] = {
    "create": _create,
    "list": lambda c, a: c.list_tasks(limit=a.limit, offset=a.offset),
    "get": lambda c, a: c.get_task(a.task_id),
    "update": _update,
    "add": _add,
    "examples": lambda c, a: c.list_examples(a.task_id, version=a.version),
    "remove": _remove,
    "versions": lambda c, a: c.versions(a.task_id),
    "rollback": lambda c, a: c.rollback(a.task_id, a.version),
    "predict": _predict,
    "evaluate": _evaluate,
    "export": _export,
    "import": _import,
    "delete": _delete,
    "tenant-create": lambda c, a: c.create_tenant(a.name),
    "tenant-list": lambda c, a: c.list_tenants(limit=a.limit, offset=a.offset),
    "tenant-delete": lambda c, a: (c.delete_tenant(a.tenant_id), {"deleted": a.tenant_id})[1],
    "tenant-keys": lambda c, a: c.list_keys(a.tenant_id),
    "tenant-issue-key": lambda c, a: c.issue_key(a.tenant_id),
    "tenant-revoke-key": lambda c, a: (c.revoke_key(a.tenant_id, a.key_id), {"revoked": a.key_id})[1],
    "health": lambda c, a: c.healthz(),
}


def _check_keys(args: argparse.Namespace) -> None:
    """Refuse before sending anything when the URL is unusable or the command's key is missing."""
    from urllib.parse import urlsplit

    url, api_key, admin_key = connection(args)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host, parts = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise InputError(f"--url {url!r} is not an http:// or https:// URL with a host (e.g. http://127.0.0.1:8000)")
    admin_command = args.client_command.startswith("tenant-")
    if admin_command and not admin_key:
        raise InputError("no admin key: give --admin-key or set FEWSHOT_ADMIN_KEY")
    if not admin_command and args.client_command != "health" and not api_key:
        raise InputError("no API key: give --api-key or set FEWSHOT_API_KEY (`fewshot tenants create` makes one)")


def run(args: argparse.Namespace) -> int:
    """Run one client command; print its JSON answer, or the error on stderr."""
    import httpx

    from app.client import FewShotError

    url = connection(args)[0]
    try:
        _check_keys(args)
        with make_client(args) as client:
            result = COMMANDS[args.client_command](client, args)
    except (InputError, ValueError) as error:  # ValueError: the client refused an argument before sending it
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FewShotError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except httpx.InvalidURL as error:
        print(f"error: --url {url!r} is not a URL: {error}", file=sys.stderr)
        return 2
    except httpx.TimeoutException:
        print(f"error: no answer from {url} within {args.timeout:g} s; a change may still have been applied "
              "(check with `fewshot tasks list` or `tasks versions`), or raise --timeout", file=sys.stderr)
        return 1
    except httpx.HTTPError as error:
        print(f"error: cannot reach {url}: {error or type(error).__name__}", file=sys.stderr)
        return 1
    if result is not None:
        try:
            print(json.dumps(result, indent=2, ensure_ascii=False), flush=True)
        except BrokenPipeError:  # e.g. `fewshot tasks list | head`: the reader left, quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if args.client_command == "health" and result.get("status") != "ok":
        return 1  # still starting
    return 0


# --- parser -------------------------------------------------------------------------------------
def _finite_float(text: str) -> float:
    import math

    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return value


EXIT_CODES = "exit status: 0 done; 1 the server answered with an error, or did not answer; 2 unusable input or options"


def add_client_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``tasks``, ``tenants`` and ``health`` to the ``fewshot`` parser."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("server")
    group.add_argument("--url", default=None, help=f"server URL (default: FEWSHOT_URL, else {DEFAULT_URL})")
    group.add_argument("--api-key", default=None, help="tenant API key (default: FEWSHOT_API_KEY)")
    group.add_argument("--admin-key", default=None, help="admin key, for the `tenants` commands (default: FEWSHOT_ADMIN_KEY)")
    group.add_argument("--timeout", type=_seconds, default=120.0, help="seconds per request (default: 120)")

    def leaf(parent: argparse._SubParsersAction, name: str, command: str, help: str) -> argparse.ArgumentParser:
        parser = parent.add_parser(name, parents=[common], help=help, description=help, epilog=EXIT_CODES)
        parser.set_defaults(run=run, client_command=command)
        return parser

    def task_id(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("task_id", metavar="ID", help="the task id")

    def change_files(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--examples", metavar="FILE", help='JSONL, one {"text": ..., "label": ...} per line ("-": stdin)')
        parser.add_argument("--labels", metavar="FILE",
                            help='JSON: ["name", {"name": ..., "description": ...}, ...] or {"name": "description"}')
        parser.add_argument("--out-of-scope", metavar="FILE",
                            help='out-of-scope texts: one per line, or JSON objects with "text" ("-": stdin)')
        parser.add_argument("--unlabelled", metavar="FILE",
                            help='texts without labels that refine the label prototypes: one per line, or JSON '
                                 'objects with "text", labels ignored ("-": stdin)')

    tasks = commands.add_parser("tasks", help="manage and use tasks on a running server (tenant API key)")
    sub = tasks.add_subparsers(dest="tasks_command", required=True, metavar="COMMAND")

    create = leaf(sub, "create", "create", "create a task from examples and/or labels")
    create.add_argument("--name", required=True)
    change_files(create)
    create.add_argument("--oos-threshold", type=_finite_float, default=None, help="override the calibrated out-of-scope threshold")

    listing = leaf(sub, "list", "list", "list the tenant's tasks")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--offset", type=int, default=0)

    task_id(leaf(sub, "get", "get", "one task at its current version"))

    update = leaf(sub, "update", "update", "rename a task or set/clear its out-of-scope threshold override")
    task_id(update)
    update.add_argument("--name", default=None)
    threshold = update.add_mutually_exclusive_group()
    threshold.add_argument("--oos-threshold", type=_finite_float, default=None, help="override the calibrated threshold")
    threshold.add_argument("--clear-oos-threshold", action="store_true", help="back to the calibrated threshold")

    add = leaf(sub, "add", "add", "add examples, labels, out-of-scope or unlabelled texts (a new version)")
    task_id(add)
    change_files(add)

    examples = leaf(sub, "examples", "examples", "the examples of a version, with their ids")
    task_id(examples)
    examples.add_argument("--version", type=int, default=None)

    remove = leaf(sub, "remove", "remove", "remove examples by id, whole labels and/or all unlabelled texts (a new version)")
    task_id(remove)
    remove.add_argument("--example-id", dest="example_ids", type=int, nargs="+", action="extend", metavar="N",
                        help="example ids (from `tasks examples`); repeatable")
    remove.add_argument("--label", dest="labels", nargs="+", action="extend", metavar="LABEL", help="repeatable")
    remove.add_argument("--unlabelled", action="store_true", help="remove every unlabelled text")

    task_id(leaf(sub, "versions", "versions", "all versions of a task"))

    rollback = leaf(sub, "rollback", "rollback", "make a new version with the content of an earlier one")
    task_id(rollback)
    rollback.add_argument("--version", type=int, required=True)

    predict = leaf(sub, "predict", "predict", "classify texts")
    task_id(predict)
    predict.add_argument("texts", nargs="*", metavar="TEXT")
    predict.add_argument("--file", metavar="FILE", help='more texts: one per line, or JSON objects with "text" ("-": stdin)')
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--version", type=int, default=None, help="pin a version (default: the current one)")

    evaluate = leaf(sub, "evaluate", "evaluate", "accuracy, macro-F1, calibration error, per-label scores, confusions, out-of-scope recall and AUROC")
    task_id(evaluate)
    evaluate.add_argument("--data", required=True, metavar="FILE",
                          help='JSONL of {"text", "label"}; a null label is out of scope')
    evaluate.add_argument("--out-of-scope", metavar="FILE",
                          help='out-of-scope texts: one per line, or JSON objects with "text", labels ignored ("-": stdin)')
    evaluate.add_argument("--oos-label", default=None, metavar="LABEL", help="a gold label in --data that means out of scope")
    evaluate.add_argument("--version", type=int, default=None)

    export = leaf(sub, "export", "export", "the task as one JSON document (stdout, or --out)")
    task_id(export)
    export.add_argument("--version", type=int, default=None)
    export.add_argument("--out", default=None, metavar="FILE")

    imported = leaf(sub, "import", "import", "create a task from an exported document")
    imported.add_argument("file", metavar="FILE", help='the document ("-": stdin)')
    imported.add_argument("--name", default=None, help="a new name for the task")

    task_id(leaf(sub, "delete", "delete", "delete a task, its examples and versions"))

    tenants = commands.add_parser("tenants", help="manage tenants on a running server (admin key)")
    tenant_sub = tenants.add_subparsers(dest="tenants_command", required=True, metavar="COMMAND")
    tenant = leaf(tenant_sub, "create", "tenant-create", "create a tenant; prints its API key (shown once)")
    tenant.add_argument("name", metavar="NAME")
    tenant_list = leaf(tenant_sub, "list", "tenant-list", "list tenants with their number of tasks")
    tenant_list.add_argument("--limit", type=int, default=100)
    tenant_list.add_argument("--offset", type=int, default=0)
    tenant_id = "the tenant id (from `tenants list` or `tenants create`)"
    leaf(tenant_sub, "delete", "tenant-delete", "delete a tenant, its keys and all its tasks").add_argument(
        "tenant_id", metavar="TENANT", help=tenant_id)
    leaf(tenant_sub, "keys", "tenant-keys", "a tenant's API keys (ids and prefixes, never the keys)").add_argument(
        "tenant_id", metavar="TENANT", help=tenant_id)
    leaf(tenant_sub, "issue-key", "tenant-issue-key",
         "another API key for a tenant (shown once; the others keep working until revoked)").add_argument(
        "tenant_id", metavar="TENANT", help=tenant_id)
    revoke = leaf(tenant_sub, "revoke-key", "tenant-revoke-key", "revoke one of a tenant's keys (not its last)")
    revoke.add_argument("tenant_id", metavar="TENANT", help=tenant_id)
    revoke.add_argument("key_id", metavar="KEY_ID", type=int, help="the key's id (from `tenants keys`)")

    leaf(commands, "health", "health", "the server's /healthz")
