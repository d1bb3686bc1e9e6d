"""Time ``datatool demo`` stage by stage against its one-minute budget on a 2-core CPU.

Run: ``.venv/bin/python benchmarks/bench_demo.py [--epochs 40]``

Prints wall and CPU seconds of each stage (sample data, checked training,
evaluation) for the demo's setting (the network trains on 64-px windows of the
128-px crops and is scored on whole crops) side by side with training on whole
128-px crops, and the ratio of the total to 60 s. Wall times depend on what
else the machine runs; CPU seconds less so.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

BUDGET_S = 60.0


def run(epochs: int, resolution: int) -> dict[str, tuple[float, float]]:
    """``{stage: (wall s, cpu s)}`` of one demo run training at ``resolution``."""
    from datatool.evaluate.sweep import run_demo
    from datatool.torch.train import TrainConfig

    stages: dict[str, tuple[float, float]] = {}
    current: list = []

    def mark(name: str) -> None:
        now = (time.perf_counter(), time.process_time())
        if current:
            stages[current[0]] = (now[0] - current[1][0], now[1] - current[1][1])
        current[:] = [name, now]

    config = TrainConfig(epochs=epochs, resolution=resolution, save_every=max(1, epochs // 8))
    with tempfile.TemporaryDirectory() as out:
        run_demo(
            Path(out), config,
            on_stage=lambda name, _steps: mark(name),
            on_start=lambda _total: mark("evaluating"),
        )  # fmt: skip
        mark("end")
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    import torch

    from datatool.evaluate.sweep import DEMO_TRAIN_RESOLUTION

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.epochs} epochs")
    results = {r: run(args.epochs, r) for r in (DEMO_TRAIN_RESOLUTION, 128)}
    print(f"{'stage':<12}" + "".join(f"{f'train at {r} px (wall / cpu s)':>34}" for r in results))
    for stage in ("data", "training", "evaluating"):
        cells = "".join(
            f"{f'{results[r][stage][0]:.1f} / {results[r][stage][1]:.1f}':>34}" for r in results
        )
        print(f"{stage:<12}{cells}")
    totals = {r: sum(v[0] for v in stages.values()) for r, stages in results.items()}
    print(
        f"{'total':<12}"
        + "".join(
            f"{f'{t:.1f} s = {t / BUDGET_S:.2f} x the 60 s budget':>34}" for t in totals.values()
        )
    )


if __name__ == "__main__":
    main()
