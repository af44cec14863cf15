"""Zero-shot label prompts: which text should stand for a label known only by its name?

Mimics the service exactly: the server's encoder (Settings defaults: shipped `default`
checkpoint, build_encoder, device auto, batch 64), its AdaptationEngine (embed, fit =
fit_adapter(calibrated=True) with the checkpoint's inner loop), and models.classifier.rank
for the top-1 label (what benchmarks/customer_service.py scores). Appended shots are
continual updates (previous adapter), the pseudo-example staying one support row per label,
exactly as AdapterBuilder.build does.

    OMP_NUM_THREADS=1 python benchmarks/explorations/zero_shot_prompts.py select   # CLINC150 only (valid; test shown)
    OMP_NUM_THREADS=1 python benchmarks/explorations/zero_shot_prompts.py final --choice NAME   # + BANKING77 test, once

Embeddings are cached under runs/zeroshot/emb/ (keyed by the encoder fingerprint); results
go to runs/zeroshot/. An exploration (the names-only zero-shot target), kept so the figures in
docs/benchmarks.md can be reproduced; the product was left unchanged by it.
"""

from __future__ import annotations

import argparse
import os
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.services.engine import AdaptationEngine  # noqa: E402
from app.settings import Settings  # noqa: E402
from models.checkpoint import build_encoder, resolve_checkpoint  # noqa: E402
from models.classifier import rank  # noqa: E402
from models.data import read_jsonl  # noqa: E402
from models.inner_loop import InnerLoopConfig  # noqa: E402

DATA = Path(os.environ.get("FEWSHOT_DATA", ROOT.parent / "shared" / "data"))
HERE = ROOT / "runs" / "zeroshot"  # results and the embedding cache (git-ignored)
CACHE = HERE / "emb"

# Single templates ({} = the name with underscores as spaces).
TEMPLATES = {
    "name": "{}",
    "name?": "{}?",
    "customer_asks_about": "a customer asks about {}",
    "user_asks_about": "a user asks about {}",
    "question_about": "a question about {}",
    "i_have_question_about": "i have a question about {}",
    "can_you_help_with": "can you help me with {}?",
    "i_need_help_with": "i need help with {}",
    "help_me_with": "help me with {}",
    "i_want_to": "i want to {}",
    "user_wants": "the user wants {}",
    "intent_colon": "intent: {}",
    "this_is_about": "this is about {}",
    "how_do_i": "how do i {}?",
    "tell_me_about": "tell me about {}",
    "please": "{} please",
    "my": "my {}",
    "what_about_my": "what about my {}?",
    "id_like_to_ask_about": "i'd like to ask about {}",
    "query_about": "query about {}",
    # round 2 (after round 1 showed the bare name near the top): short additions
    "name.": "{}.",
    "about": "about {}",
    "question": "{} question",
    "problem_with": "problem with {}",
    "issue": "{} issue",
    "request": "{} request",
    "what_is": "what is {}?",
    "can_i": "can i {}?",
}
# Prompt ensembles (CLIP, Radford et al. 2021): the unit-norm mean of the templates' embeddings.
ENSEMBLES = {
    "ens_customer+name": ["name", "customer_asks_about"],
    "ens_questions": ["question_about", "i_have_question_about", "can_you_help_with", "i_need_help_with"],
    "ens_all": list(TEMPLATES),
    # round 2: the bare name plus the round-1 templates that came closest to it
    "ens_name+please": ["name", "please"],
    "ens_name+name?": ["name", "name?"],
    "ens_name+tell_me_about": ["name", "tell_me_about"],
    "ens_name+id_like": ["name", "id_like_to_ask_about"],
    "ens_name+name?+please": ["name", "name?", "please"],
    "ens_name+top4": ["name", "name?", "please", "tell_me_about", "id_like_to_ask_about"],
    "ens_name+customer+please": ["name", "customer_asks_about", "please"],
    "ens_name+customer+i_have_q": ["name", "customer_asks_about", "i_have_question_about"],
}


class Embedder:
    """The server's engine, with a per-text embedding cache on disk."""

    def __init__(self) -> None:
        settings = Settings()
        checkpoint = resolve_checkpoint(settings.checkpoint)
        assert checkpoint is not None, "the shipped default checkpoint is missing"
        encoder = build_encoder(settings.encoder, checkpoint, settings.device, settings.encoder_batch_size)
        config = settings.inner_loop(checkpoint.inner_loop if checkpoint else InnerLoopConfig())
        self.engine = AdaptationEngine(encoder, config, settings.adapter_cache_bytes,
                                       reject_quantile=settings.oos_reject_quantile)
        self.file = CACHE / f"texts-{encoder.fingerprint}.pt"
        self.store: dict[str, torch.Tensor] = torch.load(self.file) if self.file.is_file() else {}
        print(f"checkpoint {checkpoint.path.name}, fingerprint {encoder.fingerprint}, config {config}, "
              f"{len(self.store)} cached texts", flush=True)

    def __call__(self, texts: list[str]) -> torch.Tensor:
        missing = sorted({t for t in texts if t not in self.store})
        if missing:
            started = time.perf_counter()
            fresh = self.engine.embed(missing).cpu()
            self.store.update(zip(missing, fresh))
            CACHE.mkdir(parents=True, exist_ok=True)
            torch.save(self.store, self.file)
            print(f"  encoded {len(missing)} texts in {time.perf_counter() - started:.0f}s", flush=True)
        return torch.stack([self.store[t] for t in texts])


def phrase(name: str) -> str:
    return name.replace("_", " ")


def pseudo_examples(embed: Embedder, names: list[str], choice: str) -> torch.Tensor:
    keys = ENSEMBLES.get(choice, [choice])
    stacked = torch.stack([embed([TEMPLATES[k].format(phrase(n)) for n in names]) for k in keys])
    return F.normalize(stacked.mean(0), dim=-1)


def accuracy(engine: AdaptationEngine, adapter, test_emb: torch.Tensor, test_labels: list[str]) -> float:
    predictions = rank(adapter, test_emb, 1)
    return round(100 * sum(p.top_k[0][0] == y for p, y in zip(predictions, test_labels)) / len(test_labels), 2)


def curve(embed: Embedder, data: Path, test_split: str, choice: str, shots: bool) -> dict:
    """The benchmark's zero_shot: names from train_5, then +1, +1, +3 examples per label."""
    engine = embed.engine
    test, support = read_jsonl(data / f"{test_split}.jsonl"), read_jsonl(data / "train_5.jsonl")
    by_label = defaultdict(list)
    for row in support:
        by_label[row.label].append(row)
    names = sorted(by_label)
    test_emb, test_labels = embed([r.text for r in test]), [r.label for r in test]
    prompts = pseudo_examples(embed, names, choice)
    adapter, _ = engine.fit(prompts, names)
    result = {"0": accuracy(engine, adapter, test_emb, test_labels)}
    if shots:
        examples, done = [], 0
        for add in (1, 1, 3):
            examples += [row for rows in by_label.values() for row in rows[done : done + add]]
            done += add
            support_emb = torch.cat([embed([r.text for r in examples]), prompts])
            adapter, _ = engine.fit(support_emb, [r.label for r in examples] + names, previous=adapter)
            result[str(done)] = accuracy(engine, adapter, test_emb, test_labels)
    values = list(result.values())
    return {"accuracy_by_shots": result, "monotonic": all(a < b for a, b in zip(values, values[1:]))}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["select", "final"])
    parser.add_argument("--choice", default="name")
    args = parser.parse_args()
    HERE.mkdir(parents=True, exist_ok=True)
    embed = Embedder()
    out: dict = {}
    if args.mode == "select":
        clinc = DATA / "clinc150"
        done = json.loads((HERE / "select_clinc150.json").read_text()) if (HERE / "select_clinc150.json").is_file() else {}
        out.update(done)
        for choice in [c for c in [*TEMPLATES, *ENSEMBLES] if c not in done]:
            row = {split: curve(embed, clinc, split, choice, shots=False)["accuracy_by_shots"]["0"]
                   for split in ("valid", "test")}
            out[choice] = row
            print(f"{choice:24s} CLINC150 valid {row['valid']:6.2f}  test {row['test']:6.2f}", flush=True)
        (HERE / "select_clinc150.json").write_text(json.dumps(out, indent=1) + "\n")
    else:
        for choice in dict.fromkeys(["name", args.choice]):
            out[choice] = {
                "clinc150_valid_curve": curve(embed, DATA / "clinc150", "valid", choice, shots=True),
                "banking77_test_curve": curve(embed, DATA / "banking77", "test", choice, shots=True),
            }
            print(choice, json.dumps(out[choice]), flush=True)
        (HERE / f"final_{args.choice}.json").write_text(json.dumps(out, indent=1) + "\n")
    embed.engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
