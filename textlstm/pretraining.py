"""Language-model pretraining on the task's own text: `textlstm pretrain`.

The encoder (embedding + LSTM stack, `model.*`) first learns to predict each word of the
training texts, and of any unlabeled texts, from its neighbours; `textlstm train
--init-from DIR` then starts the classifier from it (Dai & Le 2015; ULMFiT without its
Wikipedia stage). Nothing but texts is read: never a label. The model, its no-leak
arrangement, its softmax and the activation penalty are in lm.py; here are the texts and
the loop, which mirrors training.fit (one comment per phase).

The folder written is a bundle like train's (config.json with `"kind":
"pretrained_encoder"`, tokenizer.json, model.safetensors with the encoder, the head and
the rank table, metrics.json/.jsonl), resumable after Ctrl-C exactly as train is.
Host-device syncs are marked `# sync:`.
"""

import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from textlstm import TextlstmError, __version__, checkpoint, files, guards, runs
from textlstm.batching import BucketBatchSampler, column_array, loader
from textlstm.config import RunConfig
from textlstm.learner import lr_factor, make_optimizer
from textlstm.lm import LanguageModel, head_cutoffs, lm_loss, word_ranks
from textlstm.stream import read_chunks
from textlstm.tokenizer import PAD_ID, tokenize_splits, train_tokenizer
from textlstm.training import Interrupted, catch_stop_signals, pick_device, progress_bar

UNLABELED_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
POSITION = ("epoch", "batches_done", "step", "best", "stale", "nonfinite_steps")
# What decides which texts are held out: a resumed pretraining must keep them.
HELDOUT_KEYS = ("train.seed", "pretrain.max_texts", "pretrain.heldout")


def read_unlabeled(paths, text_column: str) -> list[str]:
    """The texts of each file (or of each such file in a folder): .txt one per line (blank
    lines skipped), .csv/.tsv/.jsonl/.parquet from `text_column`."""
    texts = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in UNLABELED_SUFFIXES)
            if not found:
                raise TextlstmError(f"--unlabeled {path}: no .txt, .csv, .jsonl or .parquet files")
        elif path.is_file() and path.suffix.lower() in UNLABELED_SUFFIXES:
            found = [path]
        elif path.is_file():
            raise TextlstmError(
                f"--unlabeled {path}: use .txt (one text per line), .csv, .tsv, .jsonl or .parquet"
            )
        else:
            raise TextlstmError(f"--unlabeled {path}: no such file or folder")
        for file in found:
            before = len(texts)
            if file.suffix.lower() in (".csv", ".tsv"):
                from textlstm.data import read_file

                table = read_file(file)
                if text_column not in table.column_names:
                    raise TextlstmError(
                        f"--unlabeled {file} has no column {text_column!r}; columns: "
                        f"{', '.join(table.column_names)} (choose one with --text-column)"
                    )
                texts += ["" if t is None else str(t) for t in table[text_column]]
            else:
                try:
                    for chunk in read_chunks(str(file), text_column):
                        texts += chunk
                except TextlstmError as exc:  # stream.py names its input --file
                    raise TextlstmError(str(exc).replace("--file", "--unlabeled", 1)) from exc
            texts[before:] = [t for t in texts[before:] if t.strip()]
    return texts


@dataclass
class PretrainResult:
    out: Path
    best: dict  # the kept epoch's row of metrics.jsonl
    texts: int  # texts pretrained on (held-out ones not counted)


def resumed_config(out: Path, overrides=()) -> tuple[RunConfig, list[str]]:
    """(the config, the unlabeled inputs) of the pretraining saved in `out`; `--set` may
    change `train.*` and `pretrain.*` only (e.g. pretrain.epochs=10 to go on longer)."""
    from textlstm.config import apply, from_dict, split_override

    saved = checkpoint.read_config(out)
    if saved.get("kind") != checkpoint.PRETRAINED_KIND:
        raise TextlstmError(f"{out} is not a textlstm pretrain folder: nothing to resume")
    cfg = from_dict(saved)
    for item in overrides:
        section, key, value = split_override(item)
        if section not in ("train", "pretrain") or f"{section}.{key}" in HELDOUT_KEYS:
            raise TextlstmError(
                f"--resume keeps the pretraining's {section}.{key} (its texts, held-out set "
                f"and encoder depend on it); --set {section}.{key} needs a new pretraining"
            )
        apply(cfg, section, key, value)
    return cfg, list(saved.get("unlabeled", []))


def pretraining_texts(cfg: RunConfig, unlabeled: list[str]) -> list[str]:
    """The train split's texts of `cfg.data` (after the validation carve a classifier run
    with the same seed makes; labels unused), then those of the unlabeled files."""
    from textlstm.data import load_raw

    texts = list(load_raw(cfg.data, cfg.train.seed).splits["train"]["text"])
    return texts + read_unlabeled(unlabeled, cfg.data.text_column)


def corpus_splits(cfg: RunConfig, texts: list[str], tokenizer=None):
    """(tokenizer, texts to learn from, held-out texts), tokenized: a seeded sample of
    `pretrain.max_texts`, `pretrain.heldout` of it set aside (at least one text), and the
    tokenizer trained on the rest unless one is given (a resumed run's own)."""
    import datasets

    pc = cfg.pretrain
    order = np.random.default_rng(cfg.train.seed).permutation(len(texts))
    order = order[: pc.max_texts] if pc.max_texts else order
    n_held = max(1, round(pc.heldout * len(order))) if pc.heldout and len(order) > 1 else 0
    corpus = datasets.Dataset.from_dict(
        {"text": [texts[i] for i in order], "label": [0] * len(order)}  # labels: never read
    )
    tokenizer = tokenizer or train_tokenizer(corpus.select(range(n_held, len(order))), cfg.data)
    corpus = tokenize_splits(corpus, tokenizer, cfg.data)
    return tokenizer, corpus.select(range(n_held, len(order))), corpus.select(range(n_held))


def pretrain(cfg: RunConfig, out: Path, unlabeled=(), resume=False, overwrite=False):
    """Pretrain the encoder of `cfg` on the train split's texts and `unlabeled` files
    (paths); with `resume`, continue the pretraining in `out` (see `resumed_config`)."""
    tc, pc = cfg.train, cfg.pretrain
    cfg.check()
    device = pick_device(tc.device)
    guards.set_deterministic(tc.deterministic, device)
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    out = Path(out)

    # -- texts: the labeled set's train split (its labels unused) and the unlabeled files --
    guards.seed_everything(tc.seed)
    unlabeled = [str(Path(p).expanduser().resolve()) for p in unlabeled]  # resume elsewhere
    if cfg.model.vectors or cfg.model.init_from:
        raise TextlstmError("pretrain starts from random weights: drop model.vectors / init_from")
    if tc.unfreeze or tc.layer_lr_decay != 1:
        raise TextlstmError(
            "train.unfreeze and train.layer_lr_decay are for fine-tuning (train --init-from); "
            "pretrain trains every layer at one rate"
        )
    texts = pretraining_texts(cfg, unlabeled)
    before = checkpoint.read_config(out).get("texts") if resume else len(texts)
    if before != len(texts):
        raise TextlstmError(
            f"{out} was pretrained on {before} texts; "
            f"{len(texts)} are there now: the data changed, start a new pretraining"
        )
    tokenizer = checkpoint.load_tokenizer(out) if resume else None
    tokenizer, train_split, heldout = corpus_splits(cfg, texts, tokenizer)
    if len(train_split) == 0:
        raise TextlstmError("no texts left to pretrain on (lower pretrain.heldout)")
    vocab, sections = tokenizer.get_vocab_size(), ("data", "model", "train", "pretrain")
    say(f"textlstm {__version__}: effective config\n{cfg.describe(sections)}")
    say(
        f"texts: {len(train_split):,} to learn from, {len(heldout):,} held out; vocab "
        f"{vocab:,}; {int(column_array(train_split, 'length').sum()):,} tokens per epoch"
    )

    # -- model, optimiser, schedule: classifier training's AdamW and warm-up/decay -------
    model = LanguageModel(cfg.model, vocab, word_ranks(train_split, vocab)).to(device)
    lengths = column_array(train_split, "length")
    sampler = BucketBatchSampler(
        lengths, tc.batch_size, tc.max_tokens, True, tc.seed, pad_multiple=tc.pad_multiple
    )
    total = pc.epochs * len(sampler.batches(0))
    optimizer = make_optimizer(model, tc)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, tc))
    guard = guards.NonFiniteGuard(device, tc.max_nonfinite)
    batches = loader(train_split, sampler, PAD_ID, tc.workers, device.type == "cuda")
    say(f"language model: {sum(p.numel() for p in model.parameters()):,} parameters on {device}")

    # -- the folder, the resume state, the bundle's first files ---------------------------
    out, lock = runs.open_run_dir(out, cfg.data.source, resume, overwrite)
    stop, previous = catch_stop_signals()
    step, best, stale, start_epoch, skip = 0, None, 0, 0, 0

    def save_state(epoch: int, done: int) -> None:
        numbers = (epoch, done, step, best, stale, int(guard.skipped))  # sync: at saves only
        position = dict(zip(POSITION, numbers, strict=True))
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            **position,
            **guards.rng_state(),
        }
        checkpoint.save_train_state(out, state)

    try:
        if resume:
            state = checkpoint.load_train_state(out)
            try:
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                schedule.load_state_dict(state["schedule"])
                guards.restore_rng_state(state)
                start_epoch, skip, step, best, stale = (state[k] for k in POSITION[:5])
                guard.skipped += state.get("nonfinite_steps", 0)
            except (KeyError, RuntimeError, ValueError, TypeError) as exc:
                raise TextlstmError(
                    f"{out}/train_state.pt does not fit this pretraining ({type(exc).__name__})"
                ) from exc
            say(f"resuming {out} at epoch {start_epoch + 1}, batch {skip}, step {step}")
            runs.keep_metrics_rows(out, start_epoch)
        config = {
            "format_version": checkpoint.FORMAT_VERSION,
            "textlstm_version": __version__,
            "kind": checkpoint.PRETRAINED_KIND,
            "vocab_size": vocab,
            "cutoffs": head_cutoffs(vocab, cfg.model.hidden_dim),
            "texts": len(texts),  # before sampling and holding out: resume checks it
            "unlabeled": unlabeled,
            **cfg.as_dict(),
        }
        files.remove_stale_temps(out)
        files.atomic_write(out / "tokenizer.json", tokenizer.to_str().encode())
        files.write_json(out / "config.json", config)
        for epoch in range(start_epoch, pc.epochs):
            # -- one epoch of language-model steps ------------------------------------
            model.train()
            sampler.set_epoch(epoch, skip)
            guard.new_epoch()
            loss_sum, tokens, started = torch.zeros((), device=device), 0, time.time()
            bar = progress_bar(len(sampler.batches(epoch)), skip, f"epoch {epoch + 1}", True)
            done = skip
            for batch in batches:
                loss, nll, count = lm_loss(model, batch, device, tc.precision, pc.activation_reg)
                if loss is not None:
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    norm = guards.grad_norm(model.parameters(), tc.clip_norm)
                    keep = guard.check(optimizer, loss.detach(), norm, count)
                    optimizer.step()  # a no-op when the guard flagged the step
                    loss_sum += torch.where(keep > 0, nll.detach(), 0.0) * count
                    tokens += int(batch["lengths"].sum())  # CPU tensor: no sync
                schedule.step()
                done, step = done + 1, step + 1
                bar.update(1)
                if done % tc.log_every == 0:  # sync: every log_every steps
                    avg, _ = guard.read(loss_sum, step, out)
                    rate = tokens / max(time.time() - started, 1e-9)
                    bar.set_postfix(ppl=f"{math.exp(min(avg, 50)):.1f}", tok_s=f"{rate:,.0f}")
                if stop["signal"] is not None:
                    save_state(epoch, done)
                    raise Interrupted(stop["signal"], out)
            bar.close()
            skip = 0
            train_nll, skipped = guard.read(loss_sum, step, out)  # sync: end of epoch
            elapsed = time.time() - started

            # -- held-out perplexity, metrics.jsonl, the best weights, early stopping ------
            held_nll = heldout_nll(model, heldout, tc, device)
            score = train_nll if held_nll is None else held_nll
            row = {
                "epoch": epoch + 1,
                "step": step,
                "train_ppl": math.exp(min(train_nll, 50)),
                "heldout_ppl": None if held_nll is None else math.exp(min(held_nll, 50)),
                "heldout_loss": held_nll,
                "lr": schedule.get_last_lr()[0],
                "tokens_per_s": tokens / max(elapsed, 1e-9),
                "epoch_s": elapsed,
                "nonfinite_steps": skipped,
            }
            files.append_jsonl(out / "metrics.jsonl", row)
            improved = math.isfinite(score) and (best is None or score < best)
            say(epoch_line(row, pc.epochs) + ("  *best" if improved else ""))
            if improved:
                best, stale = score, 0
                checkpoint.save_weights(out / "model.safetensors", model.state_dict())
                files.write_json(out / "metrics.json", {"texts": len(train_split), **row})
            else:
                stale += 1
            save_state(epoch + 1, 0)
            if tc.patience and stale >= tc.patience:
                say(f"early stop: held-out perplexity not better for {stale} epochs")
                break
            if stop["signal"] is not None:
                raise Interrupted(stop["signal"], out)
        if best is None:
            raise TextlstmError("no epoch reached a finite perplexity (try a lower train.lr)")
        kept = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        return PretrainResult(out, kept, len(train_split))
    except guards.OOM_ERRORS as exc:
        settings = {"train.max_tokens": tc.max_tokens, "train.batch_size": tc.batch_size}
        raise guards.oom_error(exc, "pretraining", settings) from exc
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        runs.unlock(lock)


def epoch_line(row: dict, epochs: int) -> str:
    held = "-" if row["heldout_ppl"] is None else f"{row['heldout_ppl']:.1f}"
    return (
        f"epoch {row['epoch']}/{epochs}  train ppl {row['train_ppl']:.1f}  held-out ppl "
        f"{held}  {row['tokens_per_s']:,.0f} tok/s  {row['epoch_s']:.1f}s"
    )


@torch.no_grad()
def heldout_nll(model: LanguageModel, split, tc, device) -> float | None:
    """Mean negative log-likelihood per predicted token on the held-out texts."""
    if len(split) == 0:
        return None
    model.eval()
    sampler = BucketBatchSampler(column_array(split, "length"), tc.eval_batch_size, shuffle=False)
    total, count = torch.zeros((), device=device, dtype=torch.float64), 0
    for batch in loader(split, sampler, PAD_ID):
        _, nll, n = lm_loss(model, batch, device, tc.precision)
        if n:
            total += nll.double() * n
            count += n
    model.train()
    return float(total) / count if count else None  # sync: once per evaluation
