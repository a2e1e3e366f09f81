"""Multi-label: label lists in, sigmoid + BCE, tuned thresholds, micro/macro-F1, classify."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from conftest import SMS, tiny_config

from textlstm import TextlstmError
from textlstm.cli import main
from textlstm.config import DataConfig
from textlstm.data import load_raw
from textlstm.evaluate import evaluate_split
from textlstm.metrics import multi_label_report as report
from textlstm.metrics import tune_thresholds
from textlstm.predict import Predictor
from textlstm.task import MultiLabel
from textlstm.training import fit


def label_sets(frame: pd.DataFrame) -> list[list[str]]:
    """ham/spam, plus has_number if any digit, plus long if over 80 characters."""
    names = json.loads((SMS / "labels.json").read_text())
    return [
        [names[label]]
        + (["has_number"] if any(c.isdigit() for c in text) else [])
        + (["long"] if len(text) > 80 else [])
        for text, label in zip(frame["text"], frame["label"], strict=True)
    ]


@pytest.fixture(scope="module")
def multi_sms(tmp_path_factory):
    """Real SMS texts with label lists: 1200 train / 250 validation / 400 test."""
    folder = tmp_path_factory.mktemp("sms_multi")
    for split, n in (("train", 1200), ("validation", 250), ("test", 400)):
        frame = pd.read_parquet(SMS / f"{split}.parquet").head(n)
        frame["label"] = label_sets(frame)
        frame.to_parquet(folder / f"{split}.parquet")
    return folder


@pytest.fixture(scope="module")
def multi_run(multi_sms, tmp_path_factory):
    cfg = tiny_config("train.epochs=4", "train.test=false", source=multi_sms)
    return fit(cfg, tmp_path_factory.mktemp("ckpt") / "multi")


def test_thresholds_maximise_f1_on_a_hand_case():
    y = np.array([[1, 0], [1, 0], [0, 0], [1, 0], [0, 1]])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.2, 0.35]])
    # Label 0 (3 positives): calling the top 1..5 positive gives F1 = 2 tp / (k + 3) =
    # 0.5, 0.8, 0.667, 0.857, 0.75 -> top 4, the cut between 0.6 and 0.2 is 0.4.
    # Label 1 (1 positive, ranked 2nd): F1 0, 0.667, 0.5, ... -> between 0.35 and 0.3.
    assert tune_thresholds(y, probs) == pytest.approx([0.4, 0.325])
    # A label without positives keeps 0.5; ties are never split.
    assert tune_thresholds(np.zeros((3, 1)), np.array([[0.9], [0.1], [0.2]]))[0] == 0.5
    tied = tune_thresholds(np.array([[1], [0], [0]]), np.array([[0.7], [0.7], [0.1]]))
    assert tied[0] == pytest.approx(0.4)


def test_metrics_on_a_hand_case():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    logits = np.array([[2.0, -2.0, 2.0], [-2.0, 2.0, 2.0], [2.0, -2.0, -2.0]])
    # predicted at 0.5: [1,0,1] right; [0,1,1] one false positive; [1,0,0] one miss
    r = report(y, logits, ["a", "b", "c"])
    assert r["subset_accuracy"] == pytest.approx(1 / 3)
    assert r["micro_f1"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))
    f1 = {"a": 1.0, "b": 2 / 3, "c": 2 / 3}
    assert {n: m["f1"] for n, m in r["per_class"].items()} == pytest.approx(f1)
    assert r["macro_f1"] == pytest.approx(np.mean(list(f1.values())))
    assert MultiLabel([0.1, 0.5, 0.7]).pick(np.array([0.2, 0.9, 0.6]), ["a", "b", "c"]) == [
        ("b", pytest.approx(0.9)),
        ("a", pytest.approx(0.2)),
    ]


def test_label_lists_are_detected_and_mapped(multi_sms):
    raw = load_raw(DataConfig(source=str(multi_sms)))
    assert raw.task.name == "multi_label"
    assert raw.label_names == ["ham", "has_number", "long", "spam"]
    expected = label_sets(pd.read_parquet(SMS / "train.parquet").head(3))
    rows = raw.splits["train"]["label"][:3]
    assert [[raw.label_names[i] for i, v in enumerate(r) if v] for r in rows] == [
        sorted(e) for e in expected
    ]


def test_unknown_label_in_a_list_is_an_error(multi_sms, tmp_path):
    for split in ("train", "validation"):
        frame = pd.read_parquet(multi_sms / f"{split}.parquet")
        if split == "validation":
            frame.at[0, "label"] = ["ham", "urgent"]
        frame.to_parquet(tmp_path / f"{split}.parquet")
    with pytest.raises(TextlstmError, match="urgent"):
        load_raw(DataConfig(source=str(tmp_path)))


def test_tiny_multi_label_model_beats_trivial_predictors(multi_run, multi_sms):
    run = multi_run.run_dir
    assert json.loads((run / "config.json").read_text())["task"] == "multi_label"
    thresholds = json.loads((run / "thresholds.json").read_text())
    assert set(thresholds) == set(multi_run.prepared.label_names)

    test = multi_run.prepared.splits["test"]
    y = np.asarray(test["label"]).astype(bool)
    frequent = np.asarray(multi_run.prepared.splits["train"]["label"]).mean(0) > 0.5
    trivial = []
    for guess in (np.broadcast_to(frequent, y.shape), np.ones_like(y)):  # majority, all
        tp, fp, fn = (guess & y).sum(), (guess & ~y).sum(), (~guess & y).sum()
        trivial.append(2 * tp / (2 * tp + fp + fn))
    names = multi_run.prepared.label_names
    task = MultiLabel([thresholds[n] for n in names])
    result = evaluate_split(multi_run.model, test, names, torch.device("cpu"), task)
    assert result["micro_f1"] > max(trivial) + 0.1, (result["micro_f1"], trivial)
    assert result["per_class"]["spam"]["f1"] > 0.5


def test_classify_returns_every_label_above_its_threshold(multi_run):
    texts = ["WINNER!! call 09061701461 now to claim your prize of 900 pounds cash", "ok"]
    numpy_engine = Predictor(multi_run.run_dir, engine="numpy")
    torch_engine = Predictor(multi_run.run_dir, engine="torch")
    probs = numpy_engine.probabilities(texts)
    np.testing.assert_allclose(probs, torch_engine.probabilities(texts), atol=1e-5)
    assert not np.allclose(probs.sum(axis=1), 1)  # independent sigmoids, not a softmax
    for row, picks in zip(probs, numpy_engine.classify(texts), strict=True):
        expected = {
            n
            for n, p, t in zip(numpy_engine.labels, row, numpy_engine.task.thresholds, strict=True)
            if p >= t
        }
        assert {label for label, _ in picks} == expected

    result = CliRunner().invoke(
        main, ["classify", "--checkpoint", str(multi_run.run_dir), "--format", "jsonl", *texts]
    )
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout.splitlines()[0])
    assert [x["label"] for x in first["labels"]] == [n for n, _ in numpy_engine.classify(texts)[0]]


def test_evaluate_cli_reports_micro_macro_f1_and_subset_accuracy(multi_run, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(
        main, ["evaluate", "--checkpoint", str(multi_run.run_dir), "--report-dir", str(out)]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "report.json").read_text())
    assert saved["task"] == "multi_label"
    assert {"micro_f1", "macro_f1", "subset_accuracy"} <= set(saved)
    assert "micro-F1" in result.stdout and "threshold" in result.stdout
    assert (out / "report.html").is_file()


def test_evaluate_reads_a_preprocessed_multi_label_folder(multi_run, multi_sms, tmp_path):
    pre = tmp_path / "pre"
    runner = CliRunner()
    done = runner.invoke(main, ["preprocess", "--data", str(multi_sms), "--out", str(pre)])
    assert done.exit_code == 0, done.output
    reports = []
    for source in (multi_sms, pre):  # same texts and label sets, so the same metrics
        out = tmp_path / f"report-{source.name}"
        args = [
            "evaluate",
            "--checkpoint",
            str(multi_run.run_dir),
            "--data",
            str(source),
            "--report-dir",
            str(out),
        ]
        assert runner.invoke(main, args).exit_code == 0
        reports.append(json.loads((out / "report.json").read_text()))
    assert reports[0]["micro_f1"] == reports[1]["micro_f1"] and reports[0]["n"] == 400


def test_every_output_path_picks_by_the_tuned_thresholds(multi_run, tmp_path):
    """classify (text, jsonl, parquet), serve and export all use the per-label cuts."""
    pytest.importorskip("uvicorn", reason="needs the serve extra")
    import pyarrow.parquet as pq
    from test_serve import call, running

    texts = [
        "WINNER!! call 09061701461 now to claim your prize of 900 pounds cash",
        "ok",
        "see you at 5 then, it was a long day at work and I am tired of it all",
    ]
    predictor = Predictor(multi_run.run_dir, engine="numpy")
    expected = [[label for label, _ in picks] for picks in predictor.classify(texts)]
    assert any(len(e) > 1 for e in expected)  # several labels for one text: not an argmax

    args = ["classify", "--checkpoint", str(multi_run.run_dir), *texts]
    text = CliRunner().invoke(main, args)
    assert [line.split("\t")[::2] for line in text.stdout.splitlines()] == expected
    out = tmp_path / "preds.parquet"
    assert CliRunner().invoke(main, [*args, "--output", str(out)]).exit_code == 0
    assert pq.read_table(out)["labels"].to_pylist() == expected

    with running(predictor) as url:
        status, answer = call(url, "/classify", {"texts": texts})
    assert status == 200
    assert [[x["label"] for x in r["labels"]] for r in answer["results"]] == expected


def test_export_carries_the_thresholds(multi_run, tmp_path):
    pytest.importorskip("onnxruntime", reason="needs the onnx extra")
    result = CliRunner().invoke(
        main,
        [
            "export",
            "--checkpoint",
            str(multi_run.run_dir),
            "--format",
            "onnx",
            "--out",
            str(tmp_path / "onnx"),
        ],
    )
    assert result.exit_code == 0, result.output
    copied = json.loads((tmp_path / "onnx" / "thresholds.json").read_text())
    assert copied == json.loads((multi_run.run_dir / "thresholds.json").read_text())
    assert json.loads((tmp_path / "onnx" / "config.json").read_text())["task"] == "multi_label"


def test_multi_label_runs_turn_the_refit_off_and_say_so(multi_sms, tmp_path, capsys):
    """Its thresholds are tuned on validation: a refit would train on those texts."""
    run = fit(tiny_config("train.refit=true", "train.epochs=1", source=multi_sms), tmp_path / "r")
    assert "note: train.refit is off: multi-label thresholds" in capsys.readouterr().err
    assert json.loads((run.run_dir / "config.json").read_text())["train"]["refit"] is False
    assert "refit_epochs" not in run.best
