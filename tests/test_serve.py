"""`textlstm serve`: a real uvicorn server on 127.0.0.1, hit by concurrent clients."""

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import SMS

pytest.importorskip("starlette", reason="needs the serve extra: pip install '.[serve]'")
uvicorn = pytest.importorskip("uvicorn", reason="needs the serve extra: pip install '.[serve]'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(predictor, **limits):
    """A real uvicorn server for `predictor` on a free local port; yields its URL."""
    from textlstm.serve import create_app

    app = create_app(predictor, **limits)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server(tiny_run):
    from textlstm.predict import Predictor

    predictor = Predictor(tiny_run.run_dir, engine="numpy")
    # A long gathering window makes merging of concurrent requests certain on a slow CI box.
    limits = dict(max_texts=8, max_chars=500, max_body=20_000, batch_wait_ms=50)
    with running(predictor, **limits) as url:
        yield url, predictor


def call(url, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url + path, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_health_and_labels(server):
    url, predictor = server
    status, health = call(url, "/health")
    assert status == 200 and health["status"] == "ok" and health["engine"] == "numpy"
    assert call(url, "/labels") == (200, {"labels": predictor.labels})


def test_concurrent_requests_are_batched_and_match_the_predictor(server):
    url, predictor = server
    texts = pq.read_table(SMS / "test.parquet", columns=["text"])["text"].to_pylist()[:64]
    texts = [t[:500] for t in texts]
    before = call(url, "/health")[1]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda t: call(url, "/classify", {"text": t, "top_k": 2}), texts))
    after = call(url, "/health")[1]
    want = predictor.probabilities(texts)
    for (status, answer), row in zip(answers, want, strict=True):
        assert status == 200
        got = {item["label"]: item["probability"] for item in answer["labels"]}
        assert len(got) == 2
        for label, p in got.items():
            assert p == pytest.approx(row[predictor.labels.index(label)], abs=2e-6)
    requests = after["requests"] - before["requests"]
    batches = after["batches"] - before["batches"]
    assert requests == 64 and after["texts"] - before["texts"] == 64
    assert batches < requests  # concurrent requests shared predictor calls


def test_texts_top_k_and_threshold(server):
    url, predictor = server
    texts = ["WINNER!! You have won a free prize, call now", "see you at lunch", ""]
    status, answer = call(url, "/classify", {"texts": texts, "top_k": 5, "threshold": 0.5})
    assert status == 200 and len(answer["results"]) == 3
    want = predictor.probabilities(texts)
    for result, row in zip(answer["results"], want, strict=True):
        assert len(result["labels"]) == 1  # two classes, so exactly one is >= 0.5
        assert result["labels"][0]["label"] == predictor.labels[int(np.argmax(row))]
    assert call(url, "/classify", {"texts": []}) == (200, {"results": []})


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"texts": ["a"] * 9}, 413, "limit is 8"),
        ({"text": "x" * 501}, 413, "limit is 500"),
        ({"txt": "hello"}, 422, '"text"'),
        ({"text": "a", "texts": ["b"]}, 422, '"text"'),
        ({"texts": "not a list"}, 422, "list of strings"),
        ({"text": "a", "top_k": 0}, 422, "top_k"),
        ({"text": "a", "threshold": 2}, 422, "threshold"),
    ],
)
def test_bad_requests_get_json_errors(server, body, status, words):
    code, answer = call(server[0], "/classify", body)
    assert code == status and words in answer["error"]


def test_oversized_and_malformed_bodies(server):
    url = server[0]
    code, answer = call(url, "/classify", raw=b'{"text": "' + b"a" * 30_000 + b'"}')
    assert code == 413 and "20000 bytes" in answer["error"]
    code, answer = call(url, "/classify", raw=b"{not json")
    assert code == 400 and "not valid JSON" in answer["error"]


def test_missing_serve_extra_is_one_line(tiny_run, monkeypatch):
    import sys

    from click.testing import CliRunner

    from textlstm.cli import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    result = CliRunner().invoke(main, ["serve", "--checkpoint", str(tiny_run.run_dir)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: serving needs starlette and uvicorn (uvicorn is missing): "
        "pip install 'textlstm[serve]'"
    )


def test_serving_never_imports_torch(tiny_run):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from textlstm.predict import Predictor\n"
        "from textlstm.serve import create_app\n"
        f"create_app(Predictor({str(tiny_run.run_dir)!r}, engine='numpy'))\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
