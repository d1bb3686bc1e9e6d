"""A person at an 80-column terminal: every line fits, every file name is printed whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datatool import io, synth

LONG_A = "0417-etched-steel-coarse-and-fine-north"
LONG_B = "0533-lamellar-ti64-sem-second-session"


@pytest.fixture
def long_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small tree with long sample names and a few problems to report.

    The working directory is the tree's parent and the returned root relative, as
    a person types it (``datatool check training_validation_data``).
    """
    monkeypatch.chdir(tmp_path)
    root = synth.write_tree(
        tmp_path / "training_validation_data",
        {LONG_A: "training", LONG_B: "validation"},
        seed=7,
        size=(160, 160),
        crop=96,
        crops_per_fov=2,
        fields_of_view=1,
        grain_px=22.0,
    )
    folder = root / "training" / f"{LONG_A}_training" / "aligned"
    label = folder / "label" / f"{LONG_A}_1_2.png"
    io.write_png(label, np.roll(io.read_grey(label), 3, axis=1))  # misaligned
    (folder / "label" / f"{LONG_A}_1_1.png").unlink()  # missing label
    return Path(root.name)


def _assert_fits(text: str, width: int = 80) -> None:
    long_lines = [line for line in text.splitlines() if len(line) > width]
    assert not long_lines, f"{len(long_lines)} line(s) over {width} columns: {long_lines[:3]}"


def test_check_at_80_columns_groups_by_sample(long_tree, run_cli, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli("check", long_tree, "--workers", "1")
    assert code == 1
    _assert_fits(out)
    lines = out.splitlines()
    # File names whole, on one line each; the sample folder heads its group.
    for name in (f"{LONG_A}_1_1.png", f"{LONG_A}_1_2.png"):
        assert any(name in line for line in lines), name
    header = f"training/{LONG_A}_training/aligned"
    assert any(line.startswith(header) for line in lines)
    codes = [c for c in ("missing-image", "missing-label", "misaligned") if c in out]
    assert "misaligned" in codes and len(codes) == 2
    # Root cause first: the missing file before the misalignment in the same group.
    group = out[out.index(header) :]
    assert group.index(codes[0]) < group.index("misaligned")


def test_check_uses_a_wider_terminal(long_tree, run_cli, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    _, out, _ = run_cli("check", long_tree, "--workers", "1", "--fast")
    assert max(len(line) for line in out.splitlines()) > 80
    _assert_fits(out, 160)


def test_check_format_github_and_json_alias(long_tree, run_cli) -> None:
    code, out, _ = run_cli("check", long_tree, "--workers", "1", "--format", "github")
    assert code == 1
    lines = out.splitlines()
    _, as_json, _ = run_cli("check", long_tree, "--workers", "1", "--json")
    report = json.loads(as_json)
    assert len(lines) == len(report["findings"]) > 0
    for line, finding in zip(lines, report["findings"], strict=True):
        level = {"error": "error", "warning": "warning", "info": "notice"}[finding["severity"]]
        assert line.startswith(f"::{level} file={long_tree}/{finding['path']},")
        assert line.endswith(f"::{finding['message']}")
    _, formatted, _ = run_cli("check", long_tree, "--workers", "1", "--format", "json")
    assert json.loads(formatted)["findings"] == report["findings"]


def test_score_at_80_columns_keeps_f1(tmp_path, run_cli, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.chdir(tmp_path)
    truth = np.zeros((64, 64), np.uint8)
    truth[::16, :] = 255
    io.write_png(tmp_path / "truth.png", truth)
    names = [f"predict_{LONG_A}_epoch_{e:04d}.png" for e in (50, 300)]
    for name in names:
        io.write_png(tmp_path / name, truth)
    code, out, _ = run_cli("score", *names, "--truth", "truth.png")
    assert code == 0
    _assert_fits(out)
    assert "F1" in out and "recall" in out
    for name in names:
        assert any(name in line for line in out.splitlines())


def test_info_at_80_columns(long_tree, run_cli, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli("info", long_tree)
    assert code == 0
    _assert_fits(out)
    assert "pairs" in out


@pytest.mark.parametrize("command", ["evaluate", "check", "plan", "score", "report", "demo"])
def test_help_at_80_columns_has_examples_and_no_bool(command, run_cli, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli(command, "--help")
    assert code == 0
    _assert_fits(out)
    assert "<bool>" not in out
    assert "Examples:" in out
    assert f"datatool {command}" in out.split("Examples:")[1]


def test_version(run_cli) -> None:
    from datatool import __version__

    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"datatool {__version__}"


def test_python_m_datatool_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "datatool", "--help"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: datatool" in done.stdout and "check" in done.stdout


def test_a_misregistered_tracing_is_listed_before_the_labels_it_explains() -> None:
    from datatool.cli._render import group_findings
    from datatool.findings import Finding, Severity

    def finding(code: str, path: str) -> Finding:
        return Finding(
            severity=Severity.error, code=code, check="c", path=path, message=code, related=[]
        )

    folder = "training/0101_training/aligned"
    findings = [
        finding("wrong-pairing", f"{folder}/label/0101_1_4.png"),
        finding("misaligned", f"{folder}/label/0101_1_2.png"),
        finding("misregistered", f"{folder}/0101_trace.png"),
    ]
    ((_, items),) = group_findings(findings)
    assert [f.code for _, f in items] == ["misregistered", "wrong-pairing", "misaligned"]
