"""Shared pieces of the benchmark scripts: the facts recorded with every result (hardware,
library versions, git commit, date, command line) and a real ``fewshot serve`` process on
loopback. Results themselves are written by :mod:`benchmarks.results`."""

from __future__ import annotations

import functools
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import httpx

ROOT = Path(__file__).resolve().parent.parent


def environment() -> dict[str, str]:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "cpu": f"{cpu} ({os.cpu_count()} cores visible)",
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "commit": _git_commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        return out.stdout.strip() + ("+dirty" if dirty.strip() else "")
    except OSError:
        return "unknown"


def command_line() -> str:
    return "python " + " ".join(shlex.quote(arg) for arg in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(env: dict[str, str], port: int, timeout_s: float = 120) -> Iterator[str]:
    """Start ``fewshot serve`` on loopback, wait for /healthz, stop it on exit."""
    full_env = {**os.environ, **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=full_env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("server did not become healthy")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def server_metric(client: httpx.Client, sample: str) -> float:
    """One sample of the server's ``GET /metrics`` (e.g. ``fewshot_encoder_pass_seconds_sum``),
    read with prometheus-client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(client.get("/metrics").text):
        for found in family.samples:
            if found.name == sample and not found.labels:
                return float(found.value)
    raise KeyError(f"the server exposes no {sample}")


@functools.lru_cache
def trained_on(checkpoint: str) -> frozenset[str]:
    """The data sets a checkpoint's manifest says it was meta-trained on (none for ``none``):
    figures on them are in distribution, and the report says so. Read once per checkpoint."""
    if checkpoint == "none":
        return frozenset()
    from models.checkpoint import resolve_checkpoint

    return frozenset(entry.get("name", "") for entry in resolve_checkpoint(checkpoint).manifest.get("trained_on", []))


def in_distribution_note(checkpoint: str, names: list[str]) -> str:
    """``"; in distribution: ..."`` when the checkpoint was meta-trained on any of ``names``."""
    trained = trained_on(checkpoint)
    seen = [name for name in names if name in trained]
    if not seen:
        return ""
    sets = " and ".join(f"{name.upper()}" for name in seen)
    return f"; in distribution: `{checkpoint}` was meta-trained on {sets} `train` (fixed few-shot rows left out)"
