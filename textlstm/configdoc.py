"""The configuration reference (docs/CONFIG.md), generated from the config dataclasses.

    python -m textlstm.configdoc                         # print the Markdown
    python -m textlstm.configdoc --write docs/CONFIG.md  # regenerate the file

Sections and fields come from `dataclasses.fields` of `RunConfig` and of each section's
dataclass, so the reference lists exactly the keys `--set section.key=value` accepts.
A field's description is the trailing `# comment` on its line in the source; a field
without one falls back to a `name: text` line of its class docstring. tests/test_docs.py
fails when docs/CONFIG.md and `reference()` differ.
"""

import argparse
import dataclasses
import inspect
import io
import json
import re
import textwrap
import tokenize
import typing
from pathlib import Path

from textlstm import config

COMMAND = "python -m textlstm.configdoc --write docs/CONFIG.md"


def sections() -> list[tuple[str, type]]:
    """(section name, dataclass) for each field of RunConfig, in declaration order."""
    hints = typing.get_type_hints(config.RunConfig)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(config.RunConfig)]


def trailing_comments(cls: type) -> dict[str, str]:
    """Field name -> the `# comment` that ends its statement in the class body."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments, depth, statement = {}, 0, []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.INDENT:
            depth += 1
        elif tok.type == tokenize.DEDENT:
            depth -= 1
        elif tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            code = [t for t in statement if t.type != tokenize.COMMENT]
            notes = [t.string for t in statement if t.type == tokenize.COMMENT]
            is_field = len(code) >= 2 and code[0].type == tokenize.NAME and code[1].string == ":"
            if is_field and notes and code[0].string not in comments:
                comments[code[0].string] = notes[-1].lstrip("#").strip()
            statement = []
        elif tok.type == tokenize.COMMENT and not statement:
            continue  # a comment on a line of its own describes no single field
        elif tok.type != tokenize.NL and depth == 1:
            statement.append(tok)
    return comments


def docstring_notes(cls: type) -> dict[str, str]:
    """Field name -> text of a `name: text` line in the class docstring."""
    notes = {}
    for line in (inspect.getdoc(cls) or "").splitlines():
        match = re.match(r"\s*`?(\w+)`?\s*:\s+(\S.*)$", line)
        if match:
            notes.setdefault(match.group(1), match.group(2).strip())
    return notes


def type_name(kind) -> str:
    if isinstance(kind, type):
        return kind.__name__
    return str(kind).replace("typing.", "")


def default_value(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    if value is None:
        return "none"
    return json.dumps(value) if isinstance(value, bool | str | list | dict) else repr(value)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, `<run>` not read as HTML."""
    return text.replace("|", "\\|").replace("<", "&lt;")


def reference() -> str:
    """docs/CONFIG.md: one table per section (key, type, default, description)."""
    lines = [
        "# Configuration reference",
        "",
        f"Generated from the config dataclasses by `{COMMAND}`; do not edit by hand.",
        "",
        "Every key is `section.key`: set it in a TOML file under `[section]` (`--config`) or",
        'with `--set section.key=value`. See docs/USAGE.md, section "Configuration".',
    ]
    for name, cls in sections():
        hints = typing.get_type_hints(cls)
        comments, notes = trailing_comments(cls), docstring_notes(cls)
        summary = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
        lines += ["", f"## `{name}`", ""]
        if summary:
            lines += [summary, ""]
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            about = comments.get(f.name) or notes.get(f.name, "")
            lines.append(
                f"| `{name}.{f.name}` | {type_name(hints[f.name])} | `{default_value(f)}` "
                f"| {cell(about)} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print or write the configuration reference.")
    parser.add_argument("--write", metavar="PATH", help="write it to PATH (docs/CONFIG.md)")
    args = parser.parse_args(argv)
    text = reference()
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
        print(f"wrote {args.write}")
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
