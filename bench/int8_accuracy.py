"""int8 against fp32: accuracy, agreement and size, per dataset, from trained bundles.

    .venv/bin/python bench/int8_accuracy.py NAME=RUN=TEST.parquet [NAME=RUN=TEST.parquet ...]

Each RUN is quantized twice (`textlstm.quantize`: one int8 scale per tensor, the
default, and `per_channel`) into a temporary folder; the fp32 bundle (onnx engine, equal
to torch to 1e-5) and both int8 bundles classify TEST's texts. Printed: test accuracy of
each, the share of texts whose label is unchanged, the largest probability change, and
the bundle sizes. Reading test labels is fine here: the models are final, nothing is chosen.
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import numpy as np
    import pandas as pd

    from textlstm.predict import Predictor
    from textlstm.quantize import quantize

    print(
        "| dataset (test texts) | fp32 | int8 | int8 per-channel | labels unchanged "
        "| max prob change | bundle MB fp32 -> int8 |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in sys.argv[1:]:
            name, run, test = spec.split("=")
            frame = pd.read_parquet(test)
            texts, truth = frame.text.tolist(), frame.label.to_numpy()
            fp32 = Predictor(run).probabilities(texts)
            row, changed = [], 0.0
            for per_channel in (False, True):
                q = quantize(run, Path(tmp) / f"{name}-{per_channel}", per_channel=per_channel)
                probs = Predictor(q["path"]).probabilities(texts)
                row.append((probs.argmax(1) == truth).mean() * 100)
                if not per_channel:
                    same = (probs.argmax(1) == fp32.argmax(1)).mean() * 100
                    changed = np.abs(probs - fp32).max()
                    sizes = (
                        f"{q['fp32_bytes'] / 1e6:.2f} -> {q['int8_bytes'] / 1e6:.2f} "
                        f"({q['fp32_bytes'] / q['int8_bytes']:.2f}x)"
                    )
            acc = (fp32.argmax(1) == truth).mean() * 100
            print(
                f"| {name} ({len(texts)}) | {acc:.2f} | {row[0]:.2f} | {row[1]:.2f} "
                f"| {same:.2f}% | {changed:.3f} | {sizes} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
