"""The model section of a quality report: sweep a run's checkpoints over a dataset.

This sits above :mod:`datatool.report`, which only renders results and never
imports torch: :func:`build_report` here plans the sweep (bad options fail
before the long check), runs it, and hands its data and pictures to
:func:`datatool.report.build_report`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datatool.checks import CheckOptions
from datatool.errors import UsageError
from datatool.evaluate.sweep import pairs_from_dataset, plot_loss_vs_epoch, run_sweep
from datatool.metrics.results import SweepOptions
from datatool.report import build_report as build_dataset_report
from datatool.report.model import ModelsSection, QualityReport
from datatool.report.sections import Figure, ModelsFigures, ReportFigures
from datatool.torch.checkpoints import find_checkpoints
from datatool.torch.inference import check_resolution

_OVERLAY_KINDS = (
    ("overlay", "prediction over truth", "white: found, red: missed, blue: false line"),
    (
        "gaussian-weighted",
        "prediction x Gaussian reward",
        "green pixels earn reward, red ones cost",
    ),
)


@dataclass(frozen=True)
class _SweepPlan:
    """What the model section will sweep, settled before the (long) check runs."""

    checkpoint_dir: Path
    checkpoints: list
    pairs: list
    split: str | None
    options: object
    warning: str | None = None


def _plan_sweep(root: Path, checkpoints: Path, sweep_options, eval_split: str | None) -> _SweepPlan:
    """Find the checkpoints and the pairs to score; bad options fail here, before the check."""
    options = sweep_options or SweepOptions()
    check_resolution(options.resolution)
    found = find_checkpoints([checkpoints])
    pairs = pairs_from_dataset(root)
    splits = {p.split for p in pairs}
    if eval_split is None and "validation" in splits:
        eval_split = "validation"
    if eval_split is not None:
        if eval_split not in splits:
            known = ", ".join(sorted(str(s) for s in splits)) or "none"
            raise UsageError(f"--eval-split {eval_split}: no such split in {root} ({known})")
        pairs = [p for p in pairs if p.split == eval_split]
    return _SweepPlan(checkpoints, found, pairs, eval_split, options, _not_held_out(eval_split))


def _not_held_out(split: str | None) -> str | None:
    """Why the scored pairs are not a held-out set, or None when they are.

    >>> _not_held_out("validation") is None
    True
    >>> _not_held_out(None).startswith("no validation split")
    True
    """
    if split is None:
        return (
            "no validation split: the checkpoints were scored on every pair, training crops "
            "included, so the scores say how well the model fits what it saw, not how it "
            "generalises (add a validation split, or pass --eval-split)"
        )
    if split == "training":
        return (
            "the checkpoints were scored on the training split (--eval-split training): "
            "the scores say how well the model fits what it saw, not how it generalises"
        )
    return None


def _models(
    plan: _SweepPlan, overlay_images: int, work: Path, scheduler: str = "local"
) -> ModelsFigures:

    found, pairs, eval_split, checkpoints = (
        plan.checkpoints,
        plan.pairs,
        plan.split,
        plan.checkpoint_dir,
    )
    cache = work / "cache"
    result = run_sweep(found, pairs, plan.options, cache_dir=cache, scheduler=scheduler)
    epochs = sorted({found[0].epoch, found[-1].epoch})
    shown = pairs[:overlay_images]
    # Second pass on the shown images only: every prediction is a cache hit, so
    # this just writes the sweep's own overlay pictures for the first and last epoch.
    run_sweep(
        [c for c in found if c.epoch in epochs],
        shown,
        result.options,
        cache_dir=cache,
        overlay_dir=work / "overlays",
        overlay_epochs=epochs,
    )
    plot = plot_loss_vs_epoch(result, work / "loss_vs_epoch.png")
    loss_figure = Figure(
        "Loss vs epoch",
        plot.read_bytes(),
        f"{len(found)} checkpoints on {len(pairs)} image(s)"
        + (f" of the {eval_split} split" if eval_split else ""),
    )
    overlays: dict[str, dict[int, list[Figure]]] = {}
    for pair in shown:
        overlays[pair.name] = {
            epoch: [
                Figure(
                    f"epoch {epoch}: {title}",
                    (work / "overlays" / f"epoch_{epoch}" / f"{pair.name}.{kind}.png").read_bytes(),
                    caption,
                )
                for kind, title, caption in _OVERLAY_KINDS
            ]
            for epoch in epochs
        }
    section = ModelsSection(
        checkpoints=str(checkpoints),
        split=eval_split,
        held_out=plan.warning is None,
        warning=plan.warning,
        overlay_epochs=epochs,
        overlay_images=[p.name for p in shown],
        sweep=result,
    )
    return ModelsFigures(section, loss_figure, overlays)


def sweep_for_report(
    root: str | os.PathLike[str],
    checkpoints: str | os.PathLike[str],
    sweep_options: SweepOptions | None = None,
    eval_split: str | None = None,
    overlay_images: int = 3,
    scheduler: str = "local",
) -> Callable[[], ModelsFigures]:
    """Plan the sweep now (bad options raise at once) and return the call that runs it.

    ``scheduler`` says where the checkpoint x batch units run (see :mod:`datatool.schedule`).
    """
    if overlay_images < 1:
        raise ValueError(f"overlay_images must be >= 1, got {overlay_images}")
    plan = _plan_sweep(Path(root), Path(checkpoints), sweep_options, eval_split)

    def run() -> ModelsFigures:
        with tempfile.TemporaryDirectory(prefix="datatool-report-") as work:
            return _models(plan, overlay_images, Path(work), scheduler)

    return run


def build_report(
    root: str | os.PathLike[str],
    check_options: CheckOptions | None = None,
    *,
    checkpoints: str | os.PathLike[str] | None = None,
    sweep_options: SweepOptions | None = None,
    eval_split: str | None = None,
    overlay_images: int = 3,
    **report_options,
) -> tuple[QualityReport, ReportFigures]:
    """The dataset report, plus the checkpoint sweep when ``checkpoints`` is given.

    Parameters
    ----------
    root : path-like
        A tree or flat set.
    check_options : CheckOptions, optional
    checkpoints : path-like, optional
        A folder of ``<name>_<epoch>.pth`` checkpoints to sweep on the dataset.
    sweep_options : SweepOptions, optional
        Options of the sweep (resolution, device...).
    eval_split : str, optional
        Split the checkpoints are evaluated on; 'validation' when there is one,
        else every pair.
    overlay_images : int
        Images whose first- and last-epoch overlays are shown.
    **report_options
        ``samples``, ``seed``, ``max_flagged``, ``progress``, ``scheduler`` of the dataset
        report (the sweep runs on the same scheduler).

    Returns
    -------
    (QualityReport, ReportFigures)
    """
    run = (
        sweep_for_report(
            root, checkpoints, sweep_options, eval_split, overlay_images,
            report_options.get("scheduler", "local"),
        )  # fmt: skip
        if checkpoints is not None
        else None
    )
    return build_dataset_report(root, check_options, models=run, **report_options)
