"""bench/speed.py's result dict as Markdown (pasted into docs/BENCHMARKS.md, "Training speed")."""

NAMES = {
    "a": "(a) textbook: pad to 256, random batches of 64, fp32, nn.LSTM",
    "b": "(b) textlstm: `fit`, its preset, real data and loader",
    "c": "(c) ceiling: bare step, synthetic on-device batches of (b)'s shapes",
}


def markdown(r: dict) -> str:
    cfg = r["config"]
    model, tc = cfg["model"], cfg["train"]
    lines = [
        f"{r['date']}, {r['machine']}, device {r['device']}, torch {r['torch']}"
        + (f", cuDNN {r['cudnn']}" if r.get("cudnn") else "")
        + f", {r['threads']} CPU threads"
        + (" (--quick: tiny model)" if r["quick"] else ""),
        "",
        f"    {r['command']}",
        "",
        f"Data: {r['dataset']}, {r['tokenization']['train_texts']:,} train texts, "
        f"{r['tokenization']['mean_tokens_per_text']:.1f} tokens per text (word tokenizer, "
        f"max 256). Model: emb {model['emb_dim']}, {model['hidden_dim']} x 2 directions, "
        f"{model['num_layers']} layers. (b) preset: {r['preset'] or 'product defaults'}"
        f" (batch {tc['batch_size']}, max_tokens {tc['max_tokens']}, {tc['precision']}, "
        f"pad_multiple {tc['pad_multiple']}, workers {tc['workers']}). "
        f"{r['rounds']} round(s), rows alternating"
        + (", first round left out as warm-up." if r["rounds"] > 1 else "."),
        "",
        "| row | real tokens/s | padded tokens/s | padding | steps | seconds | peak memory MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key in "abc":
        row = r["rows"][key]
        lines.append(
            f"| {NAMES[key]} | {row['real_tokens_per_s']:,.0f} | "
            f"{row['padded_tokens_per_s']:,.0f} | {row['padding']:.0%} | {row['steps']} | "
            f"{row['seconds']:.1f} | {row['peak_memory_mb']:,.0f} |"
        )
    mem = "max allocated" if r["device"].startswith("cuda") else "process RSS (all rows share it)"
    tok = r["tokenization"]
    lines += [
        "",
        f"**b/a = {r['b_over_a']:.2f}x**, **b/c = {r['b_over_c']:.2f}** (real tokens/s). "
        f"Peak memory: {mem}.",
        f"Tokenization (not in any row): `prepare` (load, train tokenizer, tokenize) "
        f"{tok['prepare_s']:.1f} s; `encode` alone {tok['encode_texts_per_s']:,.0f} texts/s.",
    ]
    if "inference" in r:
        inf = r["inference"]
        lines += [
            "",
            f"Batch inference, {inf['texts']:,} texts of the train split, (b)'s model:",
            "",
            "| what | device | texts/s |",
            "|---|---|---:|",
        ]
        for name, rate in inf["rates"].items():
            lines.append(f"| {name} | {rate['device']} | {rate['texts_per_s']:,.0f} |")
    if "time_to_accuracy" in r:
        t = r["time_to_accuracy"]
        lines += [
            "",
            f"Time to {t['target']:.0%} test accuracy (preset "
            f"{t['preset'] or 'product defaults'}; tokenizing {t['tokenize_s']:.1f} s "
            "not counted):",
            "",
            "| epoch | train s (cumulative) | test accuracy |",
            "|---:|---:|---:|",
        ]
        for e in t["epochs"]:
            lines.append(
                f"| {e['epoch']} | {e['train_s_cumulative']:.1f} | {e['val_accuracy']:.4f} |"
            )
        lines.append("")
        lines.append(
            f"**reached after {t['train_s']:.1f} s of training (epoch {t['epoch']})**"
            if t["reached"]
            else f"**not reached**: best {t['best_accuracy']:.4f}"
        )
        lines[-1] += f"; whole fit incl. scoring each epoch: {t['fit_wall_s']:.1f} s."
    return "\n".join(lines)
