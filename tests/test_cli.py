"""The CLI as a user drives it: Click's runner, the installed script, and wrong inputs."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SMS, TINY

from textlstm.cli import main

SPAM = "WINNER!! You have won a free prize, call now"


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def script():
    found = shutil.which("textlstm", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the textlstm script is not installed next to this Python")
    return found


def test_help_is_fast_and_lists_the_verbs():
    start = time.time()
    done = subprocess.run([script(), "--help"], capture_output=True, text=True, check=True)
    assert time.time() - start < 3  # measured ~0.15 s; generous for a loaded CI machine
    for verb in ("preprocess", "train", "evaluate", "classify"):
        assert verb in done.stdout


def test_classify_arguments_file_stdin_and_formats(tiny_run, tmp_path):
    ckpt = tiny_run.run_dir
    result = run("classify", "--checkpoint", ckpt, SPAM, "see you at lunch")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] in ("ham", "spam")

    texts = tmp_path / "texts.txt"
    texts.write_text(f"{SPAM}\nok see you\n")
    as_json = run("classify", "--checkpoint", ckpt, "--file", texts, "--format", "json", "-k", 5)
    records = json.loads(as_json.output)
    assert [r["text"] for r in records] == [SPAM, "ok see you"]
    assert len(records[0]["labels"]) == 2  # top-k capped at the number of classes
    assert abs(sum(x["probability"] for x in records[0]["labels"]) - 1) < 1e-4

    piped = run("classify", "--checkpoint", ckpt, "-", "--format", "jsonl", input="hi\nthere\n")
    assert [json.loads(line)["text"] for line in piped.output.splitlines()] == ["hi", "there"]

    out = tmp_path / "preds.jsonl"
    run("classify", "--checkpoint", ckpt, "--file", texts, "--format", "jsonl", "-o", out)
    assert len(out.read_text().splitlines()) == 2


def test_threshold_filters_labels(tiny_run):
    result = run(
        "classify",
        "--checkpoint",
        tiny_run.run_dir,
        "hello",
        "-k",
        2,
        "-t",
        1.0,
        "--format",
        "jsonl",
    )
    assert json.loads(result.output)["labels"] == []
    bad = run("classify", "--checkpoint", tiny_run.run_dir, "hello", "-t", 1.5)
    assert bad.exit_code == 2 and "1.5" in bad.output


def test_empty_text_is_classified_and_flagged(tiny_run):
    result = run("classify", "--checkpoint", tiny_run.run_dir, "   ", "--format", "jsonl")
    assert result.exit_code == 0
    record = json.loads(result.stdout)
    assert record["empty"] is True and len(record["labels"]) == 1
    assert "empty" in result.stderr


def test_installed_script_classifies_from_latest(tiny_run):
    cwd = tiny_run.run_dir.parent.parent  # holds checkpoints/latest
    (cwd / "checkpoints").mkdir(exist_ok=True)
    link = cwd / "checkpoints" / "latest"
    if not link.exists():
        link.symlink_to(tiny_run.run_dir)
    start = time.time()
    done = subprocess.run([script(), "classify", SPAM], cwd=cwd, capture_output=True, text=True)
    elapsed = time.time() - start
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\t")[0] in ("ham", "spam")
    assert elapsed < 10  # measured ~0.4 s; the README's figure comes from the benchmark


def test_evaluate_writes_reports(tiny_run, tmp_path):
    result = run(
        "evaluate", "--checkpoint", tiny_run.run_dir, "--data", SMS, "--report-dir", tmp_path
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["split"] == "test" and report["n"] == 553
    assert set(report["per_class"]) == {"ham", "spam"}
    assert "confusion matrix" in (tmp_path / "report.md").read_text()
    assert "macro-F1" in result.output


def test_preprocess_then_train_reuses_the_tokenized_data(tmp_path):
    out = tmp_path / "prep"
    result = run("preprocess", "--data", SMS, "--out", out, "--set", "data.vocab_size=2000")
    assert result.exit_code == 0, result.output
    assert (out / "tokenizer.json").is_file() and (out / "splits").is_dir()
    args = ["train", "--data", out, "--out", tmp_path / "run"]
    for item in TINY + ["train.epochs=1"]:
        args += ["--set", item]
    trained = run(*args)
    assert trained.exit_code == 0, trained.output
    assert "preprocessed" in trained.stderr
    assert json.loads((tmp_path / "run" / "report.json").read_text())["split"] == "test"
    from tokenizers import Tokenizer

    reused = Tokenizer.from_file(str(tmp_path / "run" / "tokenizer.json"))
    assert reused.get_vocab() == Tokenizer.from_file(str(out / "tokenizer.json")).get_vocab()


# -- wrong inputs: one clear line, non-zero exit, nothing lost ---------------------------


def error_line(result):
    assert result.exit_code == 1, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "Traceback" not in result.output
    return line


def test_latest_is_kept_only_in_the_default_run_root(in_tmp):
    small = ["--data", SMS, *(x for item in TINY for x in ("--set", item))]
    small += ["--set", "train.epochs=1", "--set", "train.test=false"]
    default = run("train", *small)
    assert default.exit_code == 0, default.output
    latest = in_tmp / "checkpoints" / "latest"
    assert latest.is_symlink() and "checkpoints/latest points here" in default.stdout
    named = run("train", *small, "--out", in_tmp / "mine" / "run")
    assert named.exit_code == 0, named.output
    assert sorted(p.name for p in (in_tmp / "mine").iterdir()) == ["run"]
    assert f"--checkpoint {in_tmp / 'mine' / 'run'}" in named.stdout
    assert latest.resolve().parent == (in_tmp / "checkpoints").resolve()  # unchanged


def test_classify_without_a_checkpoint_says_how_to_train(in_tmp):
    assert "textlstm train" in error_line(run("classify", "hello"))


def test_classify_with_nothing_to_classify(tiny_run):
    assert "nothing to classify" in error_line(run("classify", "--checkpoint", tiny_run.run_dir))


def test_incomplete_checkpoint(tiny_run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run.run_dir, broken)
    (broken / "model.safetensors").unlink()
    assert "missing model.safetensors" in error_line(run("classify", "--checkpoint", broken, "x"))


def test_truncated_weights(tiny_run, tmp_path):
    broken = tmp_path / "truncated"
    shutil.copytree(tiny_run.run_dir, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert "truncated" in error_line(run("classify", "--checkpoint", broken, "x"))


def test_checkpoint_from_another_version(tiny_run, tmp_path):
    other = tmp_path / "future"
    shutil.copytree(tiny_run.run_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["format_version"] = 99
    (other / "config.json").write_text(json.dumps(config))
    assert "format 99" in error_line(run("classify", "--checkpoint", other, "x"))


def test_cuda_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    line = error_line(run("train", "--data", SMS, "--device", "cuda", "--out", tmp_path / "r"))
    assert "no CUDA GPU" in line


def test_unknown_config_key_lists_valid_ones(tmp_path):
    line = error_line(run("train", "--set", "train.epoch=3", "--out", tmp_path / "r"))
    assert "train.epochs" in line


def test_training_on_a_missing_path(tmp_path):
    line = error_line(run("train", "--data", tmp_path / "nope", "--out", tmp_path / "r"))
    assert "does not exist" in line


def test_hub_name_offline(tmp_path):
    assert "offline" in error_line(run("train", "--data", "imdb", "--out", tmp_path / "r"))


def test_script_exit_code_and_single_line(tmp_path):
    env = dict(os.environ)
    done = subprocess.run(
        [script(), "classify", "--checkpoint", tmp_path / "none", "x"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error:")
