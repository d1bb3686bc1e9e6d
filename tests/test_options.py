"""Options that crashed or hung: finite bounds checked before any work, one-line errors.

Also: outputs that cannot be created, plan files that are not UTF-8 or nested
too deep, text given as a checkpoint, and ``report --checkpoints`` on a set
without a validation split.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from datatool.cli._usage import allowed_range, parse_options, writable_output
from datatool.errors import DatatoolError, UsageError
from datatool.metrics.results import ScoreParams, SweepOptions

REPO = Path(__file__).resolve().parents[1]
FIXTURE_TREE = REPO / "fixtures" / "training_validation_data"


# Each: the arguments (ROOT, FILE: placeholders), the option the message must name,
# and a fragment of the allowed range it must state.
BAD_OPTIONS = [
    (["score", "FILE", "--truth", "FILE", "--sigma", "inf"], "--sigma", "<= 50"),
    (["score", "FILE", "--truth", "FILE", "--tolerance", "inf"], "--tolerance", "<= 50"),
    (["score", "FILE", "--truth", "FILE", "--tolerance", "1e30"], "--tolerance", "<= 50"),
    (
        ["score", "FILE", "--truth", "FILE", "--tophat-kernel-size", "100001"],
        "--tophat-kernel-size",
        "<= 1001",
    ),
    (["check", "ROOT", "--max-offset", "inf"], "--max-offset", "<= 64"),
    (["check", "ROOT", "--workers", "100000"], "--workers", "<= 1024"),
    (["infer", "FILE", "FILE", "--out", "OUT", "--batch-size", "0"], "--batch-size", "1 <="),
    (["infer", "FILE", "FILE", "--out", "OUT", "--batch-size", "-1"], "--batch-size", "1 <="),
    (["infer", "FILE", "FILE", "--out", "OUT", "--resolution", "1000000"], "--resolution", "8192"),
    (["build", "ROOT", "--resolution", "100000"], "--resolution", "<= 8192"),
    (["build", "ROOT", "--resolution", "1"], "--resolution", "16 <="),
    (["build", "ROOT", "--line-width", "1000000"], "--line-width", "<= 64"),
    (["build", "ROOT", "--threshold", "inf"], "--threshold", "<= 65535"),
    (["plan", "ROOT", "--sample", "0101", "--overlap", "0.9", "--size", "16"], "--overlap", "0.75"),
    (["plan", "ROOT", "--sample", "0101", "--size", "16"], "--size", "32 to 8192"),
    (["demo", "--out", "OUT", "--epochs", "0"], "--epochs", "greater than or equal to 1"),
    (["evaluate", "FILE", "--dataset", "ROOT", "--sigma", "inf"], "--sigma", "<= 50"),
    (["evaluate", "FILE", "--dataset", "ROOT", "--resolution", "99999"], "--resolution", "8192"),
    (
        ["report", "ROOT", "--out", "OUT/r.html", "--checkpoints", "OUT", "--resolution", "1e9"],
        "--resolution",
        "",
    ),
    (["merge", "ROOT", "--into", "OUT/m", "--name", "m", "--workers", "5000"], "--workers", "1024"),
    (
        ["merge", "ROOT", "--into", "OUT/m", "--name", "m", "--seed", "-1"],
        "--seed",
        "greater than or equal to 0",
    ),
]


@pytest.mark.parametrize(
    ("args", "option", "bound"),
    BAD_OPTIONS,
    ids=[" ".join(c[0][:1] + c[0][-2:]) for c in BAD_OPTIONS],
)
def test_bad_numeric_option_is_a_usage_error_naming_its_range(
    args: list[str], option: str, bound: str, tmp_path: Path, run_cli
) -> None:
    root = tmp_path / "root"
    shutil.copytree(FIXTURE_TREE, root)
    a_file = tmp_path / "a.png"
    a_file.write_bytes(b"")
    filled = [
        a.replace("ROOT", str(root)).replace("FILE", str(a_file)).replace("OUT", str(tmp_path))
        for a in args
    ]
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    code, out, err = run_cli(*filled)
    assert code == 2, (out, err)
    flat = " ".join(err.split())
    assert option in flat and bound in flat, flat
    assert "internal error" not in flat and "Traceback" not in err
    # Refused before any work: nothing was written.
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before


def test_usage_error_lists_every_bad_option_with_value_and_range() -> None:
    with pytest.raises(UsageError) as info:
        parse_options(ScoreParams, sigma=float("inf"), kernel_size=4)
    message = str(info.value)
    assert message.count("\n") == 0
    assert "--sigma inf" in message and "(allowed: 0 < value <= 50.0)" in message
    assert "--kernel-size 4: must be odd" in message


def test_allowed_range_reads_the_model_bounds() -> None:
    assert allowed_range(SweepOptions, "resolution") == "16 <= value <= 8192"
    assert allowed_range(SweepOptions, "batch_size") == "1 <= value <= 1024"
    assert allowed_range(SweepOptions, "device") is None


def test_repeated_sigma_is_named_as_the_option_people_type(tmp_path: Path, run_cli) -> None:
    code, _, err = run_cli(
        "evaluate", tmp_path, "--dataset", FIXTURE_TREE, "--sigma", "1", "--sigma", "1"
    )
    assert code == 2 and "--sigma" in err and "sigmas must differ" in err


def test_every_numeric_cli_option_has_finite_bounds() -> None:
    """Each int/float option is bounded by typer or by the option model it fills."""
    import typer.main

    from datatool.cli import app

    command = typer.main.get_command(app)
    unbounded = set()
    for name, sub in command.commands.items():
        for param in sub.params:
            numeric = str(param.bare_type()) in ("int", "float", "list[float]")
            if numeric and (param.min is None or param.max is None):
                unbounded.add(f"{name} {param.opts[0]}")
    # Bounded by the option model they fill, checked before any work (see BAD_OPTIONS).
    by_model = {
        "check --line-width", "check --max-offset", "check --workers",
        "build --line-width", "build --threshold", "build --resolution",
        "score --sigma", "score --kernel-size", "score --tophat-kernel-size", "score --tolerance",
        "infer --resolution", "infer --batch-size",
        "evaluate --resolution", "evaluate --sigma", "evaluate --kernel-size",
        "evaluate --tophat-kernel-size", "evaluate --tolerance", "evaluate --batch-size",
        "report --workers", "report --resolution", "merge --workers",
    }  # fmt: skip
    # --max-pixels is itself the memory budget of the reader (its own issue item).
    left = {o for o in unbounded - by_model if not o.endswith("--max-pixels")}
    assert sorted(o for o in left if not o.startswith(("train ", "grains "))) == []


# --------------------------------------------------------------------------- outputs


@pytest.mark.parametrize(
    "args",
    [
        ["report", "ROOT", "--out", "BLOCK/sub/report.html"],
        ["report", "ROOT", "--out", "OUT/r.html", "--json", "BLOCK/r.json"],
        ["score", "FILE", "--truth", "FILE", "--overlay", "BLOCK/overlays"],
        ["infer", "FILE", "FILE", "--out", "BLOCK/predictions"],
        ["evaluate", "FILE", "--dataset", "ROOT", "--out", "BLOCK/evaluation"],
        ["merge", "ROOT", "--into", "BLOCK/merged", "--name", "m"],
        ["plan", "ROOT", "--sample", "0101", "--out", "BLOCK/crops.json"],
    ],
    ids=lambda a: a[0],
)
def test_output_that_cannot_be_created_is_one_line_naming_it(
    args: list[str], tmp_path: Path, run_cli
) -> None:
    block = tmp_path / "a_file"  # a file where a folder would have to be: even root cannot
    block.write_text("not a folder")
    a_file = tmp_path / "a.png"
    a_file.write_bytes(b"")
    filled = [
        a.replace("ROOT", str(FIXTURE_TREE))
        .replace("FILE", str(a_file))
        .replace("BLOCK", str(block))
        .replace("OUT", str(tmp_path))
        for a in args
    ]
    code, out, err = run_cli(*filled)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and str(block) in err and "cannot be created" in err
    assert "internal error" not in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_output_under_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(UsageError, match="is not writable"):
            writable_output(locked / "out" / "report.html", "--out")
    finally:
        locked.chmod(0o755)


def test_os_error_with_a_file_name_is_one_line_not_an_internal_error(
    tmp_path: Path, run_cli
) -> None:
    block = tmp_path / "a_file"
    block.write_text("")
    code, _, err = run_cli("schema", "--out", block / "schemas")
    assert code == 1 and err.count("\n") == 1
    assert str(block) in err and "internal error" not in err


# --------------------------------------------------------------------------- plan files


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"boxes": [[0, 0, 128, 128]], "note": "\xff"}', "not UTF-8 text (byte 0xff"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
    ids=["latin-1 byte", "deep nesting"],
)
def test_unreadable_plan_file_is_one_line_naming_it(
    content: bytes, fragment: str, sample_tree: Path, run_cli
) -> None:
    from datatool.build import load_plan

    plan = sample_tree / "training" / "0101_training" / "aligned" / "crops.json"
    plan.write_bytes(content)
    with pytest.raises(DatatoolError) as info:
        load_plan(plan)
    assert fragment in str(info.value) and str(plan) in str(info.value)
    code, out, err = run_cli("build", sample_tree, "--sample", "0101", "--no-check")
    assert code == 1 and err.count("\n") == 1
    assert str(plan) in err and fragment in err and "internal error" not in err


# --------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize(
    "content",
    [b'{"epoch": 3, "loss": 0.2}\n', b"epoch,loss\n1,0.5\n", b"hello\n"],
    ids=["json", "csv", "word"],
)
def test_text_given_as_checkpoint_never_suggests_turning_safety_off(
    content: bytes, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from datatool.torch.checkpoints import read_state_dict

    path = tmp_path / "unet_3.pth"
    path.write_bytes(content)
    with pytest.raises(DatatoolError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert "not a readable torch checkpoint: a text file" in message
    assert "weights_only" not in message and "False" not in message


def test_pickled_code_is_refused_without_the_weights_only_hint(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import pickle

    from datatool.torch.checkpoints import read_state_dict

    path = tmp_path / "unet_3.pth"
    path.write_bytes(pickle.dumps(os.system))
    with pytest.raises(DatatoolError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert "could run code" in message
    assert "weights_only" not in message and "Re-running" not in message


# --------------------------------------------------------------------------- report


def test_not_held_out_explains_itself() -> None:
    from datatool.evaluate.reporting import _not_held_out

    assert _not_held_out("validation") is None
    assert _not_held_out("test") is None
    assert "training crops included" in _not_held_out(None)
    assert "--eval-split training" in _not_held_out("training")


@pytest.mark.slow
def test_report_checkpoints_without_validation_split_says_so(tmp_path: Path, run_cli) -> None:
    pytest.importorskip("torch")
    from tests.test_report import RESOLUTION, train_checkpoints

    tree = tmp_path / "training_only"
    shutil.copytree(FIXTURE_TREE, tree)
    shutil.rmtree(tree / "validation")
    checkpoints = train_checkpoints(tmp_path / "checkpoints")
    out = tmp_path / "r.html"
    code, stdout, err = run_cli(
        "report", tree, "--out", out, "--json", tmp_path / "r.json", "--markdown",
        tmp_path / "r.md", "--checkpoints", checkpoints, "--resolution", RESOLUTION,
        "--device", "cpu", "--workers", "1", "--fast",
    )  # fmt: skip
    assert code in (0, 1), err
    assert "warning: no validation split" in " ".join(err.split())
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["models"]["held_out"] is False and data["models"]["split"] is None
    assert "training crops included" in data["models"]["warning"]
    assert "no validation split" in out.read_text()
    assert "**Warning:** no validation split" in (tmp_path / "r.md").read_text()
