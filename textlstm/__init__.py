"""textlstm: text classification with a bidirectional multi-layer LSTM.

Importing the package is cheap on purpose (no torch, no datasets): the CLI's `--help`
and `classify` stay fast. Each stage lives in its own module: README.md, "Layout", maps them.
"""

__version__ = "0.1.0"

# Layout version of the checkpoint bundle. Bump when a file's meaning changes, so an old
# textlstm refuses a newer bundle with a clear message instead of mis-reading it.
FORMAT_VERSION = 1


def load(checkpoint=None, engine: str = "auto", device: str = "cpu"):
    """A trained bundle, ready to `predict`, `predict_proba` and `embed` (api.Classifier);
    `checkpoint` defaults to checkpoints/latest."""
    from textlstm.api import Classifier

    return Classifier(checkpoint, engine, device)


def train(
    data=None, config=None, out=None, overrides=None, overwrite: bool = False, init_from=None
):
    """Train a classifier as `textlstm train` does; returns the run folder (api.train)."""
    from textlstm.api import train as run

    return run(data, config, out, overrides, overwrite, init_from)


def pretrain(data, out, unlabeled=(), config=None, overrides=None, overwrite: bool = False):
    """Pretrain an encoder as `textlstm pretrain` does; returns its folder (api.pretrain)."""
    from textlstm.api import pretrain as run

    return run(data, out, unlabeled, config, overrides, overwrite)


class TextlstmError(Exception):
    """A problem the user can fix (bad path, missing column, ...).

    The CLI prints it as one `error:` line on stderr and exits with status 1; no traceback.
    """
