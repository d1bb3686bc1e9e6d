"""``datatool demo``: stages reported in order, a bar per stage on a terminal, output at 80 columns.

The demo trains on 64-px windows of the 128-px crops and scores whole crops, so
it stays under a minute on a 2-core CPU (``benchmarks/bench_demo.py`` prints the
stage times); here it runs two epochs of a width-4 network.
"""

from __future__ import annotations

import io as _io
from pathlib import Path

import pytest

from datatool.evaluate import sweep
from datatool.torch.train import TrainConfig


def test_run_demo_reports_each_stage_and_epoch_in_order(tmp_path: Path) -> None:
    events: list[tuple] = []
    config = TrainConfig(epochs=2, base_width=4, resolution=64, save_every=1)
    result, paths = sweep.run_demo(
        tmp_path,
        config,
        on_stage=lambda name, steps: events.append(("stage", name, steps)),
        on_epoch=lambda epoch, loss: events.append(("epoch", epoch, loss > 0)),
        on_start=lambda total: events.append(("start", total)),
        on_progress=lambda step: events.append(("step", step)),
    )
    assert events[:5] == [
        ("stage", "data", None),
        ("stage", "training", 2),
        ("epoch", 1, True),
        ("epoch", 2, True),
        ("start", 3 * 8),  # checkpoints 0, 1, 2 x the 8 validation crops
    ]
    assert sum(e[1] for e in events if e[0] == "step") == 24
    # Trained on 64-px windows, scored on whole 128-px crops.
    assert result.options.resolution == sweep.DEMO_CROP == 128
    assert [row.epoch for row in result.means] == [0, 1, 2]
    assert all(p.exists() for p in paths.values())


def test_demo_progress_draws_a_bar_per_stage_with_eta() -> None:
    from rich.console import Console

    from datatool.cli.evaluate import _DemoProgress

    stream = _io.StringIO()
    console = Console(file=stream, force_terminal=True, width=80)
    with _DemoProgress(console) as progress:
        progress.stage("data", None)
        progress.stage("training", 3)
        for epoch in (1, 2, 3):
            progress.epoch(epoch, 0.5 / epoch)
        progress.evaluating(6)
        progress.advance(4)
        bar = progress._bar
    tasks = {t.description.strip(): (t.completed, t.total) for t in bar.tasks}
    assert tasks == {"sample data": (1, 1), "training": (3, 3), "evaluating": (6, 6)}
    text = stream.getvalue()
    assert "ETA" in text and "loss 0.167" in text and "3/3" in text


def test_demo_progress_is_silent_off_a_terminal() -> None:
    from datatool.cli.evaluate import _DemoProgress

    with _DemoProgress() as progress:  # pytest's stderr is not a terminal
        progress.stage("training", 2)
        progress.epoch(1, 0.3)
        assert progress._bar is None


@pytest.mark.parametrize("columns", [80, 120])
def test_demo_output_fits_the_terminal(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.chdir(tmp_path)  # paths as a person types them: demo/...
    code, out, err = run_cli("demo", "--out", "demo", "--epochs", "1")
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns, out
    assert "Mean over images, by epoch" in out and "F1" in out
    assert "demo/checkpoints" in out and "demo/metrics.csv" in out  # paths whole
    assert "ETA" not in out + err and "\x1b[" not in out + err  # no bar off a terminal
