"""Export a checkpoint bundle to ONNX, for runtimes without Python or torch.

The output folder holds `model.onnx` next to copies of the bundle's `tokenizer.json`,
`labels.json` and `config.json`: everything a consumer needs to go from raw text to a
label (tokenize with the `tokenizers` JSON, pad right with id 0, run, then softmax; a
multi-label bundle, `"task": "multi_label"` in config.json, takes a sigmoid per label and
compares it with that label's cut in the copied `thresholds.json`).

Graph contract: inputs `ids` int64 (batch, steps) right-padded with 0 and `lengths`
int64 (batch,), both axes dynamic; with an n-gram branch (`model.ngrams`) a third,
`ngram_ids` int64 (batch, ngrams): each whole text's hashed n-gram buckets, 0-padded
(`textlstm.ngrams.bag_matrix`). Output `logits` float32 (batch, num_classes). Like the
PyTorch model, padding never changes a text's logits.

The model is always exported through the dense `cudnn` implementation (same weights as
`cell`): `torch.lstm` per direction maps onto ONNX's `LSTM` op, and the within-length
reversal is a `GatherElements`, so the graph is one LSTM node per layer and direction
rather than an unrolled time loop. The legacy TorchScript exporter (`dynamo=False`)
handles that in ~2 s; the dynamo exporter works too but takes ~15 s on a small model
and needs `onnxscript`, so it is only the fallback for a torch without the legacy one.
After writing, the export is checked: onnxruntime must reproduce the PyTorch logits
(to 1e-4) on a padded batch of mixed lengths, or the export fails loudly.

An int8 bundle (`textlstm quantize`) already is an ONNX graph: exporting it checks it
(onnx_engine.Session) and copies it as `model.onnx`, with the same inputs and a second
output, `features`, beside `logits`.
"""

import shutil
import warnings
from pathlib import Path

import numpy as np

from textlstm import TextlstmError
from textlstm.checkpoint import THRESHOLDS_FILE, is_int8, load_model, read_meta, resolve
from textlstm.ngrams import bag_matrix

FORMATS = ("onnx",)
# Everything a consumer needs beside the graph (thresholds.json: multi-label runs only).
COPIED = ("tokenizer.json", "labels.json", "config.json", THRESHOLDS_FILE)
OPSET = 17
TOLERANCE = 1e-4


def require_onnx():
    """onnx and onnxruntime, or the one-line install hint."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise TextlstmError(
            f"ONNX export needs onnx and onnxruntime ({exc.name} is missing): "
            "pip install 'textlstm[onnx]'"
        ) from exc
    return onnx, onnxruntime


def sample_batch(vocab_size: int, bag=None, seed: int = 0) -> dict:
    """Graph inputs for a right-padded batch of mixed lengths (a length-1 text last); with
    an n-gram branch (`bag` = (n, buckets)), the texts' bucket ids too."""
    rng = np.random.default_rng(seed)
    lengths = np.array([9, 5, 7, 1], dtype=np.int64)
    ids = np.zeros((len(lengths), lengths.max()), dtype=np.int64)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(1, max(vocab_size, 2), n)
    inputs = {"ids": ids, "lengths": lengths}
    if bag:
        inputs["ngram_ids"] = bag_matrix([ids[r, :n] for r, n in enumerate(lengths)], *bag)
    return inputs


def torch_export(model, inputs: dict, path: Path, outputs=("logits",)) -> str:
    """Write the graph with the legacy exporter, or dynamo where that is gone; `outputs`
    names what `model` returns (quantize.py adds "features")."""
    import torch

    args = tuple(torch.from_numpy(a) for a in inputs.values())
    names = {"input_names": list(inputs), "output_names": list(outputs)}
    axes = {
        "ids": {0: "batch", 1: "steps"},
        "lengths": {0: "batch"},
        "ngram_ids": {0: "batch", 1: "ngrams"},
        **{name: {0: "batch"} for name in outputs},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints in the graph
        try:
            torch.onnx.export(
                model,
                args,
                str(path),
                dynamo=False,
                opset_version=OPSET,
                dynamic_axes={k: v for k, v in axes.items() if k in inputs or k in outputs},
                **names,
            )
            return "torchscript"
        except (TypeError, RuntimeError, NotImplementedError) as legacy_error:
            batch, steps = torch.export.Dim("batch"), torch.export.Dim("steps")
            shapes = {"input_ids": {0: batch, 1: steps}, "lengths": {0: batch}}
            if "ngram_ids" in inputs:
                shapes["ngram_ids"] = {0: batch, 1: torch.export.Dim("ngrams")}
            try:
                torch.onnx.export(
                    model, args, str(path), dynamo=True, dynamic_shapes=shapes, **names
                )
            except Exception as exc:
                raise TextlstmError(
                    f"ONNX export failed with both exporters: legacy ({legacy_error}); "
                    f"dynamo ({type(exc).__name__}: {exc})"
                ) from exc
            return "dynamo"


def export_onnx(checkpoint=None, out=None) -> dict:
    """Export a bundle; returns {"path", "exporter", "max_abs_diff"}."""
    _, ort = require_onnx()
    import torch

    run_dir = resolve(checkpoint)
    out_dir = Path(out) if out else run_dir / "onnx"
    if is_int8(read_meta(run_dir)[0]):
        return copy_int8(run_dir, out_dir)
    model, config, _ = load_model(run_dir, "cpu", rnn="cudnn")
    inputs = sample_batch(config["vocab_size"], model.bag)
    make_out(out_dir)
    tmp = out_dir / ".model.onnx.tmp"
    exporter = torch_export(model, inputs, tmp)

    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run(None, inputs)[0]
    with torch.no_grad():
        want = model(*(torch.from_numpy(a) for a in inputs.values())).numpy()
    diff = float(np.abs(got - want).max())
    if not diff <= TOLERANCE:
        tmp.unlink(missing_ok=True)
        raise TextlstmError(
            f"the ONNX graph disagrees with PyTorch by {diff:.2g} (> {TOLERANCE}); not written"
        )
    tmp.replace(out_dir / "model.onnx")  # only a checked graph gets the real name
    copy_beside(run_dir, out_dir)
    return {"path": out_dir / "model.onnx", "exporter": exporter, "max_abs_diff": diff}


def make_out(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TextlstmError(f"cannot write to {out_dir}: {exc.strerror or exc}") from exc


def copy_beside(run_dir: Path, out_dir: Path) -> None:
    for name in COPIED:
        if (run_dir / name).is_file() and (run_dir / name).resolve() != (out_dir / name).resolve():
            shutil.copyfile(run_dir / name, out_dir / name)


def copy_int8(run_dir: Path, out_dir: Path) -> dict:
    """An int8 bundle's graph, checked by loading it, as out_dir/model.onnx."""
    from textlstm import files
    from textlstm.onnx_engine import INT8_GRAPH, Session

    Session(run_dir, read_meta(run_dir)[0])  # sha256, inputs, probe: refused with one line
    make_out(out_dir)
    files.atomic_write(out_dir / "model.onnx", (run_dir / INT8_GRAPH).read_bytes())
    copy_beside(run_dir, out_dir)
    return {"path": out_dir / "model.onnx", "exporter": "int8", "max_abs_diff": 0.0}


def export(checkpoint=None, fmt: str = "onnx", out=None) -> dict:
    if fmt not in FORMATS:
        raise TextlstmError(f"export format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return export_onnx(checkpoint, out)
