"""Raw text -> label probabilities, from nothing but a checkpoint bundle.

Three engines compute the same function (tested to 1e-5 on fp32 logits); "auto" picks
one per situation (`auto_engine`, measured in docs/BENCHMARKS.md, "CPU inference"):
- `onnx`: ONNX Runtime over the graph onnx_graph.py builds from the weights (no torch),
  or an int8 bundle's stored graph (`textlstm quantize`; the only engine it has). The
  fastest on CPU for files, the Python API and `serve`; needs the `onnx` extra.
- `numpy`: the forward pass written in numpy. `import torch` alone takes ~2 s on a
  2-core machine; this engine never imports torch and starts fastest, so a cold
  `textlstm classify "text"` takes it and answers in a fraction of a second. Its time
  loop is plain Python over BLAS products: fine for thousands of texts, slow for millions.
- `torch`: the trained `TextLSTM` (cuDNN/oneDNN kernels); needed for `--device cuda`,
  and the choice for files on CPU where the onnx extra is missing.
"""

import numpy as np

from textlstm import TextlstmError
from textlstm.checkpoint import (
    is_int8,
    load_bundle,
    load_model,
    load_tokenizer,
    read_meta,
    refuse_int8,
    resolve,
)
from textlstm.metrics import sigmoid
from textlstm.ngrams import bag_matrix
from textlstm.task import task_of
from textlstm.tokenizer import PAD_ID, encode, encode_with_bag

ENGINES = ("auto", "numpy", "torch", "onnx")


def numpy_lstm_direction(x, mask, w_ih, w_hh, b_ih, b_hh, reverse):
    """One layer and direction of the LSTM, masked for padding (see cell.py)."""
    batch, steps, _ = x.shape
    hidden = w_hh.shape[1]
    x_proj = x @ w_ih.T + (b_ih + b_hh)
    h = np.zeros((batch, hidden), dtype=x.dtype)
    c = np.zeros((batch, hidden), dtype=x.dtype)
    out = np.zeros((batch, steps, hidden), dtype=x.dtype)
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        gates = x_proj[:, t] + h @ w_hh.T
        i, f, g, o = np.split(gates, 4, axis=1)
        c_next = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h_next = sigmoid(o) * np.tanh(c_next)
        real = mask[:, t, None]
        h, c = np.where(real, h_next, h), np.where(real, c_next, c)
        out[:, t] = h_next * real
    return out


def numpy_logits(
    w: dict,
    model_cfg: dict,
    ids: np.ndarray,
    lengths: np.ndarray,
    ngram_ids: np.ndarray | None = None,
) -> np.ndarray:
    """TextLSTM's forward pass (eval mode) in numpy, from the safetensors weights; with an
    n-gram branch, `ngram_ids` are the texts' 0-padded bucket ids (ngrams.bag_matrix)."""
    features = numpy_features(w, model_cfg, ids, lengths, ngram_ids)
    return features @ w["classifier.weight"].T + w["classifier.bias"]


def numpy_features(
    w: dict,
    model_cfg: dict,
    ids: np.ndarray,
    lengths: np.ndarray,
    ngram_ids: np.ndarray | None = None,
) -> np.ndarray:
    """TextLSTM.features in numpy: the pooled vector the classifier reads, per text."""
    steps = ids.shape[1]
    mask = np.arange(steps)[None, :] < lengths[:, None]
    directions = 2 if model_cfg["bidirectional"] else 1
    layer_input = w["embedding.weight"][ids]
    for layer in range(model_cfg["num_layers"]):
        outs = []
        for d in range(directions):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            params = [w[f"rnn.{n}{sfx}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            outs.append(numpy_lstm_direction(layer_input, mask, *params, reverse=d == 1))
        layer_input = np.concatenate(outs, axis=2)
    out, hidden = layer_input, model_cfg["hidden_dim"]
    finals = [out[np.arange(len(ids)), lengths - 1, :hidden]]
    if directions == 2:
        finals.append(out[:, 0, hidden:])
    pooled = []
    for kind in model_cfg["pooling"].split("+"):
        if kind == "max":
            pooled.append(np.where(mask[:, :, None], out, -np.inf).max(axis=1))
        elif kind == "mean":
            pooled.append(out.sum(axis=1) / lengths[:, None])
        else:
            pooled.append(np.concatenate(finals, axis=1))
    if model_cfg.get("ngrams"):  # bucket vectors summed, over their count or its root; 0 pads
        counts = np.maximum((ngram_ids > 0).sum(axis=1, keepdims=True), 1)
        if model_cfg.get("ngram_pooling") == "sqrt":
            counts = np.sqrt(counts)
        pooled.append(w["ngram_embedding.weight"][ngram_ids].sum(axis=1) / counts)
    return np.concatenate(pooled, axis=1)


def onnx_available() -> bool:
    """onnx and onnxruntime are installed (the `onnx` extra); found without importing."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def auto_engine(int8: bool, device: str, workload: str = "service") -> str:
    """The engine "auto" picks, as measured (docs/BENCHMARKS.md, "CPU inference"). GPU:
    torch. CPU: onnx (ONNX Runtime, 3-5x numpy's pace on short texts, 1.0-1.4x the bare
    torch forward), except for `workload` "few" (texts given to a new process: numpy
    starts in 0.16 s, onnx in 0.3 s); without the onnx extra numpy, or torch for a
    "file" (numpy's Python time loop would crawl through it). "service": load once, call
    often (the Python API, serve)."""
    if device != "cpu":
        return "torch"
    if int8 or (onnx_available() and workload != "few"):
        return "onnx"
    return "torch" if workload == "file" and not onnx_available() else "numpy"


class Predictor:
    """Loads a bundle once; `probabilities(texts)` and `classify(texts, ...)` per call."""

    def __init__(
        self, checkpoint=None, engine: str = "auto", device: str = "cpu", workload="service"
    ):
        self.run_dir = resolve(checkpoint)
        if engine not in ENGINES:
            raise TextlstmError(f"engine must be one of {', '.join(ENGINES)}")
        meta = read_meta(self.run_dir)[0]  # the complete bundle's config.json, checked
        int8 = is_int8(meta)
        self.engine = auto_engine(int8, device, workload) if engine == "auto" else engine
        # Every engine checks the bundle whole (checkpoint.load_bundle, onnx_engine.Session):
        # weights against config.json, tokenizer against the weights, every weight finite.
        if self.engine == "onnx":
            from textlstm import onnx_engine

            if device != "cpu":
                what = "int8 bundles run" if int8 else "the onnx engine runs"
                raise TextlstmError(f"{what} on the CPU: use --device cpu")
            if int8:
                self.config, self.labels = read_meta(self.run_dir)
                self.session = onnx_engine.Session(self.run_dir, self.config)
            else:
                self.config, self.labels, weights, _ = load_bundle(self.run_dir)
                self.session = onnx_engine.Session(self.run_dir, self.config, weights=weights)
            self.tokenizer = load_tokenizer(self.run_dir, self.config["vocab_size"])
        elif self.engine == "numpy":
            if int8:
                refuse_int8(self.run_dir, meta, "the numpy engine")
            if device != "cpu":
                raise TextlstmError("the numpy engine runs on the CPU; use --engine torch")
            self.config, self.labels, self.weights, self.tokenizer = load_bundle(self.run_dir)
        else:
            if int8 and device != "cpu":
                raise TextlstmError("int8 bundles run on the CPU: use --device cpu")
            if int8:
                refuse_int8(self.run_dir, meta, "the torch engine")
            self.model, self.config, self.labels = load_model(self.run_dir, device)
            self.tokenizer = load_tokenizer(self.run_dir, self.config["vocab_size"])
            self.device = device
        # single-label: softmax; multi-label: a sigmoid per label and its tuned threshold
        self.task = task_of(self.config).load(self.run_dir, self.labels)

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """The ids the LSTM reads, per text (at most data.max_len)."""
        return self.encoded(texts)[0]

    def encoded(self, texts: list[str]):
        """(the LSTM's ids per text, the whole texts' ids for an n-gram bag, or None)."""
        data, model = self.config["data"], self.config["model"]
        if model.get("ngrams"):
            return encode_with_bag(self.tokenizer, texts, data["max_len"], data["truncation"])
        return encode(self.tokenizer, texts, data["max_len"], data["truncation"]), None

    def batch_outputs(self, ids, lengths, ngram_ids=None, features=False) -> np.ndarray:
        """Logits (or, with `features`, the pooled vectors) of one padded batch."""
        if self.engine == "numpy":
            run = numpy_features if features else numpy_logits
            return run(self.weights, self.config["model"], ids, lengths, ngram_ids)
        if self.engine == "onnx":
            return self.session.run(ids, lengths, ngram_ids, features=features)
        import torch

        def to(a):
            return None if a is None else torch.from_numpy(a).to(self.device)

        with torch.no_grad():
            run = self.model.features if features else self.model
            out = run(to(ids), to(lengths), to(ngram_ids))
        return out.float().cpu().numpy()

    def batches(self, texts: list[str], batch_size: int):
        """(positions, ids, lengths, ngram ids or None) per batch, sorted by length."""
        all_ids, whole = self.encoded(texts)
        model = self.config["model"]
        lengths = np.array([len(i) for i in all_ids], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            block = np.full((len(index), lengths[index].max()), PAD_ID, dtype=np.int64)
            for row, i in enumerate(index):
                block[row, : lengths[i]] = all_ids[i]
            bag = None
            if whole is not None:
                bag = bag_matrix([whole[i] for i in index], model["ngrams"], model["ngram_buckets"])
            yield index, block, lengths[index], bag

    def probabilities(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """(len(texts), num_classes) probabilities; batches sorted by length."""
        probs = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for index, ids, lengths, bag in self.batches(texts, batch_size):
            probs[index] = self.task.probabilities(self.batch_outputs(ids, lengths, bag))
        return probs

    def embeddings(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """(len(texts), D) pooled features: the vector the classifier reads for each text.
        The same for both engines (to 1e-5); padding never changes a text's vector."""
        out = None
        for index, ids, lengths, bag in self.batches(texts, batch_size):
            vectors = self.batch_outputs(ids, lengths, bag, features=True)
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[index] = vectors
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

    def classify(self, texts: list[str], top_k: int = 1, threshold: float = 0.0):
        """For each text, [(label, probability), ...]: see `pick`."""
        return [self.pick(row, top_k, threshold) for row in self.probabilities(texts)]

    def pick(self, row: np.ndarray, top_k: int = 1, threshold: float = 0.0):
        """Single-label: the top k at or above `threshold`. Multi-label: every label at or
        above its tuned threshold (`threshold` > 0 replaces those), `top_k` not applied."""
        return self.task.pick(row, self.labels, top_k, threshold)
