"""textlstm from Python: load a trained bundle once and call it, or train one.

    import textlstm
    clf = textlstm.load("checkpoints/latest")
    clf.predict(["WINNER!! free prize", "see you at 8"])      # [[("spam", 0.99)], [("ham", 0.98)]]
    clf.predict_proba(texts)                                   # (N, C) in clf.labels order
    clf.embed(texts)                                           # (N, D): what the classifier reads
    run_dir = textlstm.train("path/to/data", overrides={"train.epochs": 3})

The same engines, checks and answers as the CLI (`classify` and `predict` agree text for
text). Importing `textlstm` costs no torch; `load` on the CPU never imports it (the onnx engine,
or numpy without the onnx extra); `train` does (~2 s).
"""

from pathlib import Path

import numpy as np

from textlstm import TextlstmError


class Classifier:
    """A loaded bundle: `predict`, `predict_proba` and `embed` on lists of texts.

    Texts are classified in length-sorted batches of `batch_size`; a single string gives
    a single answer. Engine "auto": onnx on the CPU (numpy without the onnx extra; int8
    bundles always onnx), torch on a GPU.
    """

    def __init__(
        self, checkpoint=None, engine: str = "auto", device: str = "cpu", batch_size: int = 128
    ):
        from textlstm.predict import Predictor

        self.predictor = Predictor(checkpoint, engine, device)
        self.batch_size = batch_size

    @property
    def labels(self) -> list[str]:
        """Label names, in the column order of `predict_proba`."""
        return list(self.predictor.labels)

    @property
    def multi_label(self) -> bool:
        return self.predictor.task.name == "multi_label"

    @property
    def run_dir(self) -> Path:
        return self.predictor.run_dir

    def predict(self, texts, top_k: int = 1, threshold: float | None = None):
        """[(label, probability), ...] per text, most likely first: single-label, the `top_k`
        labels at or above `threshold`; multi-label, every label at or above its tuned cut
        (`threshold` replaces those cuts; `top_k` does not apply)."""
        single, texts = as_list(texts)
        if threshold is not None and not 0.0 <= threshold <= 1.0:  # NaN fails this too
            raise TextlstmError(f"threshold must be a probability in [0, 1], not {threshold!r}")
        if top_k < 1:
            raise TextlstmError(f"top_k must be at least 1, not {top_k}")
        picks = [
            self.predictor.pick(row, top_k, threshold or 0.0) for row in self.predict_proba(texts)
        ]
        return picks[0] if single else picks

    def predict_proba(self, texts) -> np.ndarray:
        """(len(texts), len(labels)) probabilities (softmax; multi-label: sigmoids)."""
        single, texts = as_list(texts)
        probs = self.predictor.probabilities(texts, self.batch_size)
        return probs[0] if single else probs

    def embed(self, texts) -> np.ndarray:
        """(len(texts), D) float32 vectors: each text's pooled features, the input of the
        classifier, for search, clustering or another model."""
        single, texts = as_list(texts)
        vectors = self.predictor.embeddings(texts, self.batch_size)
        return vectors[0] if single else vectors

    def __repr__(self) -> str:
        return (
            f"Classifier({str(self.run_dir)!r}, labels={self.labels}, "
            f"engine={self.predictor.engine!r})"
        )


def as_list(texts) -> tuple[bool, list[str]]:
    if isinstance(texts, str):
        return True, [texts]
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TextlstmError("texts must be a string or a list of strings")
    return False, texts


def build_config(data, config, overrides):
    """A run's config from the API's arguments: `overrides` is a dict {"train.epochs": 3}
    or a list of "section.key=value" strings, like `--set`."""
    from textlstm import config as run_config

    items = overrides or ()
    if isinstance(items, dict):
        items = [f"{key}={value}" for key, value in items.items()]
    cfg = run_config.build(config, tuple(items))
    if data is not None:
        cfg.data.source = str(data)
    cfg.check()
    return cfg


def train(
    data=None, config=None, out=None, overrides=None, overwrite: bool = False, init_from=None
) -> Path:
    """Train as `textlstm train` does and return the run folder.

    `data`: what `--data` takes; `config`: a TOML file like `--config`; `overrides`: like
    `--set` (see build_config); `init_from`: a `pretrain` folder, like `--init-from`.
    """
    from textlstm.training import fit

    cfg = build_config(data, config, overrides)
    cfg.model.init_from = str(init_from) if init_from else cfg.model.init_from
    return fit(cfg, Path(out) if out else None, overwrite=overwrite).run_dir


def pretrain(data, out, unlabeled=(), config=None, overrides=None, overwrite=False) -> Path:
    """Pretrain an encoder as `textlstm pretrain` does and return its folder: the texts of
    `data`'s train split and of the `unlabeled` files (paths)."""
    from textlstm.pretraining import pretrain as run

    cfg = build_config(data, config, overrides)
    if isinstance(unlabeled, str | Path):
        unlabeled = [unlabeled]
    return run(cfg, Path(out), [str(p) for p in unlabeled], overwrite=overwrite).out
