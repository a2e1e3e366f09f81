"""The docs stay true to the repository: generated reference, links, README size and layout."""

import re
from pathlib import Path

import pytest

from textlstm import configdoc

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
# Files whose references to other files must resolve.
REFERRING = [README, *DOCS, REPO / "Makefile", *sorted((REPO / "textlstm").glob("*.py"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# docs/….md, configs/….toml, bench/….py named anywhere (backticked or not).
MENTION = re.compile(
    r"(?<![\w./-])((?:docs/[\w./-]+\.md)|(?:configs/[\w./-]+\.toml)"
    r"|(?:bench/[\w./-]+\.py))(?![\w/-])"
)


def test_config_reference_is_up_to_date():
    path = REPO / "docs" / "CONFIG.md"
    written = path.read_text(encoding="utf-8") if path.exists() else ""
    assert written == configdoc.reference(), (
        f"docs/CONFIG.md is out of date: run `{configdoc.COMMAND}`"
    )


def test_reference_describes_every_key():
    rows = [line for line in configdoc.reference().splitlines() if line.startswith("| `")]
    assert len(rows) > 20
    undescribed = [row.split("|")[1].strip() for row in rows if not row.split("|")[4].strip()]
    assert not undescribed, f"add a trailing # comment to these config fields: {undescribed}"


@pytest.mark.parametrize("path", REFERRING, ids=lambda p: str(p.relative_to(REPO)))
def test_references_resolve(path):
    text = path.read_text(encoding="utf-8")
    missing = []
    for target in LINK.findall(text) if path.suffix == ".md" else []:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # URLs, mailto:, anchors within the page
        if not (path.parent / target.split("#")[0]).exists():
            missing.append(f"]({target})")
    missing += [name for name in MENTION.findall(text) if not (REPO / name).exists()]
    assert not missing, f"{path.relative_to(REPO)} refers to files that do not exist: {missing}"


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move reference text to docs/"


def layout_modules() -> set[str]:
    """Module names in the first column of the README's "Layout" table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([\w]+\.py)`", row.split("|")[1])}


def test_layout_table_matches_the_modules():
    listed = layout_modules()
    present = {p.name for p in (REPO / "textlstm").glob("*.py")} - {"__main__.py"}
    assert not present - listed, f"add to the README's Layout table: {sorted(present - listed)}"
    assert not listed - present, (
        f"the Layout table names missing modules: {sorted(listed - present)}"
    )


def test_bench_markers_are_paired_and_unique():
    text = (REPO / "docs" / "BENCHMARKS.md").read_text(encoding="utf-8")
    names = re.findall(r"<!-- bench-accuracy:begin (.*?) -->", text)
    assert names
    for name in names:
        for kind in ("begin", "end"):
            marker = f"<!-- bench-accuracy:{kind} {name} -->"
            assert text.count(marker) == 1, f"{marker} must occur exactly once"


def test_every_reliability_row_names_tests_that_exist():
    text = (REPO / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", text)
    assert len(named) > 70
    missing = [
        f"{file}::{name}"
        for file, name in named
        if f"def {name}(" not in (REPO / "tests" / file).read_text(encoding="utf-8")
    ]
    assert not missing, f"docs/RELIABILITY.md names tests that do not exist: {missing}"


@pytest.mark.parametrize("preset", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_preset_loads_and_passes_its_checks(preset):
    """The docs tell users to run `--config configs/NAME.toml`: each must load as it ships."""
    from textlstm import config

    cfg = config.build(str(preset))
    cfg.check()
