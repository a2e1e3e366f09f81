"""`textlstm quantize`: an int8 bundle from a trained one, ~4x smaller, faster on CPU.

    textlstm quantize --checkpoint checkpoints/latest --out checkpoints/latest-int8
    textlstm classify --checkpoint checkpoints/latest-int8 "some text"

The fp32 model is written as an ONNX graph (onnx_graph.py, with a second output, the
pooled features, so `embed` works too), then ONNX Runtime's dynamic quantization stores
the LSTM, linear and embedding weights as int8 (one scale per tensor, or per output channel
with `per_channel`) and computes with int8 kernels, quantizing activations on the fly.
Biases stay fp32. The result is a bundle like any other (tokenizer.json, labels.json,
config.json, thresholds.json for multi-label) whose weights file is `model.int8.onnx`;
every verb runs it with the `onnx` engine (onnx_engine.py).

Costs: about a second per 10M weights; no torch. The accuracy
cost is measured per dataset in docs/BENCHMARKS.md ("int8"); `quantize` itself prints
how far the int8 probabilities move from the fp32 ones on a probe batch.

Nothing is overwritten silently: `--out` must be new, empty, or (with `--overwrite`) an
earlier int8 bundle; the graph is written under a temporary name and config.json last,
so a crash leaves either the old bundle or one that `classify` refuses with one line.
"""

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from textlstm import TextlstmError, files
from textlstm.checkpoint import (
    BUNDLE_FILES,
    INT8_FILES,
    THRESHOLDS_FILE,
    is_int8,
    load_bundle,
    read_meta,
    resolve,
)
from textlstm.export import require_onnx, sample_batch
from textlstm.onnx_engine import INT8_GRAPH, Session, sha256
from textlstm.onnx_graph import build
from textlstm.task import task_of

QUANTIZED_OPS = ("LSTM", "MatMul", "Gemm", "Gather")  # the ops whose weights become int8
TEMP_PREFIX = ".quantize-"  # the working folder inside --out, gone when quantize ends


def check_target(run_dir: Path, out_dir: Path, overwrite: bool) -> None:
    """`out_dir` may be written: new, empty, or an int8 bundle with `overwrite` (also one
    a killed quantize left half-written: only int8 bundle files, or its temp folder)."""
    if out_dir.exists() and out_dir.resolve() == run_dir.resolve():
        raise TextlstmError("--out is the checkpoint itself: choose another folder")
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise TextlstmError(f"{out_dir} exists and is not a folder; choose another --out")
    names = {p.name for p in out_dir.iterdir() if not p.name.startswith(TEMP_PREFIX)}
    if not names and not overwrite:
        return
    if not names <= {*INT8_FILES, THRESHOLDS_FILE}:
        raise TextlstmError(
            f"{out_dir} already exists and is not an int8 bundle; choose another --out"
        )
    if names and not overwrite:
        raise TextlstmError(f"{out_dir} already holds an int8 bundle; --overwrite replaces it")


def bundle_bytes(folder: Path, names) -> int:
    return sum((folder / n).stat().st_size for n in names if (folder / n).is_file())


def quantize(checkpoint=None, out=None, overwrite: bool = False, per_channel: bool = False):
    """Write the int8 bundle of `checkpoint` into `out` (default: `<checkpoint>-int8`).
    Returns {"path", "fp32_bytes", "int8_bytes", "max_prob_diff"}."""
    require_onnx()
    from onnxruntime import __version__ as ort_version
    from onnxruntime.quantization import QuantType, quantize_dynamic

    run_dir = resolve(checkpoint)
    config, _ = read_meta(run_dir)
    if is_int8(config):
        raise TextlstmError(f"{run_dir} is already an int8 bundle")
    out_dir = Path(out) if out else run_dir.with_name(run_dir.name + "-int8")
    check_target(run_dir, out_dir, overwrite)
    config, _, weights, _ = load_bundle(run_dir)  # the whole bundle checked, numpy weights
    model = config["model"]
    bag = (model["ngrams"], model["ngram_buckets"]) if model.get("ngrams") else None
    inputs = sample_batch(config["vocab_size"], bag)
    copied = [n for n in (*BUNDLE_FILES[2:], THRESHOLDS_FILE) if (run_dir / n).is_file()]

    files.make_folder(out_dir)
    for stale in out_dir.glob(TEMP_PREFIX + "*"):  # left by a killed quantize
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=TEMP_PREFIX) as tmp:
        tmp = Path(tmp)
        # 1. the fp32 graph with both outputs, 2. its int8 twin (ONNX Runtime's quantizer)
        (tmp / "fp32.onnx").write_bytes(build(weights, model).SerializeToString())
        logging.disable(logging.WARNING)  # its advice to pre-process targets CNNs
        try:
            quantize_dynamic(
                tmp / "fp32.onnx",
                tmp / INT8_GRAPH,
                op_types_to_quantize=list(QUANTIZED_OPS),
                per_channel=per_channel,
                weight_type=QuantType.QInt8,
            )
        finally:
            logging.disable(logging.NOTSET)
        record = {
            "format": "onnx dynamic int8",
            "per_channel": per_channel,
            "source": str(run_dir.resolve()),
            "sha256": sha256(tmp / INT8_GRAPH),
            "onnxruntime": ort_version,
            "fp32_bytes": bundle_bytes(run_dir, [*BUNDLE_FILES, THRESHOLDS_FILE]),
        }
        new_config = {**config, "quantized": record}
        # 3. the new graph must load and answer (onnx_engine's own checks) before it is kept
        feeds = (inputs["ids"], inputs["lengths"], inputs.get("ngram_ids"))
        probability = task_of(config).probabilities
        got = probability(Session(tmp, new_config).run(*feeds))
        want = probability(Session(run_dir, config, weights=weights).run(*feeds))
        (tmp / INT8_GRAPH).replace(out_dir / INT8_GRAPH)
    for name in copied:
        files.atomic_write(out_dir / name, (run_dir / name).read_bytes())
    if THRESHOLDS_FILE not in copied:  # an earlier bundle's cuts must not outlive it
        (out_dir / THRESHOLDS_FILE).unlink(missing_ok=True)
    files.write_json(out_dir / "config.json", new_config)  # last: it names the graph's hash
    return {
        "path": out_dir,
        "fp32_bytes": record["fp32_bytes"],
        "int8_bytes": bundle_bytes(out_dir, [*INT8_FILES, THRESHOLDS_FILE]),
        "max_prob_diff": float(np.abs(got - want).max()),
    }
