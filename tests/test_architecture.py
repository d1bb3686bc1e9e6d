"""The layers hold: import-linter contracts, torch out of the torch-free layers, ruff rules."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; install the test extra: pip install -e '.[test]'")
    return path


def _lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = None
    if pythonpath is not None:
        import os

        env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [_tool("lint-imports"), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_import_contracts_are_kept() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_forbidden_import_breaks_the_contracts(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    shutil.copytree(
        REPO / "datatool", copy / "datatool", ignore=shutil.ignore_patterns("__pycache__")
    )
    labels = copy / "datatool" / "labels.py"
    labels.write_text(labels.read_text() + "\n\ndef _up():\n    from datatool.torch import unet\n")
    result = _lint_imports(copy, pythonpath=copy)
    assert result.returncode != 0
    assert "datatool.labels -> datatool.torch" in result.stdout
    assert "2 broken" in result.stdout


TORCH_FREE = """
import sys
import datatool.report, datatool.schema, datatool.metrics.losses, datatool.metrics.results
import datatool.metrics.files, datatool.metrics.overlays, datatool.check, datatool.merge
from datatool.schema import schema_documents
schema_documents()
print("torch" in sys.modules)
"""


def test_torch_free_layers_and_schema_export_leave_torch_unloaded() -> None:
    result = subprocess.run(
        [sys.executable, "-c", TORCH_FREE], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


REPORT_RUN = """
import sys
from datatool.cli import main
try:
    main(["report", sys.argv[1], "--out", sys.argv[2], "--fast", "--workers", "1"])
except SystemExit as exc:
    print("exit", exc.code)
print("torch" in sys.modules)
"""


def test_report_without_checkpoints_never_imports_torch(sample_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, "-c", REPORT_RUN, str(sample_tree), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "False", result.stdout + result.stderr
    assert lines[-2] == "exit 0"
    assert out.stat().st_size > 0


def _long_functions(limit: int) -> list[str]:
    found = []
    for path in sorted((REPO / "datatool").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length})")
    return found


def test_no_function_longer_than_120_lines() -> None:
    assert _long_functions(120) == []


def test_ruff_with_docstring_rules_passes() -> None:
    result = subprocess.run(
        [_tool("ruff"), "check", "datatool", "tests", "benchmarks"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
