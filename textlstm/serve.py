"""`textlstm serve`: an HTTP JSON API over a `Predictor` (onnx engine; numpy without it).

Endpoints:
- `POST /classify` with `{"text": "..."}` -> `{"labels": [{"label", "probability"}, ...]}`
  or `{"texts": [...]}` -> `{"results": [{"labels": [...]}, ...]}`; optional `top_k`
  (default 1) and `threshold` (default 0), as in `textlstm classify`.
- `GET /health` -> status, checkpoint, counters; `GET /labels` -> the label names.

Limits (413 with a JSON error): at most `max_texts` texts per request, `max_request_chars`
characters in all (so no request holds the server for long: MAX_REQUEST_CHARS), `max_chars`
characters per text, `max_body` bytes per request body. Malformed JSON is a 400, a
well-formed request with wrong fields a 422.

Micro-batching: each request's texts go into one asyncio queue; a single worker takes
what is waiting, keeps collecting for up to `batch_wait_ms` (or until `max_batch`
texts), runs one `Predictor.probabilities` call for all of them in a worker thread, and
answers each request with its rows. The time loop of the numpy LSTM costs about the
same for 1 text as for 64, so under concurrent load batching multiplies throughput; a
lone request pays `batch_wait_ms` extra. One batch runs at a time, so the
event loop stays free to accept requests while the CPU works. Padding never changes a
text's result, so a text gets the same probabilities whatever it is batched with.
Every request is validated on its own before it joins a batch, and a batch that fails
anyway is answered request by request, so a failure stays with the request that caused it
(a JSON 500); the others get their answers. `textlstm serve` runs BLAS on one thread, as
`classify` does: the numpy LSTM's small products only lose time to a thread pool.
"""

import asyncio
import contextlib
import json
import sys
import time

from textlstm import TextlstmError

# Characters of all texts in one request. The numpy LSTM works through about a million
# characters in ~1.6 s on one core of a 2-core machine, so this bounds any request (and
# so every other request's wait behind it) to well under a second.
MAX_REQUEST_CHARS = 200_000


def require_serve():
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise TextlstmError(
            f"serving needs starlette and uvicorn ({exc.name} is missing): "
            "pip install 'textlstm[serve]'"
        ) from exc


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Batcher:
    """Collects texts from concurrent requests into shared `Predictor` calls."""

    def __init__(self, predictor, batch_wait_ms: float = 5.0, max_batch: int = 128):
        self.predictor = predictor
        self.wait = batch_wait_ms / 1000
        self.max_batch = max_batch
        self.queue: asyncio.Queue | None = None
        self.batches = 0  # predictor calls made
        self.texts = 0  # texts classified

    async def run(self) -> None:
        self.queue = asyncio.Queue()
        while True:
            jobs = [await self.queue.get()]
            # Sleep, then drain, rather than wait_for(queue.get()): on Python 3.11 a
            # timed-out get can swallow an item, and that request would never be answered.
            await asyncio.sleep(self.wait)
            size = len(jobs[0][0])
            while size < self.max_batch and not self.queue.empty():
                jobs.append(self.queue.get_nowait())
                size += len(jobs[-1][0])
            texts = [t for job_texts, _ in jobs for t in job_texts]
            try:
                probs = await asyncio.to_thread(self.predictor.probabilities, texts)
            except Exception:  # one request's texts must not fail the others: one by one
                await self.answer_alone(jobs)
                continue
            self.batches += 1
            self.texts += len(texts)
            start = 0
            for job_texts, future in jobs:
                if not future.done():  # a client that went away leaves a cancelled future
                    future.set_result(probs[start : start + len(job_texts)])
                start += len(job_texts)

    async def answer_alone(self, jobs) -> None:
        """Each request of a failed batch on its own: the failure stays with its request."""
        for job_texts, future in jobs:
            try:
                result = await asyncio.to_thread(self.predictor.probabilities, job_texts)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            self.batches += 1
            self.texts += len(job_texts)
            if not future.done():
                future.set_result(result)

    async def probabilities(self, texts: list[str]):
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future


def parse_request(body: bytes, max_texts: int, max_chars: int, max_request_chars: int):
    """(texts, single, top_k, threshold) from a /classify body, or a RequestError."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or ("text" in data) == ("texts" in data):
        raise RequestError(422, 'send a JSON object with "text": "..." or "texts": [...]')
    single = "text" in data
    texts = [data["text"]] if single else data["texts"]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise RequestError(422, '"text" must be a string and "texts" a list of strings')
    if len(texts) > max_texts:
        raise RequestError(413, f"{len(texts)} texts in one request; the limit is {max_texts}")
    longest = max((len(t) for t in texts), default=0)
    if longest > max_chars:
        raise RequestError(413, f"a text has {longest} characters; the limit is {max_chars}")
    total = sum(len(t) for t in texts)
    if total > max_request_chars:
        raise RequestError(
            413,
            f"{total} characters in one request; the limit is "
            f"{max_request_chars} (send several requests)",
        )
    for number, text in enumerate(texts, 1):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # e.g. a lone surrogate "\ud800"
            raise RequestError(422, f"text {number} is not valid Unicode ({exc.reason})") from exc
    top_k, threshold = data.get("top_k", 1), data.get("threshold", 0.0)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise RequestError(422, '"top_k" must be an integer of at least 1')
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise RequestError(422, '"threshold" must be a number in [0, 1]')
    if not 0 <= threshold <= 1:
        raise RequestError(422, '"threshold" must be a number in [0, 1]')
    return texts, single, top_k, float(threshold)


def create_app(
    predictor,
    max_texts=256,
    max_chars=20_000,
    max_body=1_000_000,
    batch_wait_ms=5.0,
    max_batch=128,
    max_request_chars=MAX_REQUEST_CHARS,
):
    """The Starlette app serving one loaded `Predictor`."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    batcher = Batcher(predictor, batch_wait_ms, max_batch)
    started = time.time()
    counts = {"requests": 0}

    def error(status: int, message: str):
        return JSONResponse({"error": message}, status_code=status)

    async def classify(request):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body:
            return error(413, f"request body over {max_body} bytes")
        body = b""
        async for chunk in request.stream():  # bounded even without a Content-Length
            body += chunk
            if len(body) > max_body:
                return error(413, f"request body over {max_body} bytes")
        try:
            texts, single, top_k, threshold = parse_request(
                body, max_texts, max_chars, max_request_chars
            )
        except RequestError as exc:
            return error(exc.status, exc.message)
        counts["requests"] += 1
        try:
            probs = await batcher.probabilities(texts) if texts else []
        except Exception as exc:  # confined to this request; the server keeps serving
            return error(500, f"classification failed: {type(exc).__name__}: {exc}")
        results = [
            {
                "labels": [
                    {"label": label, "probability": round(p, 6)}
                    for label, p in predictor.pick(row, top_k, threshold)
                ]
            }
            for row in probs
        ]
        return JSONResponse(results[0] if single else {"results": results})

    async def health(_request):
        return JSONResponse(
            {
                "status": "ok",
                "checkpoint": str(predictor.run_dir),
                "engine": predictor.engine,
                "int8": "quantized" in predictor.config,
                "uptime_s": round(time.time() - started, 1),
                "requests": counts["requests"],
                "batches": batcher.batches,
                "texts": batcher.texts,
            }
        )

    async def labels(_request):
        return JSONResponse({"labels": predictor.labels})

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        task = asyncio.create_task(batcher.run())
        while batcher.queue is None:  # the queue belongs to the server's event loop
            await asyncio.sleep(0)
        yield
        task.cancel()

    routes = [
        Route("/classify", classify, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/labels", labels, methods=["GET"]),
    ]

    async def http_error(_request, exc):  # 404, 405 ...: JSON like every other answer
        return error(exc.status_code, str(exc.detail))

    async def unexpected(_request, exc):  # anything else: still a JSON answer
        return error(500, f"internal error: {type(exc).__name__}")

    handlers = {HTTPException: http_error, Exception: unexpected}
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)


def serve(checkpoint=None, host="127.0.0.1", port=8000, **limits) -> None:
    require_serve()
    import uvicorn

    from textlstm.predict import Predictor

    predictor = Predictor(checkpoint)  # onnx (numpy without the extra); int8 bundles: onnx
    app = create_app(predictor, **limits)
    print(
        f"serving {predictor.run_dir} on http://{host}:{port} "
        "(POST /classify, GET /health, GET /labels)",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
