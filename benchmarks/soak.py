"""Soak: a bounded mixed load on a real `fewshot serve` over loopback, for minutes, while
the server's memory (RSS) and open file descriptors are sampled.

``--tenants`` clients (default 20), one per tenant, each in a closed loop with a short
pause: keep about three tasks (create when fewer), then predict (60 %), append one
example (20 %), list tasks (10 %) or delete a task (10 %). Every ``--sample-s`` seconds
(default 10) the server's RSS and open fds are read from /proc. At the end: requests,
errors (non-2xx or no answer) and p50/p99 latency per operation, memory growth after
warm-up (the first sample after ``--warmup-min`` to the last), a JSON summary
(``--json``) and a memory-over-time PNG (``--png``).

    python benchmarks/soak.py                      # 10 minutes, 20 tenants, packaged MiniLM
    python benchmarks/soak.py --minutes 1 --tenants 4 --checkpoint none
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, command_line, environment, free_port  # noqa: E402

ADMIN = "soak-admin-key-0123456789abcdef"
LABELS = {
    "weather": ["what is the weather", "will it rain today", "is it sunny", "forecast for tomorrow"],
    "music": ["play some music", "next song please", "turn the music up", "play my playlist"],
    "alarm": ["set an alarm", "wake me up at seven", "cancel my alarm", "snooze the alarm"],
    "timer": ["start a timer", "ten minute timer", "how long is left on my timer", "stop the timer"],
}
QUERIES = ["is it going to rain", "put on a song", "alarm for six", "set a timer for pasta", "hello there"]


class Stats:
    """Latencies and errors per operation, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)

    def record(self, op: str, started: float, error: str | None) -> None:
        with self.lock:
            self.ms[op].append((time.perf_counter() - started) * 1000)
            if error:
                self.errors[op].append(error)

    def summary(self) -> dict[str, dict]:
        out = {}
        for op, values in sorted(self.ms.items()):
            ordered = sorted(values)
            out[op] = {"requests": len(values), "errors": len(self.errors[op]),
                       "p50_ms": round(statistics.median(ordered), 1),
                       "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
                       "first_errors": self.errors[op][:3]}
        return out


def tenant_loop(url: str, key: str, seed: int, stop: threading.Event, stats: Stats, pause_s: float) -> None:
    rng = random.Random(seed)
    tasks: list[str] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120, trust_env=False) as http:
        n = 0
        while not stop.is_set():
            n += 1
            choice = rng.random()
            if len(tasks) < 3:
                op, call = "create", lambda: http.post("/v1/tasks", json={"name": f"t{n}", "examples": [
                    {"text": text, "label": label} for label, texts in LABELS.items() for text in texts]})
            elif choice < 0.6:
                texts = rng.sample(QUERIES, rng.randint(1, len(QUERIES)))
                op, call = "predict", lambda: http.post(f"/v1/tasks/{rng.choice(tasks)}/predict", json={"texts": texts})
            elif choice < 0.8:
                label = rng.choice(list(LABELS))
                op, call = "append", lambda: http.post(f"/v1/tasks/{rng.choice(tasks)}/examples", json={
                    "examples": [{"text": f"{rng.choice(LABELS[label])} {n}", "label": label}]})
            elif choice < 0.9:
                op, call = "list", lambda: http.get("/v1/tasks")
            else:
                victim = tasks.pop(rng.randrange(len(tasks)))
                op, call = "delete", lambda: http.delete(f"/v1/tasks/{victim}")
            started = time.perf_counter()
            try:
                response = call()
                error = None if response.is_success else f"{response.status_code} {response.text[:120]}"
                if op == "create" and response.status_code == 201:
                    tasks.append(response.json()["id"])
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            stats.record(op, started, error)
            time.sleep(pause_s)


def sample(pid: int) -> tuple[float, int]:
    """The process's RSS (MiB) and number of open file descriptors."""
    rss_kb = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if line.startswith("VmRSS:"))
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def plot(samples: list[dict], warmup_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, rss_axis = plt.subplots(figsize=(7, 3.2))
    minutes = [s["t_s"] / 60 for s in samples]
    rss_axis.plot(minutes, [s["rss_mib"] for s in samples], marker=".", color="tab:blue", label="RSS (MiB)")
    rss_axis.set_xlabel("minutes")
    rss_axis.set_ylabel("server RSS (MiB)", color="tab:blue")
    rss_axis.axvline(warmup_s / 60, color="grey", linestyle=":", linewidth=1)
    fd_axis = rss_axis.twinx()
    fd_axis.plot(minutes, [s["open_fds"] for s in samples], color="tab:orange", label="open fds")
    fd_axis.set_ylabel("open file descriptors", color="tab:orange")
    rss_axis.set_title("fewshot serve under a mixed load (dotted: end of warm-up)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--warmup-min", type=float, default=2.0, help="memory growth is measured after this")
    parser.add_argument("--pause-s", type=float, default=0.05, help="each client's pause between requests")
    parser.add_argument("--checkpoint", default="default", help="FEWSHOT_CHECKPOINT for the server")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "soak.json")
    parser.add_argument("--png", type=Path, default=ROOT / "docs" / "soak_memory.png")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="fewshot-soak-"))
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FEWSHOT_")},
           "FEWSHOT_DATABASE_URL": f"sqlite:///{workdir / 'soak.db'}", "FEWSHOT_ADMIN_KEY": ADMIN,
           "FEWSHOT_CHECKPOINT": args.checkpoint, "FEWSHOT_DEVICE": "cpu"}
    log = open(workdir / "server.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--log-level", "warning"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    stats, stop, samples = Stats(), threading.Event(), []
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}: {(workdir / 'server.log').read_text()}")
            try:
                if httpx.get(url + "/healthz", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        keys = [httpx.post(url + "/v1/tenants", json={"name": f"tenant {i}"}, headers={"Authorization": f"Bearer {ADMIN}"},
                           timeout=30, trust_env=False).json()["api_key"] for i in range(args.tenants)]
        threads = [threading.Thread(target=tenant_loop, args=(url, key, args.seed + i, stop, stats, args.pause_s))
                   for i, key in enumerate(keys)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        while (elapsed := time.monotonic() - began) < args.minutes * 60:
            rss, fds = sample(process.pid)
            samples.append({"t_s": round(elapsed, 1), "rss_mib": round(rss, 1), "open_fds": fds})
            print(f"{elapsed:6.0f} s  RSS {rss:7.1f} MiB  fds {fds}", flush=True)
            time.sleep(min(args.sample_s, max(0.0, args.minutes * 60 - elapsed)))
        rss, fds = sample(process.pid)
        samples.append({"t_s": round(time.monotonic() - began, 1), "rss_mib": round(rss, 1), "open_fds": fds})
        stop.set()
        for thread in threads:
            thread.join(180)
    finally:
        stop.set()
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()

    warm = next((s for s in samples if s["t_s"] >= args.warmup_min * 60), samples[0])
    result = {
        "command": command_line(), "environment": environment(), "minutes": args.minutes, "tenants": args.tenants,
        "operations": stats.summary(),
        "requests": sum(len(v) for v in stats.ms.values()), "errors": sum(len(v) for v in stats.errors.values()),
        "rss_after_warmup_mib": warm["rss_mib"], "rss_last_mib": samples[-1]["rss_mib"],
        "rss_growth_after_warmup_pct": round(100 * (samples[-1]["rss_mib"] - warm["rss_mib"]) / warm["rss_mib"], 2),
        "open_fds_min_max": [min(s["open_fds"] for s in samples), max(s["open_fds"] for s in samples)],
        "samples": samples,
    }
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    plot(samples, args.warmup_min * 60, args.png)
    print(json.dumps({k: v for k, v in result.items() if k not in ("samples", "environment")}, indent=1))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
