"""The `onnx` engine: an int8 bundle (`textlstm quantize`) run by ONNX Runtime.

An int8 bundle holds `model.int8.onnx` instead of `model.safetensors`: the exported graph
(quantize.py) with its LSTM, linear and embedding weights stored as int8 and its
activations quantized on the fly by ONNX Runtime's int8 kernels (`DynamicQuantizeLSTM`,
`MatMulInteger`). That graph *is* the model, so every verb runs it through this module:
`classify`, `embed`, `serve` and the Python API through `Session`, `evaluate` through
`torch_module`; the numpy and torch engines, which compute the fp32 model from
safetensors weights, refuse such a bundle with one line.

Loading checks the bundle whole, like `checkpoint.load_bundle` does for fp32: the graph's
sha256 against config.json (a truncated or edited file), its inputs against the model
config (n-gram branch or not), and one probe run that must give `num_classes` logits and
the configured feature width for the highest token id (a graph from another run). Cost:
onnxruntime imports in ~0.1 s and builds a session in ~0.1 s; no torch.
"""

import hashlib
from pathlib import Path

import numpy as np

from textlstm import TextlstmError

INT8_GRAPH = "model.int8.onnx"  # the weights file of an int8 bundle
OUTPUTS = ("logits", "features")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def feature_width(model: dict) -> int:
    """Width of the pooled features the classifier reads (TextLSTM.features)."""
    directions = 2 if model["bidirectional"] else 1
    width = model["hidden_dim"] * directions * len(model["pooling"].split("+"))
    return width + (model["ngram_dim"] if model.get("ngrams") else 0)


def require_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise TextlstmError(
            "the onnx engine (every int8 bundle's) needs onnxruntime: pip install 'textlstm[onnx]'"
        ) from exc
    return onnxruntime


class Session:
    """One ONNX Runtime session over a bundle: an int8 bundle's stored graph, or for an
    fp32 bundle the graph onnx_graph.py builds from its checked `weights`."""

    def __init__(self, run_dir: Path, config: dict, threads: int = 0, weights=None):
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        options.log_severity_level = 3  # errors only: no graph-optimisation chatter
        path = run_dir / INT8_GRAPH
        if weights is not None:
            from textlstm.onnx_graph import build

            graph = build(weights, config["model"]).SerializeToString()
        else:
            if not path.is_file():
                raise TextlstmError(f"{run_dir} is an int8 bundle but has no {INT8_GRAPH}")
            if sha256(path) != config["quantized"].get("sha256"):
                raise TextlstmError(
                    f"{path} does not match the sha256 in config.json: it is truncated, edited "
                    "or from another quantization; run textlstm quantize again"
                )
            graph = str(path)
        try:
            self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad graph
            raise TextlstmError(f"{path} cannot be loaded by onnxruntime ({exc})") from exc
        model = config["model"]
        self.bag = (model["ngrams"], model["ngram_buckets"]) if model.get("ngrams") else None
        want = ["ids", "lengths"] + (["ngram_ids"] if self.bag else [])
        got = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if got != want or outputs != list(OUTPUTS):
            raise TextlstmError(
                f"{path} has inputs {got} and outputs {outputs}; config.json's model needs "
                f"{want} -> {list(OUTPUTS)}: the files come from different runs"
            )
        self.probe(path, config)

    def probe(self, path: Path, config: dict) -> None:
        """The highest token id and bucket go through, and both outputs have their width."""
        ids = np.array([[1, config["vocab_size"] - 1]], dtype=np.int64)
        bag = np.array([[self.bag[1]]], dtype=np.int64) if self.bag else None
        try:
            logits, features = self.run(ids, np.array([2], dtype=np.int64), bag, both=True)
        except Exception as exc:
            raise TextlstmError(
                f"{path} does not fit config.json ({type(exc).__name__}): the files come from "
                "different runs"
            ) from exc
        want = (config["num_classes"], feature_width(config["model"]))
        if (logits.shape[1], features.shape[1]) != want:
            raise TextlstmError(
                f"{path} gives {logits.shape[1]} logits and {features.shape[1]} features; "
                f"config.json says {want[0]} and {want[1]}: the files come from different runs"
            )

    def run(self, ids, lengths, ngram_ids=None, features: bool = False, both: bool = False):
        """Logits (B, C), or with `features` the pooled vectors (B, D), of a padded batch."""
        feeds = {"ids": ids.astype(np.int64), "lengths": lengths.astype(np.int64)}
        if self.bag:
            feeds["ngram_ids"] = ngram_ids.astype(np.int64)
        wanted = list(OUTPUTS) if both else [OUTPUTS[1] if features else OUTPUTS[0]]
        out = self.session.run(wanted, feeds)
        return tuple(out) if both else out[0]


def torch_module(session: Session):
    """The session behind TextLSTM's call signature, for torch-side readers (evaluate): an
    `nn.Module` whose forward runs the int8 graph on the CPU."""
    import torch

    class Int8Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bag = session.bag
            # no weights live in torch; one empty parameter says which device it runs on
            self.anchor = torch.nn.Parameter(torch.zeros(0), requires_grad=False)

        def forward(self, input_ids, lengths, ngram_ids=None):
            bag = None if ngram_ids is None else ngram_ids.cpu().numpy()
            logits = session.run(input_ids.cpu().numpy(), lengths.cpu().numpy(), bag)
            return torch.from_numpy(logits)

    return Int8Model().eval()
