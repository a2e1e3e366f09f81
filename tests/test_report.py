"""The report people look at: ECE, confidently wrong texts, PNG plots, report.html."""

import base64
import json
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner

from textlstm.cli import main
from textlstm.metrics import calibration, confidently_wrong
from textlstm.report import PLOTS_HINT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_ece_on_a_hand_computed_case():
    # Bin (0.8667, 0.9333]: confidences 0.9, 0.9, one right -> |0.5 - 0.9| = 0.4, weight 2/5.
    # Bin (0.5333, 0.6]: 0.55, 0.58, 0.6 all right -> |1 - 0.5767| = 0.4233, weight 3/5.
    confidence = [0.9, 0.9, 0.55, 0.58, 0.6]
    correct = [True, False, True, True, True]
    result = calibration(confidence, correct)
    expected = 2 / 5 * 0.4 + 3 / 5 * (1 - (0.55 + 0.58 + 0.6) / 3)
    assert result["ece"] == pytest.approx(expected)
    counts = [b["count"] for b in result["bins"]]
    assert len(counts) == 15 and sum(counts) == 5
    assert counts[13] == 2 and counts[8] == 3  # 0.6 is the upper edge of bin 8, (lo, hi]
    assert result["bins"][13]["accuracy"] == 0.5


def test_ece_is_zero_when_confidence_matches_accuracy_and_edges_are_binned():
    # 4 texts at 0.75, 3 right: perfectly calibrated. 0.0 and 1.0 land in the end bins.
    assert calibration([0.75] * 4, [1, 1, 1, 0])["ece"] == pytest.approx(0.0)
    bins = calibration([0.0, 1.0], [0, 1])["bins"]
    assert bins[0]["count"] == 1 and bins[-1]["count"] == 1


def test_confidently_wrong_is_sorted_and_skips_right_answers():
    names = ["a", "b", "c"]
    probs = np.array(
        [
            [0.10, 0.80, 0.10],  # true a, predicted b at 0.80: wrong
            [0.95, 0.03, 0.02],  # true a, predicted a: right, however confident
            [0.05, 0.05, 0.90],  # true b, predicted c at 0.90: most confidently wrong
            [0.40, 0.35, 0.25],  # true c, predicted a at 0.40: wrong, least sure
        ]
    )
    texts = ["t0", "t1", "t2", "t3"]
    wrong = confidently_wrong(probs, [0, 0, 1, 2], texts, names, k=10)
    assert [w["text"] for w in wrong] == ["t2", "t0", "t3"]
    assert wrong[0] == {"text": "t2", "true": "b", "predicted": "c", "probability": 0.9}
    assert [w["text"] for w in confidently_wrong(probs, [0, 0, 1, 2], texts, names, k=2)] == [
        "t2",
        "t0",
    ]


class Images(HTMLParser):
    """Collects <img> sources and checks that every opened tag is closed."""

    VOID = {"img", "meta", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.sources, self.open = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])
        elif tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def test_evaluate_writes_pngs_html_and_wrong_examples(tiny_run, tmp_path):
    pytest.importorskip("matplotlib", reason="the plots extra is not installed")
    out = tmp_path / "report"
    result = CliRunner().invoke(
        main, ["evaluate", "--checkpoint", str(tiny_run.run_dir), "--report-dir", str(out)]
    )
    assert result.exit_code == 0, result.output
    pngs = ["confusion_matrix.png", "reliability.png", "training_curves.png"]
    for name in pngs:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name

    report = json.loads((out / "report.json").read_text())
    assert 0 <= report["calibration"]["ece"] <= 1 and len(report["calibration"]["bins"]) == 15
    wrong = report["confidently_wrong"]
    errors = sum(report["confusion_matrix"][i][j] for i in range(2) for j in range(2) if i != j)
    assert len(wrong) == min(10, errors) and len(wrong) > 0
    probs = [w["probability"] for w in wrong]
    assert probs == sorted(probs, reverse=True) and all(w["true"] != w["predicted"] for w in wrong)

    md = (out / "report.md").read_text()
    assert all(f"]({name})" in md for name in pngs) and "Most confidently wrong" in md

    parser = Images()
    parser.feed((out / "report.html").read_text())
    parser.close()
    assert parser.open == []  # every opened tag was closed
    assert len(parser.sources) == 3
    for src in parser.sources:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix) and base64.b64decode(src[len(prefix) :])[:8] == PNG_MAGIC


def test_without_matplotlib_the_report_is_written_and_says_how_to_get_plots(
    tiny_run, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    out = tmp_path / "report"
    result = CliRunner().invoke(
        main, ["evaluate", "--checkpoint", str(tiny_run.run_dir), "--report-dir", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    assert PLOTS_HINT in result.stderr and "textlstm[plots]" in PLOTS_HINT
    assert "<img" not in (out / "report.html").read_text()
