"""Streaming batch classification: big files in, predictions out, in bounded memory.

`textlstm classify --file big.parquet --output preds.parquet` reads `chunk` texts at a
time, classifies them and writes them out before reading more, so memory depends on
the chunk size, not on the file size:

- `.parquet` input is read one record batch at a time (`pyarrow.parquet.ParquetFile
  .iter_batches`, only the text column); `.jsonl` and plain text line by line.
- Output to a file goes into a temporary file beside it that is renamed into place only
  when every text was written (`files.Output`): a crash, a bad input line or Ctrl-C
  never leaves a half-written file under the final name, nor destroys the previous one.
  A FIFO or device (`/dev/stdout`) is written as it comes. `.parquet` output is one
  `ParquetWriter` with a row group per chunk.

Trade-off: texts inside a chunk are sorted by length for batching (little padding);
across chunks nothing is sorted, so a larger chunk means less padding and more memory.
No torch import here: the numpy engine keeps the start-up cost of a pipeline small.
"""

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from textlstm import TextlstmError, files

CHUNK = 4096  # texts per chunk: ~1 MB of short texts; big enough to batch by length


def input_kind(path: str | None) -> str:
    """`parquet`, `jsonl` or `lines`, from the file name."""
    suffix = Path(path).suffix.lower() if path and path != "-" else ""
    return {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "lines")


def output_format(output: str | None, fmt: str | None) -> str:
    """The explicit `--format`, else one implied by the `--output` name, else text."""
    if fmt:
        return fmt
    suffix = Path(output).suffix.lower() if output else ""
    return {".parquet": "parquet", ".jsonl": "jsonl", ".json": "json"}.get(suffix, "text")


def count_rows(path: str) -> int | None:
    """Number of texts when it is cheap to know (parquet metadata), else None."""
    if input_kind(path) != "parquet":
        return None
    return open_parquet(path).metadata.num_rows


def open_parquet(path: str):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not parquet
        raise TextlstmError(f"--file {path}: not a readable parquet file ({exc})") from exc


def open_text(path: str):
    """`path` for reading as UTF-8 (bad bytes replaced), or one line naming --file."""
    try:
        return open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError as exc:
        raise TextlstmError(f"--file {path}: {exc.strerror or exc}") from exc


def read_chunks(path: str, text_column: str = "text", size: int = CHUNK) -> Iterator[list[str]]:
    """Lists of at most `size` texts from a .parquet, .jsonl or text file (`-`: stdin).

    A missing file is reported at once (not at the first chunk); format errors surface
    when the chunk holding them is read.
    """
    if path != "-" and not Path(path).is_file():
        raise TextlstmError(f"--file {path}: no such file")
    kind = input_kind(path)
    if kind == "parquet":
        return parquet_chunks(path, text_column, size)
    if kind == "jsonl":
        return batched(jsonl_texts(path, text_column), size)
    return batched(line_texts(path), size)


def parquet_chunks(path: str, text_column: str, size: int) -> Iterator[list[str]]:
    source = open_parquet(path)
    names = source.schema_arrow.names
    if text_column not in names:
        raise TextlstmError(
            f"--file {path} has no column {text_column!r}; columns: {', '.join(names)} "
            "(choose one with --text-column)"
        )
    for batch in source.iter_batches(batch_size=size, columns=[text_column]):
        yield ["" if t is None else str(t) for t in batch.column(0).to_pylist()]


def jsonl_texts(path: str, text_column: str) -> Iterator[str]:
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue  # a trailing blank line is not a record
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TextlstmError(f"--file {path}, line {number}: not JSON ({exc.msg})") from exc
            if not isinstance(record, dict) or text_column not in record:
                raise TextlstmError(
                    f"--file {path}, line {number}: no {text_column!r} field "
                    "(choose one with --text-column)"
                )
            text = record[text_column]
            yield "" if text is None else str(text)


def line_texts(path: str) -> Iterator[str]:
    """Lines of a text file or stdin; bytes that are not UTF-8 become U+FFFD, as in files."""
    if path == "-":
        import io

        stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    else:
        stream = open_text(path)
    try:
        for line in stream:
            yield line.rstrip("\n").rstrip("\r")
    finally:
        if path != "-":
            stream.close()
        else:
            stream.detach()  # leave sys.stdin's buffer open


def batched(items, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class ParquetOutput:
    """Writes prediction rows to parquet, a row group per chunk, into an open binary file.

    Columns: `index` (0-based position in the input), `labels` (the picked labels, as
    `classify` prints them: single-label the top k at or above `--threshold`, multi-label
    every label at or above its tuned cut), `label` (the first of them, or null),
    `probability` (of `label`; of the most likely class when nothing was picked), and
    `prob_<label>` for every class, so nothing is lost when a user wants another cut later.
    """

    def __init__(self, file, labels: list[str], pick):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa, self.labels, self.pick = pa, labels, pick
        fields = [
            ("index", pa.int64()),
            ("label", pa.string()),
            ("probability", pa.float32()),
            ("labels", pa.list_(pa.string())),
        ]
        fields += [(f"prob_{name}", pa.float32()) for name in labels]
        self.schema = pa.schema(fields)
        self.writer = pq.ParquetWriter(file, self.schema)

    def write(self, start: int, probs, top_k: int = 1, threshold: float = 0.0) -> None:
        import numpy as np

        picks = [self.pick(row, top_k, threshold) for row in probs]
        top = [p[0][1] if p else row.max() for p, row in zip(picks, probs, strict=True)]
        columns = {
            "index": np.arange(start, start + len(probs), dtype=np.int64),
            "label": [p[0][0] if p else None for p in picks],
            "probability": np.array(top, dtype=np.float32),
            "labels": [[label for label, _ in p] for p in picks],
        }
        for i, name in enumerate(self.labels):
            columns[f"prob_{name}"] = probs[:, i].astype(np.float32)
        self.writer.write_table(self.pa.table(columns, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


def open_input(texts: tuple[str, ...], file: str | None, text_column: str, output=None):
    """(chunks of texts, total or None) from `classify`'s arguments or its --file (`-`:
    stdin, also as the only argument)."""
    if texts == ("-",):
        texts, file = (), "-"
    if file and texts:
        raise TextlstmError("give texts as arguments or with --file, not both")
    if files.same_file(file, output):
        raise TextlstmError(f"--output {output} is the input file: choose another name")
    if file:
        return read_chunks(file, text_column, CHUNK), count_rows(file)
    if texts:
        return batched(texts, CHUNK), len(texts)
    raise TextlstmError(
        'nothing to classify: give TEXT arguments, --file PATH, or "-" for standard input'
    )


def predict_chunks(predictor, chunks, batch_size: int, bar, warn) -> Iterator[tuple]:
    """(position of the chunk's first text, texts, probabilities) per chunk; `warn` is
    told about each empty text (it is classified as unknown input: the model's prior)."""
    start = 0
    for chunk in chunks:
        probs = predictor.probabilities(chunk, batch_size)
        for number, text in enumerate(chunk, start + 1):
            if not text.strip():
                warn(f"text {number} is empty; classified as unknown input")
        yield start, chunk, probs
        start += len(chunk)
        bar.update(len(chunk))


def write_predictions(
    predicted, predictor, output: str | None, fmt: str, top_k: int, threshold: float
) -> None:
    """Write `predict_chunks` results as text, JSON, JSONL (stdout or `output`) or parquet.
    A file named by `output` appears (or changes) only once every text was written."""
    if fmt == "parquet" and not output:
        raise TextlstmError("parquet output needs --output FILE.parquet")
    with files.Output(output, binary=fmt == "parquet") as out:
        if fmt == "parquet":
            sink = ParquetOutput(out.file, predictor.labels, predictor.pick)
            try:
                for start, _, probs in predicted:
                    sink.write(start, probs, top_k, threshold)
            except BaseException:  # the temp file goes; the writer must not write later
                with contextlib.suppress(Exception):
                    sink.close()
                raise
            sink.close()
            return
        if fmt == "json":
            out.file.write("[")
        for start, chunk, probs in predicted:
            for index, (text, row) in enumerate(zip(chunk, probs, strict=True), start):
                picks = predictor.pick(row, top_k, threshold)
                out.file.write(format_record(fmt, index, text, picks))
        if fmt == "json":
            out.file.write("]\n")


def embed_chunks(predictor, chunks, batch_size: int, bar) -> Iterator[tuple]:
    """(position of the chunk's first text, its vectors) per chunk (`textlstm embed`)."""
    start = 0
    for chunk in chunks:
        yield start, predictor.embeddings(chunk, batch_size)
        start += len(chunk)
        bar.update(len(chunk))


def vector_format(output: str | None, fmt: str | None) -> str:
    """`embed`'s --format, else the --output suffix (.npy, .parquet), else JSONL."""
    if fmt:
        return fmt
    suffix = Path(output).suffix.lower() if output else ""
    return {".npy": "npy", ".parquet": "parquet"}.get(suffix, "jsonl")


def write_vectors(embedded, output: str | None, fmt: str) -> None:
    """Vectors as JSONL records {"index", "vector"} (streamed; stdout or `output`), a
    parquet file (index, vector; a row group per chunk) or one .npy matrix (held in
    memory until the end: the format needs the row count first)."""
    import numpy as np

    if fmt in ("npy", "parquet") and not output:
        raise TextlstmError(f"{fmt} output needs --output FILE.{fmt}")
    with files.Output(output, binary=fmt != "jsonl") as out:
        if fmt == "npy":
            blocks = [vectors for _, vectors in embedded]
            np.save(out.file, np.concatenate(blocks) if blocks else np.zeros((0, 0), np.float32))
            return
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            schema = pa.schema([("index", pa.int64()), ("vector", pa.list_(pa.float32()))])
            writer = pq.ParquetWriter(out.file, schema)
            try:
                for start, vectors in embedded:
                    rows = {
                        "index": np.arange(start, start + len(vectors)),
                        "vector": list(vectors),
                    }
                    writer.write_table(pa.table(rows, schema=schema))
            finally:
                writer.close()
            return
        for start, vectors in embedded:
            for index, row in enumerate(vectors, start):
                vector = [round(float(v), 6) for v in row]
                out.file.write(json.dumps({"index": index, "vector": vector}) + "\n")


def format_record(fmt: str, index: int, text: str, picks) -> str:
    """One text's output: tab-separated label/probability pairs, or a JSON record."""
    if fmt == "text":
        return "\t".join(f"{label}\t{p:.4f}" for label, p in picks) + "\n"
    record = {
        "index": index,
        "text": text,
        "labels": [{"label": lb, "probability": round(p, 6)} for lb, p in picks],
    }
    if not text.strip():
        record["empty"] = True
    line = json.dumps(record, ensure_ascii=False)
    return line + "\n" if fmt == "jsonl" else ("," if index else "") + line


def progress(total: int | None, enabled: bool = True):
    """A texts/s bar on stderr; off when stderr is not a terminal (logs, pipes, tests)."""
    from tqdm import tqdm

    return tqdm(
        total=total, unit="text", unit_scale=True, disable=not (enabled and sys.stderr.isatty())
    )
