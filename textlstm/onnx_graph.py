"""TextLSTM's forward pass as an ONNX graph, built from the bundle's weights without torch.

The `onnx` engine (onnx_engine.py) runs it with ONNX Runtime; `textlstm quantize` turns
it into the int8 graph. Same function as TextLSTM in eval mode (tested against the numpy
engine to 1e-5), same contract as `textlstm export`'s graph plus a second output:

    ids int64 (batch, steps), right-padded with 0     -> logits   float32 (batch, classes)
    lengths int64 (batch,)                            -> features float32 (batch, D)
    ngram_ids int64 (batch, n), 0-padded (model.ngrams only)

Each layer is one bidirectional ONNX `LSTM` node given the true `sequence_lens`: the
forward direction stops at each text's last token, the backward one starts there, and
outputs past a text's length are zero, so padding never changes a text's answer (what
model.py's DenseLSTM computes with its within-length reversal). Gates: torch orders a
weight's rows i, f, g, o; ONNX wants i, o, f, g (`GATES`). Building costs milliseconds
(it copies the weights once); no torch import, so a cold `classify` stays fast.
"""

import numpy as np

from textlstm import TextlstmError

OPSET = 17
GATES = (0, 3, 1, 2)  # ONNX gate block k takes torch's block GATES[k]: i, o, f, g


def require_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise TextlstmError(
            "the onnx engine needs onnx and onnxruntime: pip install 'textlstm[onnx]'"
        ) from exc
    return onnx


def onnx_gates(w: np.ndarray) -> np.ndarray:
    """Rows of a (4H, ...) torch LSTM weight or (4H,) bias in ONNX's gate order."""
    return np.concatenate([b for b in (np.split(w, 4, axis=0)[k] for k in GATES)], axis=0)


def build(weights: dict, model: dict):
    """The ModelProto of TextLSTM (config.json's `model` section) with these weights."""
    onnx = require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op, inputs, outputs=None, **attrs):
        outputs = outputs or [f"{op.lower()}_{len(nodes)}"]
        nodes.append(helper.make_node(op, inputs, outputs, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    hidden, layers = model["hidden_dim"], model["num_layers"]
    directions = 2 if model["bidirectional"] else 1
    axis0, axis1, axis2 = const("axis0", [0]), const("axis1", [1]), const("axis2", [2])
    # mask (B, T): position < length; the text-major (T, B, E) embeddings feed the LSTM
    steps = node("Gather", [node("Shape", ["ids"]), const("one", np.int64(1))])
    positions = node("Range", [const("zero", np.int64(0)), steps, "one"])
    mask = node(
        "Less", [node("Unsqueeze", [positions, axis0]), node("Unsqueeze", ["lengths", axis1])]
    )
    seq_lens = node("Cast", ["lengths"], to=TensorProto.INT32)
    x = node("Gather", [const("embedding.weight", weights["embedding.weight"]), "ids"])
    x = node("Transpose", [x], perm=[1, 0, 2])
    for layer in range(layers):
        sfx = [f"_l{layer}", f"_l{layer}_reverse"][:directions]
        w = np.stack([onnx_gates(weights[f"rnn.weight_ih{s}"]) for s in sfx])
        r = np.stack([onnx_gates(weights[f"rnn.weight_hh{s}"]) for s in sfx])
        b = np.stack(
            [
                np.concatenate(
                    [onnx_gates(weights[f"rnn.bias_ih{s}"]), onnx_gates(weights[f"rnn.bias_hh{s}"])]
                )
                for s in sfx
            ]
        )
        y, y_h = node(
            "LSTM",
            [x, const(f"W{layer}", w), const(f"R{layer}", r), const(f"B{layer}", b), seq_lens],
            [f"y{layer}", f"y_h{layer}"],
            hidden_size=hidden,
            direction="bidirectional" if directions == 2 else "forward",
        )
        # (T, D, B, H) -> (T, B, D*H): the directions side by side, as torch concatenates
        x = node(
            "Reshape",
            [
                node("Transpose", [y], perm=[0, 2, 1, 3]),
                const(f"shape{layer}", np.array([0, 0, -1], dtype=np.int64)),
            ],
        )
    out = node("Transpose", [x], perm=[1, 0, 2])  # (B, T, D*H), zero past each length
    pooled = []
    for kind in model["pooling"].split("+"):
        if kind == "max":
            hidden_mask = node("Unsqueeze", [mask, axis2])
            low = const("minus_inf", np.array(-np.inf, dtype=np.float32))
            masked = node("Where", [hidden_mask, out, low])
            pooled.append(node("ReduceMax", [masked], axes=[1], keepdims=0))  # opset 17: attr
        elif kind == "mean":
            count = node("Cast", [node("Unsqueeze", ["lengths", axis1])], to=TensorProto.FLOAT)
            pooled.append(node("Div", [node("ReduceSum", [out, axis1], keepdims=0), count]))
        else:  # last: the final states, forward at the last token, backward at token 0
            finals = node("Transpose", [f"y_h{layers - 1}"], perm=[1, 0, 2])
            pooled.append(node("Reshape", [finals, const("flat", np.array([0, -1], np.int64))]))
    inputs = [
        helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "steps"]),
        helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"]),
    ]
    if model.get("ngrams"):  # bucket vectors summed, over their count or its root; 0 pads
        inputs.append(
            helper.make_tensor_value_info("ngram_ids", TensorProto.INT64, ["batch", "ngrams"])
        )
        bag = node(
            "Gather",
            [const("ngram_embedding.weight", weights["ngram_embedding.weight"]), "ngram_ids"],
        )
        real = node("Cast", [node("Greater", ["ngram_ids", "zero"])], to=TensorProto.FLOAT)
        count = node(
            "Max",
            [
                node("ReduceSum", [real, axis1], keepdims=1),
                const("one_f", np.array(1.0, dtype=np.float32)),
            ],
        )
        if model.get("ngram_pooling") == "sqrt":
            count = node("Sqrt", [count])
        pooled.append(node("Div", [node("ReduceSum", [bag, axis1], keepdims=0), count]))
    node("Concat", pooled, ["features"], axis=1)
    node(
        "Gemm",
        [
            "features",
            const("classifier.weight", weights["classifier.weight"]),
            const("classifier.bias", weights["classifier.bias"]),
        ],
        ["logits"],
        transB=1,
    )
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "classes"]),
        helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", "width"]),
    ]
    graph = helper.make_graph(nodes, "textlstm", inputs, outputs, inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = min(proto.ir_version, 8)  # readable by onnxruntime >= 1.14
    onnx.checker.check_model(proto)
    return proto
