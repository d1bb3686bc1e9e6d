"""``datatool train``: check the dataset, then train the lab's U-Net with validation losses."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from datatool.cli._app import app
from datatool.cli._usage import PRECISION_HELP, Precision


class LossName(StrEnum):
    """Training losses of ``--loss``."""

    bce = "bce"
    tolerant = "tolerant"
    bce_tolerant = "bce+tolerant"


@app.command()
def train(
    root: Annotated[Path, typer.Argument(help="Dataset tree or flat set (checked first).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for checkpoints and the log.")],
    epochs: Annotated[int, typer.Option(min=1, help="Train up to this epoch.")] = 90,
    save_every: Annotated[int, typer.Option(min=1, help="Checkpoint every K epochs.")] = 10,
    loss: Annotated[LossName, typer.Option(help="Training loss.")] = LossName.bce,
    width: Annotated[int, typer.Option(min=1, help="U-Net base width (lab: 64).")] = 64,
    resolution: Annotated[int, typer.Option(help="Window side R, multiple of 16.")] = 256,
    batch_size: Annotated[int, typer.Option(min=1, help="Windows per step.")] = 4,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-4,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed: same seed, same checkpoints (CPU).")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    precision: Annotated[Precision, typer.Option(help=PRECISION_HELP)] = Precision.auto,
) -> None:
    """Train on the training split; every loss on the validation split after each epoch."""
    from datatool.cli._progress import progress_bar
    from datatool.cli._render import make_console, say
    from datatool.errors import UsageError
    from datatool.torch.train import TrainConfig, train_tree

    try:
        config = TrainConfig(
            name="grain_unet", base_width=width, epochs=epochs, resolution=resolution,
            batch_size=batch_size, learning_rate=lr, save_every=save_every, seed=seed,
            loss=loss.value, device=device, save_untrained=False, precision=precision.value,
        )  # fmt: skip
    except ValueError as exc:
        raise UsageError(f"invalid option: {exc}") from None
    console = make_console()
    state = {"done": 0, "total": 0}

    def plan(p) -> None:
        held_out = f"{p.validation_pairs} validation pairs" if p.validation_pairs else (
            "no validation split: nothing is held out, no validation losses"
        )  # fmt: skip
        say(console, f"training on {p.train_pairs} pairs, {held_out}; " + (
            f"resuming after epoch {p.start_epoch}" if resume else f"{epochs} epochs"
        ))  # fmt: skip
        state["total"] = (epochs - p.start_epoch) * -(-p.train_pairs // batch_size)

    def epoch_line(record) -> None:
        scores = ", ".join(f"val {k} {v:.4f}" for k, v in record.validation.items())
        say(console, f"epoch {record.epoch}/{epochs}: train {record.train_loss:.4f}"
            + (f", {scores}" if scores else "") + f" ({record.seconds:.1f} s)")  # fmt: skip

    with progress_bar("training") as update:

        def batch(step: int) -> None:
            state["done"] += step
            if update:
                update(state["done"], state["total"])

        written = train_tree(
            root, out, config, resume=resume, on_plan=plan, on_epoch=epoch_line, on_batch=batch,
            on_precision=lambda message: say(console, message),
        )
    say(console, f"wrote {len(written)} checkpoint(s) and training_log.csv to {out}")
    raise typer.Exit(0)
