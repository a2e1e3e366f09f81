"""`textlstm quantize`: an int8 bundle that every verb loads, that answers like its fp32
source, and that is refused with one line when its files are corrupt or do not fit."""

import json
import shutil
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import SMS, tiny_config

import textlstm
from textlstm import TextlstmError
from textlstm.cli import main
from textlstm.onnx_engine import INT8_GRAPH
from textlstm.predict import Predictor

pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install '.[onnx]'")


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result, *words):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def texts():
    return pq.read_table(SMS / "test.parquet").column("text").to_pylist()[:300]


@pytest.fixture(scope="module")
def int8_run(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "tiny-int8"
    result = cli("quantize", "--checkpoint", tiny_run.run_dir, "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "smaller" in result.output
    return out


def test_the_bundle_is_smaller_and_complete(int8_run, tiny_run):
    for name in (INT8_GRAPH, "config.json", "tokenizer.json", "labels.json"):
        assert (int8_run / name).is_file(), name
    assert not (int8_run / "model.safetensors").exists()
    fp32 = (tiny_run.run_dir / "model.safetensors").stat().st_size
    # a tiny model's graph structure weighs; real ones are 3.7x smaller (docs/BENCHMARKS.md)
    assert (int8_run / INT8_GRAPH).stat().st_size < fp32 / 2.5
    record = json.loads((int8_run / "config.json").read_text())["quantized"]
    assert record["source"] == str(tiny_run.run_dir.resolve())


def test_int8_answers_like_fp32(int8_run, tiny_run, texts):
    fp32 = Predictor(tiny_run.run_dir, "torch").probabilities(texts)
    int8 = Predictor(int8_run)
    assert int8.engine == "onnx"
    probs = int8.probabilities(texts)
    assert probs.shape == fp32.shape and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == fp32.argmax(1)).mean() >= 0.98
    assert np.abs(probs - fp32).max() < 0.1


def test_batch_mates_move_an_int8_answer_only_slightly(int8_run, texts):
    # int8 activations get one scale per tensor, from the whole batch: unlike fp32 (exact,
    # tests/test_properties.py), a text's probabilities move a little with its batch mates
    predictor = Predictor(int8_run)
    alone = np.stack([predictor.probabilities([t])[0] for t in texts[:40]])
    together = predictor.probabilities(texts[:40])
    assert np.abs(alone - together).max() < 0.02
    assert (alone.argmax(1) == together.argmax(1)).all()


def test_every_verb_loads_it(int8_run, tiny_run, texts, tmp_path):
    (tmp_path / "in.txt").write_text("\n".join(texts[:50]) + "\n")
    # classify (CLI) == the Python API
    result = cli(
        "classify",
        "--checkpoint",
        int8_run,
        "--file",
        tmp_path / "in.txt",
        "--output",
        tmp_path / "p.jsonl",
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    clf = textlstm.load(int8_run)
    picks = clf.predict(texts[:50])
    assert [r["labels"][0]["label"] for r in rows] == [p[0][0] for p in picks]
    # embed: the fp32 features' width, close to them
    vectors = clf.embed(texts[:50])
    fp32_vectors = textlstm.load(tiny_run.run_dir).embed(texts[:50])
    assert vectors.shape == fp32_vectors.shape
    assert np.abs(vectors - fp32_vectors).max() < 0.2
    result = cli(
        "embed",
        "--checkpoint",
        int8_run,
        "--file",
        tmp_path / "in.txt",
        "--output",
        tmp_path / "v.npy",
    )
    assert result.exit_code == 0, result.output
    assert np.allclose(np.load(tmp_path / "v.npy"), vectors, atol=1e-6)
    # evaluate
    result = cli(
        "evaluate",
        "--checkpoint",
        int8_run,
        "--data",
        SMS,
        "--split",
        "test",
        "--report-dir",
        tmp_path / "report",
    )
    assert result.exit_code == 0, result.output
    result = cli(
        "evaluate",
        "--checkpoint",
        tiny_run.run_dir,
        "--data",
        SMS,
        "--split",
        "test",
        "--report-dir",
        tmp_path / "fp32",
    )
    int8, fp32 = (
        json.loads((tmp_path / d / "report.json").read_text()) for d in ("report", "fp32")
    )
    assert int8["n"] == fp32["n"] and abs(int8["accuracy"] - fp32["accuracy"]) < 0.02
    # export: the int8 graph as model.onnx, runnable by onnxruntime alone
    result = cli("export", "--checkpoint", int8_run, "--format", "onnx", "--out", tmp_path / "x")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x" / "model.onnx").read_bytes() == (int8_run / INT8_GRAPH).read_bytes()


def test_serve_answers_from_an_int8_bundle(int8_run, texts):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from textlstm.serve import create_app

    predictor = Predictor(int8_run)
    with TestClient(create_app(predictor)) as client:
        answer = client.post("/classify", json={"texts": texts[:3]}).json()
        assert client.get("/health").json()["engine"] == "onnx"
    want = predictor.classify(texts[:3])
    assert [r["labels"][0]["label"] for r in answer["results"]] == [w[0][0] for w in want]


def test_the_ngram_branch_quantizes(tmp_path, texts):
    from textlstm.training import fit

    cfg = tiny_config(
        "model.ngrams=2", "model.ngram_buckets=3000", "model.ngram_dim=8", "train.epochs=1"
    )
    run = fit(cfg, tmp_path / "ng").run_dir
    assert cli("quantize", "--checkpoint", run).exit_code == 0
    int8 = Predictor(tmp_path / "ng-int8").probabilities(texts)
    fp32 = Predictor(run, "numpy").probabilities(texts)
    assert (int8.argmax(1) == fp32.argmax(1)).mean() >= 0.97


def test_engines_without_the_graph_refuse_it(int8_run):
    for engine in ("numpy", "torch"):
        with pytest.raises(TextlstmError, match="int8 bundle.*fp32 bundle it came from"):
            Predictor(int8_run, engine)
    one_error_line(cli("classify", "--checkpoint", int8_run, "--device", "cuda", "hi"), "int8")
    one_error_line(cli("evaluate", "--checkpoint", int8_run, "--rnn", "cell"), "--rnn cell")


def test_a_corrupt_or_mismatched_bundle_is_one_line(int8_run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(int8_run, broken)
    graph = broken / INT8_GRAPH
    graph.write_bytes(graph.read_bytes()[:-100])
    one_error_line(cli("classify", "--checkpoint", broken, "hi"), "sha256")

    other = tmp_path / "other"  # config.json of a wider model: the probe run catches it
    shutil.copytree(int8_run, other)
    config = json.loads((other / "config.json").read_text())
    config["model"]["hidden_dim"] = 32
    (other / "config.json").write_text(json.dumps(config))
    one_error_line(cli("classify", "--checkpoint", other, "hi"), "different runs")

    config["model"].update(hidden_dim=16, ngrams=0)  # inputs that do not fit (no bag)
    (other / "config.json").write_text(json.dumps(config))
    one_error_line(cli("classify", "--checkpoint", other, "hi"), "inputs")

    missing = tmp_path / "missing"
    shutil.copytree(int8_run, missing)
    (missing / INT8_GRAPH).unlink()
    one_error_line(cli("classify", "--checkpoint", missing, "hi"), "missing", INT8_GRAPH)


def test_quantize_never_overwrites_what_is_there(int8_run, tiny_run, tmp_path):
    one_error_line(cli("quantize", "--checkpoint", int8_run, "--out", tmp_path / "a"), "already")
    one_error_line(
        cli("quantize", "--checkpoint", tiny_run.run_dir, "--out", tiny_run.run_dir), "itself"
    )
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    one_error_line(
        cli(
            "quantize", "--checkpoint", tiny_run.run_dir, "--out", tmp_path / "mine", "--overwrite"
        ),
        "not an int8 bundle",
    )
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    one_error_line(
        cli("quantize", "--checkpoint", tiny_run.run_dir, "--out", int8_run), "--overwrite"
    )
    before = (int8_run / INT8_GRAPH).read_bytes()
    again = cli("quantize", "--checkpoint", tiny_run.run_dir, "--out", int8_run, "--overwrite")
    assert again.exit_code == 0, again.output
    assert (int8_run / INT8_GRAPH).read_bytes() == before  # same model, same graph
    assert not [p for p in int8_run.iterdir() if p.name.startswith(".quantize-")]


def test_missing_onnxruntime_is_one_line(int8_run, tiny_run, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    one_error_line(cli("classify", "--checkpoint", int8_run, "hi"), "pip install")
    one_error_line(
        cli("quantize", "--checkpoint", tiny_run.run_dir, "--out", tmp_path / "q"), "pip install"
    )


def test_evaluate_takes_an_int8_bundle_on_a_gpu_machine(int8_run, monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # --device auto -> cuda
    result = cli("evaluate", "--checkpoint", int8_run, "--data", SMS, "--report-dir", tmp_path)
    assert result.exit_code == 0, result.output


def test_training_into_an_int8_bundle_needs_overwrite(int8_run, tmp_path):
    copy = tmp_path / "int8"
    shutil.copytree(int8_run, copy)
    result = cli("train", "--data", SMS, "--out", copy, "--set", "train.epochs=1")
    assert result.exit_code == 1  # after the config it prints: one error line, last
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: ") and "--overwrite" in last, last
    assert (copy / INT8_GRAPH).read_bytes() == (int8_run / INT8_GRAPH).read_bytes()


def test_overwrite_leaves_nothing_stale(int8_run, tiny_run, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(int8_run, out)
    (out / "thresholds.json").write_text("{}")  # as if an earlier multi-label source
    (out / ".quantize-x1").mkdir()  # left by a killed quantize
    result = cli("quantize", "--checkpoint", tiny_run.run_dir, "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [INT8_GRAPH, "config.json", "tokenizer.json", "labels.json"]
    )
    half = tmp_path / "half"  # a killed quantize's graph without its config.json
    half.mkdir()
    (half / INT8_GRAPH).write_bytes(b"partial")
    one_error_line(cli("quantize", "--checkpoint", tiny_run.run_dir, "--out", half), "--overwrite")
    result = cli("quantize", "--checkpoint", tiny_run.run_dir, "--out", half, "--overwrite")
    assert result.exit_code == 0, result.output
