"""Dependencies inside textlstm/ point one way (DESIGN.md, "Data flow and layers").

Every `import` counts, module-level or inside a function: a lazy import that hides a
cycle is still a cycle. Leaf modules import nothing of textlstm's but the package root
(the error type), and the modules a cold `classify` loads never import torch.
"""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "textlstm"
LEAVES = (
    "files",
    "metrics",
    "labels",
    "ngrams",
    "distributed",
    "datachecks",
    "hub",
    "config",
    "launch",
)


def imports() -> dict[str, set[str]]:
    """module -> the textlstm modules it imports, anywhere in its body."""
    names = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    graph = {name: set() for name in names}
    for name in names:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        for node in ast.walk(tree):
            found = []
            if isinstance(node, ast.ImportFrom) and node.module == "textlstm":
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("textlstm."):
                found = [node.module.split(".")[1]]
            elif isinstance(node, ast.Import):
                found = [a.name.split(".")[1] for a in node.names if a.name.startswith("textlstm.")]
            graph[name] |= {f for f in found if f in names and f != name}
    return graph


def test_no_import_cycle():
    graph, state, path = imports(), {}, []

    def visit(node):  # depth-first; meeting a node still on the path closes a cycle
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt) :] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_leaf_modules_import_no_other_textlstm_module():
    graph = imports()
    assert {leaf: graph[leaf] for leaf in LEAVES if graph[leaf]} == {}


def test_cold_classify_modules_do_not_import_torch():
    code = (
        "import sys, textlstm.cli, textlstm.config, textlstm.predict, textlstm.task, "
        "textlstm.checkpoint, textlstm.stream\n"
        "print(sorted(m for m in ('torch', 'datasets') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
