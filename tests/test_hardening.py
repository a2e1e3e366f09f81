"""Hardening: nothing a user writes is destroyed, no request breaks another, no bundle
answers wrongly. One test (or parametrised case) per probe case of docs/RELIABILITY.md,
section "Outputs, run folders, bundles, serving"; each failed before its fix.
"""

import json
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import SMS
from test_reliability import SMALL, error_line, run, small_config, small_data  # noqa: F401

from textlstm import TextlstmError, checkpoint, files, runs
from textlstm import training as train_module
from textlstm.predict import Predictor


@pytest.fixture(scope="module")
def bundle(small_data, tmp_path_factory):  # noqa: F811
    """A finished small run (train.epochs=2) to copy and damage."""
    run_dir = tmp_path_factory.mktemp("checkpoints") / "small"
    train_module.fit(small_config(small_data, "train.epochs=2"), run_dir)
    return run_dir


@pytest.fixture
def copy(bundle, tmp_path):
    """A private copy of `bundle` (its lock file left behind)."""
    target = tmp_path / "copy"
    target.mkdir()
    for path in bundle.iterdir():
        if path.is_file() and path.name != checkpoint.LOCK_FILE:
            (target / path.name).write_bytes(path.read_bytes())
    return target


def jsonl_input(path, good: int, bad_at: int | None = None):
    lines = [json.dumps({"text": f"the film was great {i}"}) for i in range(good)]
    if bad_at is not None:
        lines.insert(bad_at, "{not json")
    path.write_text("\n".join(lines) + "\n")
    return path


# -- 1. classify --output ----------------------------------------------------------------


def test_output_to_a_fifo_is_written_in_place(copy, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    result = run("classify", "--checkpoint", copy, "-o", fifo, "great film", "awful film")
    reader.join(30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still a FIFO, not a regular file
    assert len(received[0].splitlines()) == 2


def test_bad_input_line_halfway_keeps_the_previous_output(copy, tmp_path):
    out = tmp_path / "preds.jsonl"
    out.write_text("previous results\n")
    source = jsonl_input(tmp_path / "in.jsonl", 5000, bad_at=4500)  # after the first chunk
    assert "line 4501" in error_line(
        run("classify", "--checkpoint", copy, "--file", source, "-o", out)
    )
    assert out.read_text() == "previous results\n"
    assert not list(tmp_path.glob(".preds.jsonl.*"))  # the temp file is gone too


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_ctrl_c_keeps_the_previous_output(copy, tmp_path, monkeypatch, suffix):
    out = tmp_path / f"preds.{suffix}"
    out.write_bytes(b"previous")
    calls = {"n": 0}
    real = Predictor.probabilities

    def interrupted(self, texts, batch_size=128):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, texts, batch_size)

    monkeypatch.setattr(Predictor, "probabilities", interrupted)
    source = jsonl_input(tmp_path / "in.jsonl", 5000)
    result = run("classify", "--checkpoint", copy, "--file", source, "-o", out)
    assert result.exit_code == 130
    assert out.read_bytes() == b"previous" and not list(tmp_path.glob(f".preds.{suffix}.*"))


def test_disk_full_is_one_line_and_keeps_the_previous_output(copy, tmp_path, monkeypatch):
    out = tmp_path / "preds.txt"
    out.write_text("previous\n")

    def full(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    line = error_line(run("classify", "--checkpoint", copy, "-o", out, "great film"))
    assert "No space left" in line and "unchanged" in line
    assert out.read_text() == "previous\n"


def test_disk_full_on_a_device_is_one_line(copy, tmp_path):
    full = tmp_path / "full"  # a private twin of /dev/full: a regression cannot harm the real one
    try:
        os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except OSError:
        pytest.skip("cannot create a device node here (needs root)")
    assert "No space left" in error_line(run("classify", "--checkpoint", copy, "-o", full, "great"))
    assert stat.S_ISCHR(full.stat().st_mode)


def test_output_that_is_the_input_is_refused(copy, tmp_path):
    source = jsonl_input(tmp_path / "texts.jsonl", 3)
    before = source.read_bytes()
    line = error_line(run("classify", "--checkpoint", copy, "--file", source, "-o", source))
    assert "is the input file" in line and source.read_bytes() == before


# -- 2, 3, 5. run folders ----------------------------------------------------------------


def small_args(data, *extra):
    args = ["train", "--data", data]
    for item in (*SMALL, "train.epochs=1", "train.test=false", *extra):
        args += ["--set", item]
    return args


def test_a_folder_that_holds_no_run_is_never_cleared(small_data, tmp_path):  # noqa: F811
    out = tmp_path / "mine"
    out.mkdir()
    for name in ("report.md", "report.html", "metrics.json", ".draft.tmp"):
        (out / name).write_text("the user's own")
    line = error_line(run(*small_args(small_data), "--out", out))
    assert "not a textlstm run" in line
    assert all((out / n).read_text() == "the user's own" for n in ("report.md", ".draft.tmp"))


def test_a_second_writer_is_refused_while_a_run_holds_the_folder(copy, small_data):  # noqa: F811
    lock = runs.lock_run(copy)  # as a running `train --resume` would hold it
    before = (copy / "config.json").read_bytes()
    try:
        line = error_line(run("train", "--resume", copy, "--set", "train.epochs=3"))
        assert f"pid {os.getpid()}" in line
        line = error_line(run(*small_args(small_data), "--out", copy, "--overwrite"))
        assert "in use" in line
    finally:
        runs.unlock(lock)
    assert (copy / "config.json").read_bytes() == before


def test_failed_train_leaves_no_folder_and_says_one_line(in_tmp):
    result = run("train", "--data", in_tmp / "no-such-data")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {in_tmp / 'no-such-data'} does not exist"
    ]
    assert not (in_tmp / "checkpoints").exists()


# -- 4. --resume overrides -----------------------------------------------------------------


def test_resume_refuses_shape_changes_before_writing_anything(copy):
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    assert "model settings" in error_line(
        run("train", "--resume", copy, "--set", "model.hidden_dim=64")
    )
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before
    extended = run("train", "--resume", copy, "--set", "train.epochs=3")
    assert extended.exit_code == 0, extended.output


def test_train_state_of_another_shape_is_one_line(copy, tmp_path, small_data):  # noqa: F811
    other = tmp_path / "other"
    train_module.fit(small_config(small_data, "train.epochs=1", "model.hidden_dim=4"), other)
    (copy / "train_state.pt").write_bytes((other / "train_state.pt").read_bytes())
    config = (copy / "config.json").read_bytes()
    line = error_line(run("train", "--resume", copy, "--set", "train.epochs=3"))
    assert "train_state.pt does not fit" in line
    assert (copy / "config.json").read_bytes() == config
    runs.unlock(runs.lock_run(copy))  # the failed run let go of the folder's lock


def test_a_run_whose_every_validation_is_nan_says_so(small_data, tmp_path, monkeypatch):  # noqa: F811
    from textlstm.task import SingleLabel

    real = SingleLabel.report

    def nan_report(self, *args, **kwargs):
        return {**real(self, *args, **kwargs), "loss": float("nan"), "macro_f1": float("nan")}

    monkeypatch.setattr(SingleLabel, "report", nan_report)
    with pytest.raises(TextlstmError, match="no epoch reached a finite validation macro_f1"):
        train_module.fit(small_config(small_data, "train.epochs=2"), tmp_path / "run")


def test_a_metrics_line_cut_by_a_crash_does_not_stop_resume(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    runs.keep_metrics_rows(tmp_path, 1)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"epoch": 1}\n'


# -- 6. a bundle whose files disagree ------------------------------------------------------


def edit_config(run_dir, section, key, value):
    config = json.loads((run_dir / "config.json").read_text())
    config[section][key] = value
    (run_dir / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "key, value",
    [
        ("num_layers", 2),
        ("num_layers", 3),
        ("hidden_dim", 12),
        ("bidirectional", False),
        ("pooling", "mean"),
    ],
)
@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_config_edited_against_the_weights_is_refused(copy, key, value, engine):
    edit_config(copy, "model", key, value)
    line = error_line(run("classify", "--checkpoint", copy, "--engine", engine, "great"))
    assert "does not fit config.json" in line


def test_weights_of_another_vocabulary_are_refused(copy):
    from safetensors.numpy import load_file, save_file

    weights = load_file(copy / "model.safetensors")
    weights["embedding.weight"] = weights["embedding.weight"][:5]
    save_file(weights, copy / "model.safetensors")
    assert "embedding.weight" in error_line(run("classify", "--checkpoint", copy, "great"))


def test_nonfinite_weights_are_refused(copy):
    from safetensors.numpy import load_file, save_file

    weights = load_file(copy / "model.safetensors")
    weights["classifier.bias"][0] = np.nan
    save_file(weights, copy / "model.safetensors")
    assert "NaN" in error_line(run("classify", "--checkpoint", copy, "great"))


def test_tokenizer_without_unk_is_refused(copy):
    text = (copy / "tokenizer.json").read_text().replace("[UNK]", "[XYZ]")
    (copy / "tokenizer.json").write_text(text)
    assert "[UNK]" in error_line(run("classify", "--checkpoint", copy, "great"))


def test_latest_in_a_loop_is_one_line(in_tmp):
    (in_tmp / "checkpoints").mkdir()
    (in_tmp / "checkpoints" / "latest").symlink_to("latest")
    assert "does not lead to a run" in error_line(run("classify", "great"))


# -- 7, 11. values that would train a broken model or crash later ----------------------


@pytest.mark.parametrize(
    "item",
    [
        "train.lr=inf",
        "train.lr=nan",
        "data.max_len=0",
        "train.pad_multiple=0",
        "train.eval_batch_size=0",
        "data.vocab_size=0",
        "data.validation_fraction=1.5",
        "train.label_smoothing=5",
        "train.workers=-1",
        "train.clip_norm=-1",
        "model.dropout=1",
    ],
)
def test_bad_values_are_one_line_before_any_work(in_tmp, item):
    line = error_line(run("train", "--data", SMS, "--set", item))
    assert line.startswith(f"error: {item.split('=')[0]}=")
    assert not (in_tmp / "checkpoints").exists()


def test_nan_threshold_is_refused(copy):
    result = run("classify", "--checkpoint", copy, "--threshold", "nan", "great")
    assert result.exit_code == 2 and "nan is not a probability" in result.output


def test_nan_metric_is_never_the_best_epoch():
    assert not train_module.better(float("nan"), None, "loss")
    assert not train_module.better(float("nan"), 0.5, "macro_f1")


def test_non_utf8_bytes_on_stdin_and_in_arguments(copy):
    piped = run("classify", "--checkpoint", copy, "-", input=b"caf\xe9 great\n\xff\xfe\n")
    assert piped.exit_code == 0 and len(piped.stdout.splitlines()) == 2
    argument = run("classify", "--checkpoint", copy, "caf\udce9 great", "x\ud800")
    assert argument.exit_code == 0 and len(argument.stdout.splitlines()) == 2


# -- 12. permissions -------------------------------------------------------------------


def test_bundle_files_follow_the_umask(bundle):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("model.safetensors", "config.json", "metrics.json", "train_state.pt"):
        assert stat.S_IMODE((bundle / name).stat().st_mode) == 0o666 & ~mask, name


# -- 9, 10. serve: one request cannot hurt the others --------------------------------------


def test_poison_request_fails_alone_and_errors_are_json(copy):
    pytest.importorskip("uvicorn", reason="needs the serve extra")
    from test_serve import call, running

    predictor = Predictor(copy, engine="numpy")
    real = predictor.probabilities

    def fragile(texts, batch_size=128):  # a text no validation caught fails its batch
        if any("poison" in t for t in texts):
            raise RuntimeError("poisoned batch")
        return real(texts, batch_size)

    predictor.probabilities = fragile
    with running(predictor, batch_wait_ms=100, max_request_chars=1000) as url:
        bodies = [{"text": "great film"}] * 12 + [{"text": "poison"}, {"text": "x\ud800"}]
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(lambda b: call(url, "/classify", b), bodies))
        too_big = call(url, "/classify", {"texts": ["word " * 150] * 2})
        unknown = call(url, "/nowhere")
    assert [status for status, _ in answers[:12]] == [200] * 12
    assert answers[12][0] == 500 and "poisoned batch" in answers[12][1]["error"]
    assert answers[13][0] == 422 and "not valid Unicode" in answers[13][1]["error"]
    assert too_big[0] == 413 and "1500 characters" in too_big[1]["error"]
    assert unknown == (404, {"error": "Not Found"})


def test_classify_into_a_closed_pipe_ends_quietly(copy, tmp_path):
    import shutil
    import subprocess
    import sys

    script = shutil.which("textlstm", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the textlstm script is not installed next to this Python")
    source = tmp_path / "many.txt"
    source.write_text("great film\n" * 20000)
    done = subprocess.run(
        f"'{script}' classify --checkpoint '{copy}' --file '{source}' | head -1",
        shell=True,
        capture_output=True,
        text=True,
        executable="/bin/bash",
    )
    assert done.stdout.count("\n") == 1 and "error" not in done.stderr, done.stderr


def test_serve_runs_blas_on_one_thread(copy, monkeypatch):
    from textlstm import serve

    seen = {}
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setattr(serve, "serve", lambda *a, **k: seen.update(os.environ))
    assert run("serve", "--checkpoint", copy).exit_code == 0
    assert seen["OPENBLAS_NUM_THREADS"] == "1"


# -- every error path: one line, never a traceback ------------------------------------------


def bad_invocations(copy, tmp):
    broken = tmp / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{")
    toml = tmp / "bad.toml"
    toml.write_text("[train\nepochs = ")
    null_section = tmp / "null-section"
    null_section.mkdir()
    for name in ("model.safetensors", "tokenizer.json", "labels.json"):
        (null_section / name).write_bytes((copy / name).read_bytes())
    config = json.loads((copy / "config.json").read_text())
    (null_section / "config.json").write_text(json.dumps({**config, "data": None}))
    fake_parquet = tmp / "texts.parquet"
    fake_parquet.write_text("not parquet at all")
    a_file = tmp / "a-file"
    a_file.write_text("the user's")
    return [
        ["evaluate", "--checkpoint", copy, "--data", SMS, "--report-dir", a_file],
        ["preprocess", "--data", SMS, "--out", a_file],
        ["preprocess", "--data", SMS, "--out", copy],  # a folder with files in it
        ["classify", "--checkpoint", tmp / "nowhere", "x"],
        ["classify", "--checkpoint", broken, "x"],
        ["classify", "--checkpoint", copy, "--file", tmp / "missing.txt"],
        ["classify", "--checkpoint", copy, "--file", fake_parquet],
        ["classify", "--checkpoint", null_section, "x"],
        ["classify", "--checkpoint", copy, "--format", "parquet", "x"],
        ["classify", "--checkpoint", copy, "--engine", "numpy", "--device", "cuda", "x"],
        ["classify", "--checkpoint", copy, "-o", tmp / "no" / "dir" / "out.txt", "x"],
        ["evaluate", "--checkpoint", copy, "--split", "nosuch"],
        ["evaluate", "--checkpoint", copy, "--data", tmp / "nowhere"],
        ["export", "--checkpoint", tmp / "nowhere", "--format", "onnx"],
        ["serve", "--checkpoint", broken],
        ["preprocess", "--data", tmp / "nowhere", "--out", tmp / "prep"],
        ["train", "--config", toml],
        ["train", "--config", tmp / "missing.toml"],
        ["train", "--set", "train.nosuch=1"],
        ["train", "--set", "nonsense"],
        ["train", "--resume", tmp / "nowhere"],
        ["train", "--resume", broken],
        ["train", "--data", SMS, "--device", "cuda:99"],
    ]


def test_no_error_path_prints_a_traceback(copy, tmp_path, in_tmp):
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    for args in bad_invocations(copy, tmp_path):
        result = run(*args)
        unexpected = result.exception and not isinstance(result.exception, SystemExit)
        assert not unexpected, f"{args}: {result.exception!r}"
        assert result.exit_code in (1, 2), (args, result.output)
        assert "Traceback" not in result.output, args
        if result.exit_code == 1:
            assert result.stderr.strip().splitlines()[-1].startswith("error: "), args
    assert (tmp_path / "a-file").read_text() == "the user's"
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before
