"""Tables, summary rows and the plot of ``benchmarks/predict_single.py``'s result."""

from __future__ import annotations

from pathlib import Path


def markdown(result: dict, plot_name: str) -> str:
    lines = [
        f"BANKING77 `train_10` task, checkpoint `{result['checkpoint']}`, {result['texts']} test texts per "
        f"measurement, best of {result['rounds']} alternating rounds of the server and the reference; "
        f"torch threads {result['torch_threads']}. The reference is a plain transformers loop over the same "
        "model files and texts, length-sorted over the whole list, batches of the request size (at most 64); "
        "for 1-text requests, one forward per text. \"Same batches\": the raw loop over the requests' own "
        "batches in their order (what a client sending those requests could get without the service).",
        "",
        "| load (clients x texts/request) | service texts/s | raw loop texts/s | share of raw | raw, same batches | share of same batches | service p50 ms | raw p50 ms | service p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["predict"]:
        raw, same = row.get("raw_texts_per_s"), row.get("raw_in_order_texts_per_s")
        raw_cell = "" if raw is None else f"{raw:.0f}"
        share_cell = "" if raw is None else f"{row['share_of_raw']:.2f}x"
        same_cells = "| |" if same is None else f"| {same:.0f} | {row['share_of_raw_in_order']:.2f}x |"
        lines.append(f"| {row['load']} | {row['texts_per_s']:.0f} | {raw_cell} | {share_cell} {same_cells} {row['p50_ms']} "
                     f"| {row.get('raw_p50_ms', '')} | {row['p99_ms']} |")
    lines += [
        "",
        "Time to ready: the POST of a new task over HTTP until it answers (the adapter is ready then), split "
        "into the server's encoder passes for the support set (`fewshot_encoder_pass_seconds` from `/metrics`, "
        "read before and after) and its adaptation (`adapted_ms` of the answer, the version's build, less those passes); the raw loop embeds the same texts:",
        "",
        "| examples | ready over HTTP ms | embedding ms | adaptation ms | embedding texts/s | raw loop texts/s | share of raw |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["ready"]:
        lines.append(f"| {row['examples']} | {row['ready_ms']:.0f} | {row['embed_ms']:.0f} | {row['adapt_ms']:.0f} "
                     f"| {row['embed_texts_per_s']:.0f} | {row['raw_texts_per_s']:.0f} | {row['embed_share_of_raw']:.2f}x |")
    lines += ["", f"![predict throughput against the raw loop]({plot_name})", "", reading(result)]
    return "\n".join(lines)


def _verdict(share: float | None, goal: float) -> str:
    return "not measured" if share is None else f"**{'met' if share >= goal else 'missed'} ({share:.2f}x)**"


def reading(result: dict) -> str:
    """Goals against the figures of this run, and where the time goes."""
    by_load = {row["load"]: row for row in result["predict"]}
    eight, sixty_four, one = by_load.get("1x8", {}), by_load.get("1x64", {}), by_load.get("1x1", {})
    embed = [row["embed_share_of_raw"] for row in result["ready"]]
    same = eight.get("share_of_raw_in_order")
    return (
        "**Reading.** On the CPU an encoder pass runs over packed tokens (`models.packed`: the projections "
        "and feed-forward, ~99% of the multiply-adds at 20 tokens, see each text's real tokens only; the attention scores a padded "
        "view), which is why a request of mixed lengths runs faster than the raw loop's padded batches, even "
        "length-sorted ones; texts are still bucketed by token length (`models.encoder.length_buckets`, a "
        "padded position counted as 0.15 of a token), so that one long text does not inflate every text's "
        "attention. Every encoder pass runs on one thread, the only one in the server with the process's torch thread "
        "count (a second thread with several would form a second OpenMP team, and libgomp stops "
        "spin-waiting once it manages more threads than cores: each layer then wakes its helpers through "
        "the kernel), the ranking after it runs on the request's thread with one torch thread, a request that finds the encoder "
        "idle skips the micro-batch wait, and dependencies that do no I/O run on the event loop. "
        f"Goals: 64-text requests at least 0.8x the raw loop: {_verdict(sixty_four.get('share_of_raw'), 0.8)}; "
        f"support-set embedding at least 0.8x: {_verdict(min(embed) if embed else None, 0.8)}"
        + (f" (lowest of the three sizes)" if embed else "")
        + f"; 8-text requests at least 0.7x the length-sorted raw loop: {_verdict(eight.get('share_of_raw'), 0.7)}"
        + (f", {same:.2f}x the raw loop over the very same 8-text batches" if same is not None else "")
        + ". " + ("" if eight.get("share_of_raw", 0) >= 0.7 else
                  "An 8-text request cannot be sorted against the next ones (one client sends them one after "
                  "another), and each request pays a fixed few milliseconds outside the encoder: HTTP parsing, the "
                  "middleware stack, the key and task lookups, the hand-off to the batcher and back, and the "
                  "client itself on the same two cores. ")
        + (f"One text: p50 {one['p50_ms']} ms against {one['raw_p50_ms']} ms for a raw single forward." if one else "")
    )


def summary_rows(result: dict) -> list[dict[str, str]]:
    by_load = {row["load"]: row for row in result["predict"]}
    rows = []
    if "1x64" in by_load:
        row = by_load["1x64"]
        rows.append({"topic": "speed", "figure": "predict, one client, 64-text requests (CPU)",
                     "value": f"{row['texts_per_s']:.0f} texts/s ({row['share_of_raw']:.2f}x the raw loop)",
                     "note": "goal ≥ 0.8x"})
    if "1x8" in by_load:
        row = by_load["1x8"]
        same = f", {row['share_of_raw_in_order']:.2f}x over the same batches" if "share_of_raw_in_order" in row else ""
        rows.append({"topic": "speed", "figure": "predict, one client, 8-text requests (CPU)",
                     "value": f"{row['texts_per_s']:.0f} texts/s ({row['share_of_raw']:.2f}x the length-sorted raw loop{same})",
                     "note": "goal ≥ 0.7x"})
    if "1x1" in by_load:
        row = by_load["1x1"]
        rows.append({"topic": "speed", "figure": "predict latency, one text (CPU)",
                     "value": f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms (raw forward p50 {row['raw_p50_ms']} ms)",
                     "note": ""})
    for row in result["ready"]:
        if row["examples"] == 770:
            rows.append({"topic": "speed", "figure": "time to ready, 770 examples (CPU)",
                         "value": f"{row['ready_ms'] / 1000:.2f} s over HTTP (embedding {row['embed_ms']:.0f} ms, adaptation {row['adapt_ms']:.0f} ms)", "note": ""})
    return rows


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    rows = [row for row in result["predict"] if "raw_texts_per_s" in row]
    names = [row["load"] for row in rows]
    x = range(len(rows))
    axes[0].bar([i - 0.2 for i in x], [row["texts_per_s"] for row in rows], 0.4, label="service over HTTP")
    axes[0].bar([i + 0.2 for i in x], [row["raw_texts_per_s"] for row in rows], 0.4, label="raw loop")
    axes[0].set_xticks(list(x), names)
    axes[0].set(xlabel="clients x texts per request", ylabel="texts/s", title="one client: predict throughput")
    ready = result["ready"]
    sizes = [row["examples"] for row in ready]
    axes[1].bar(range(len(ready)), [row["embed_ms"] for row in ready], label="embedding")
    axes[1].bar(range(len(ready)), [row["adapt_ms"] for row in ready],
                bottom=[row["embed_ms"] for row in ready], label="adaptation")
    axes[1].set_xticks(range(len(ready)), [str(size) for size in sizes])
    axes[1].set(xlabel="support examples", ylabel="ms", title="time to ready")
    for axis in axes:
        axis.grid(alpha=0.3, axis="y")
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
