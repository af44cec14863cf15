"""`fewshot serve` as a real process, for the crash and concurrency tests.

The encoder is a tiny randomly initialised BERT (one layer, 32 wide) with the packaged
MiniLM's tokenizer: a real ``TransformerEncoder`` loaded the way production loads one,
that starts in a few seconds and embeds in microseconds; what these tests check (every
acknowledged write is kept, answers stay valid) does not depend on embedding quality."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import ADMIN_KEY

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90.0
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "sentence_bert_config.json", "modules.json")


def tiny_encoder(directory: Path, seed: int = 0) -> Path:
    """A sentence-transformers directory: the packaged tokenizer and pooling, a tiny
    seeded random transformer (written once per directory)."""
    if (directory / "model.safetensors").is_file():
        return directory
    import torch
    from transformers import BertConfig, BertModel

    from models.encoder import packaged_encoder_path

    source = packaged_encoder_path()
    directory.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, directory / name)
    shutil.copytree(source / "1_Pooling", directory / "1_Pooling", dirs_exist_ok=True)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(directory, safe_serialization=True)
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fewshot_command() -> list[str]:
    """The installed ``fewshot`` script beside this Python, else ``python -m app.cli``."""
    script = Path(sys.executable).with_name("fewshot")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "app.cli"]


class Server:
    """One ``fewshot serve`` process on ``database_url``; ``start`` waits for /healthz."""

    def __init__(self, workdir: Path, database_url: str, encoder_dir: Path, workers: int = 1,
                 **settings: str) -> None:
        self.workdir, self.port = workdir, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {name: value for name, value in os.environ.items() if not name.startswith("FEWSHOT_")}
        self.env.update(
            FEWSHOT_DATABASE_URL=database_url, FEWSHOT_ADMIN_KEY=ADMIN_KEY, FEWSHOT_CHECKPOINT="none",
            FEWSHOT_ENCODER=str(encoder_dir), FEWSHOT_DEVICE="cpu", FEWSHOT_TORCH_THREADS="1",
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH")])),
            **{f"FEWSHOT_{name.upper()}": value for name, value in settings.items()},
        )
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"server-{self.starts}.log"

    def start(self) -> float:
        """Start the process; seconds until /healthz answered 200. Fails on an early exit."""
        self.starts += 1
        began = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*fewshot_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.workers), "--log-level", "warning"],
                cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2, trust_env=False).status_code == 200:
                    return time.monotonic() - began
            except httpx.TransportError:
                pass
            if time.monotonic() - began > START_TIMEOUT_S:
                raise AssertionError(f"no healthy server after {START_TIMEOUT_S} s:\n{self.log()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the server (with its workers: they share its process group)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""
