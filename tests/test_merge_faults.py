"""Merge faults: concurrent merges, files written into DEST meanwhile, killed runs, leftovers.

Also: a source whose merge manifest no longer matches its files, an empty
source, and split shares that differ from the ones asked.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from datatool import merge as merge_mod
from datatool import synth
from datatool.errors import DatatoolError
from datatool.layout import scan
from datatool.merge import MergeManifest, MergeOptions, Source, merge, verify

REPO = Path(__file__).resolve().parents[1]
FIXTURE_TREE = REPO / "fixtures" / "training_validation_data"
POSIX = pytest.mark.skipif(os.name != "posix", reason="needs fcntl locks and SIGKILL")


@pytest.fixture(scope="module")
def flat_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small flat set of new synthetic pairs (8 pairs, 2 samples)."""
    root = tmp_path_factory.mktemp("synthetic")
    small = dict(size=(160, 160), crop=96, crops_per_fov=2, fields_of_view=2)
    synth.write_tree(root / "tree", {"0501": "training", "0502": "training"}, seed=77, **small)
    flat = root / "flat"
    for pair in scan(root / "tree").pairs:
        for side, rel in (("image", pair.image), ("label", pair.label)):
            (flat / side).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / "tree" / rel, flat / side / f"{pair.name}.png")
    return flat


@pytest.fixture
def og(tmp_path: Path) -> Path:
    """A copy of the bundled tree (24 pairs of 3 samples)."""
    dest = tmp_path / "OG"
    shutil.copytree(FIXTURE_TREE, dest)
    return dest


def _options(**kwargs: object) -> MergeOptions:
    return MergeOptions(name="out", workers=1, **kwargs)


def _content(root: Path) -> set[tuple[str, str, str]]:
    """What a merged set holds: (name, image sha256, label sha256) per pair."""
    manifest = MergeManifest.model_validate_json((root / "manifest.json").read_text())
    return {(p.name, p.image_sha256, p.label_sha256) for p in manifest.pairs}


def _beside(dest: Path) -> list[str]:
    """Hidden leftovers of merges into ``dest`` (staging, retired folders, lock)."""
    return sorted(p.name for p in dest.parent.iterdir() if p.name.startswith(f".{dest.name}."))


def _on_copy(monkeypatch: pytest.MonkeyPatch, at: int, action) -> None:  # noqa: ANN001
    """Run ``action()`` just before the ``at``-th file copy of a merge."""
    real, count = merge_mod.copy_file, [0]

    def copy(source: Path, target: Path) -> None:
        count[0] += 1
        if count[0] == at:
            action()
        real(source, target)

    monkeypatch.setattr(merge_mod, "copy_file", copy)


# --------------------------------------------------------------------------- concurrency


@POSIX
def test_second_merge_into_the_same_dest_while_one_runs_is_refused(
    og: Path, flat_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "out"
    refusals: list[str] = []

    def second_merge() -> None:
        with pytest.raises(DatatoolError) as info:
            merge([Source(flat_source, "flat")], dest, _options())
        refusals.append(str(info.value))

    _on_copy(monkeypatch, 3, second_merge)
    result = merge([Source(og, "OG")], dest, _options())
    assert len(refusals) == 1
    assert "another merge into it is running" in refusals[0]
    assert str(merge_mod.lock_path(dest)) in refusals[0]
    assert len(result.manifest.pairs) == 24 and verify(dest)
    assert _beside(dest) == []


@pytest.mark.slow
@POSIX
def test_two_merges_started_at_once_exactly_one_succeeds(
    og: Path, flat_source: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    script = "import sys; from datatool.cli import main; main(sys.argv[1:])"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, "merge", str(source), "--into", str(dest),
             "--name", "out", "--workers", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for source in (og, flat_source)
    ]  # fmt: skip
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 1], outcomes
    (why,) = [err for code, err in outcomes if code == 1]
    assert "another merge into it is running" in why or "already exists" in why
    assert why.count("\n") == 1
    verify(dest)
    assert _beside(dest) == []


def test_a_folder_appearing_at_dest_during_a_merge_is_left_alone(
    og: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "out"

    def user_writes() -> None:
        dest.mkdir()
        (dest / "notes.txt").write_text("mine")

    _on_copy(monkeypatch, 5, user_writes)
    with pytest.raises(DatatoolError, match="appeared while this merge ran") as info:
        merge([Source(og, "OG")], dest, _options())
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]
    assert (dest / "notes.txt").read_text() == "mine"
    kept = tmp_path / str(info.value).split("is kept at ")[1].split(" (")[0]
    assert kept.parent == tmp_path and not kept.name.startswith(".")
    assert len(verify(kept).pairs) == 24
    # The kept result is not mistaken for a leftover by the next run.
    merge([Source(og, "OG")], tmp_path / "other", _options())
    assert kept.is_dir()


def test_a_file_written_into_dest_during_an_update_survives(
    og: Path, flat_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "out"
    merge([Source(og, "OG")], dest, _options())
    before = _content(dest)

    def user_writes() -> None:
        (dest / "notes.txt").write_text("mine")
        (dest / "training" / "image" / "extra.txt").write_text("also mine")

    _on_copy(monkeypatch, 2, user_writes)
    result = merge([Source(flat_source, "flat")], dest, _options(update=True))
    assert (dest / "notes.txt").read_text() == "mine"
    assert (dest / "training" / "image" / "extra.txt").read_text() == "also mine"
    assert before < _content(dest) and len(_content(dest)) == 24 + 8
    assert any("not in its manifest were kept" in w for w in result.warnings)
    assert _beside(dest) == []


# --------------------------------------------------------------------------- leftovers


def test_staging_folder_of_a_killed_merge_is_removed_and_reported(og: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    stale = tmp_path / ".out.tmp-k1ll3d_x"
    (stale / "image").mkdir(parents=True)
    (stale / "image" / "0101_1_1.png").write_bytes(b"\x89PNG half")
    merge_mod.lock_path(dest).write_text("")  # a dead run's lock file locks nothing
    other = tmp_path / ".outer.tmp-abcdefgh"  # another DEST's staging: not ours to touch
    other.mkdir()
    result = merge([Source(og, "OG")], dest, _options())
    assert not stale.exists() and other.exists()
    (note,) = [w for w in result.warnings if "staging folder of an interrupted merge" in w]
    assert str(stale) in note and "1 file(s)" in note
    assert _beside(dest) == []


def test_update_killed_between_its_renames_is_put_back(
    og: Path, flat_source: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    merge([Source(og, "OG")], dest, _options())
    before = _content(dest)
    os.rename(dest, tmp_path / ".out.old-abc123")
    (tmp_path / ".out.tmp-abc123").mkdir()
    result = merge([Source(flat_source, "flat")], dest, _options(update=True))
    assert any("put back the earlier merge" in w for w in result.warnings)
    assert before < _content(dest)
    assert _beside(dest) == []


# --------------------------------------------------------------------------- sources


def test_source_whose_manifest_does_not_match_is_merged_with_a_warning(
    og: Path, tmp_path: Path
) -> None:
    first = tmp_path / "first"
    merge([Source(og, "OG")], first, _options())
    edited = first / "training" / "image" / "0101_1_1.png"
    edited.write_bytes((og / "training/0102_training/aligned/image/0102_1_1.png").read_bytes())
    # 0101_1_1's image is now a copy of 0102_1_1: a different label, so conflicting truth.
    result = merge([Source(first, "first")], tmp_path / "second", _options(allow_errors=True))
    (warning,) = [w for w in result.warnings if "merge manifest does not match" in w]
    assert "source first" in warning and "0101_1_1.png" in warning


def test_changed_pair_of_a_merged_source_loses_its_recorded_lineage(
    og: Path, flat_source: Path, tmp_path: Path
) -> None:
    first = tmp_path / "first"
    merge([Source(flat_source, "flat")], first, _options())
    names = sorted(p.name for p in (first / "image").iterdir())
    shutil.copyfile(flat_source / "label" / names[1], first / "label" / names[0])
    result = merge([Source(first, "first")], tmp_path / "second", _options(allow_errors=True))
    lineage = {p.original_name: p.lineage for p in result.manifest.pairs}
    assert lineage[Path(names[0]).stem] == ["first", "out"]
    assert lineage[Path(names[1]).stem] == ["flat", "out", "out"]
    assert any("does not match" in w for w in result.warnings)


def test_empty_source_is_an_error_saying_what_was_looked_for(tmp_path: Path, run_cli) -> None:
    empty = tmp_path / "masks_folder"
    (empty / "images").mkdir(parents=True)
    (empty / "masks").mkdir()
    (empty / "images" / "a.png").write_bytes(b"")
    with pytest.raises(DatatoolError, match="source e: no image/label pairs") as info:
        merge([Source(empty, "e")], tmp_path / "out", _options())
    assert "images/" in str(info.value) and "masks/" in str(info.value)
    code, out, err = run_cli("merge", empty, "--into", tmp_path / "out", "--name", "out")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "name them image/ and label/" in err and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- split shares


def test_split_share_far_from_the_asked_one_is_reported(og: Path, tmp_path: Path) -> None:
    # Three samples of 8 pairs: 10% asked can only be 0% or 33%.
    result = merge([Source(og, "OG")], tmp_path / "out", _options(split=("validation", 0.1)))
    shares = {s.split: (s.pairs, round(s.share, 3), s.asked) for s in result.split_shares}
    assert shares == {"validation": (8, 0.333, 0.1), "training": (16, 0.667, 0.9)}
    assert len(result.warnings) == 2
    assert "validation holds 8 of 24 pairs (33%), asked 10%" in result.warnings[0]
    assert "3 sample group(s)" in result.warnings[0]


def test_split_share_within_one_pair_is_not_a_warning(og: Path, tmp_path: Path, run_cli) -> None:
    code, out, err = run_cli(
        "merge", og, "--into", tmp_path / "out", "--name", "out", "--split", "validation=0.3",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    import json

    data = json.loads(out)
    assert data["warnings"] == []
    assert [(s["split"], s["pairs"]) for s in data["split_shares"]] == [
        ("validation", 8),
        ("training", 16),
    ]


# --------------------------------------------------------------------------- SIGKILL

_KILLER = textwrap.dedent(
    """
    import os, shutil, signal, sys
    from pathlib import Path
    from datatool.merge import MergeOptions, Source, merge
    limit, count = int(sys.argv[1]), [0]
    def counted(fn):
        def wrapper(*args, **kwargs):
            count[0] += 1
            if count[0] == limit:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)
        return wrapper
    for name in ("rename", "replace", "link", "unlink", "rmdir", "mkdir"):
        setattr(os, name, counted(getattr(os, name)))
    shutil.copyfile = counted(shutil.copyfile)
    update = sys.argv[3] == "update"
    options = MergeOptions(name="out", workers=1, update=update)
    merge([Source(Path(sys.argv[4]), "src")], sys.argv[2], options)
    print(count[0])
    """
)


def _killed_merge(limit: int, dest: Path, mode: str, source: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _KILLER, str(limit), str(dest), mode, str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _rerun(dest: Path, source: Path, update: bool) -> None:
    try:
        merge([Source(source, "src")], dest, _options(update=update))
    except DatatoolError as exc:  # the killed run had finished publishing
        assert not update and "already exists" in str(exc)


@pytest.mark.slow
@POSIX
@pytest.mark.parametrize("mode", ["fresh", "update"])
def test_merge_killed_at_random_points_then_rerun_is_complete_and_verified(
    mode: str, og: Path, flat_source: Path, tmp_path: Path
) -> None:
    update = mode == "update"
    source = flat_source if update else og
    reference = tmp_path / "reference" / "out"
    if update:
        merge([Source(og, "src")], reference, _options())
    merge([Source(source, "src")], reference, _options(update=update))
    expected = _content(reference)
    setup = tmp_path / "setup" / "out"
    setup.parent.mkdir()
    if update:
        merge([Source(og, "src")], setup, _options())

    def prepared(name: str) -> Path:
        shutil.copytree(setup.parent, tmp_path / name, copy_function=shutil.copyfile)
        return tmp_path / name / "out"

    counting = _killed_merge(0, prepared("count"), mode, source)
    assert counting.returncode == 0, counting.stderr
    total = int(counting.stdout.split()[-1])
    rng = random.Random(1306 + update)
    points = sorted({*rng.sample(range(1, total + 1), 3), total - 1, total})
    for limit in points:
        dest = prepared(f"kill{limit}")
        killed = _killed_merge(limit, dest, mode, source)
        assert killed.returncode == -9, (limit, killed.stderr)
        if dest.exists():  # never a half-written DEST: the earlier or the new merge, verified
            assert len(verify(dest).pairs) in ((24, 24 + 8) if update else (24,))
        _rerun(dest, source, update)
        assert _content(dest) == expected, limit
        verify(dest)
        assert _beside(dest) == [], limit


_BUILD_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from datatool import build
    limit, count = int(sys.argv[1]), [0]
    real = os.replace
    def replace(src, dst):
        count[0] += 1
        if count[0] == limit:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst)
    os.replace = replace
    build.build(sys.argv[2])
    print(count[0])
    """
)


@pytest.mark.slow
@POSIX
def test_build_killed_at_random_points_then_rebuilt_matches_the_bundled_crops(
    tmp_path: Path,
) -> None:
    from datatool.build import build

    def originals_only(where: Path) -> Path:
        shutil.copytree(FIXTURE_TREE, where)
        for crop in [*where.rglob("image/*.png"), *where.rglob("label/*.png")]:
            crop.unlink()
        return where

    def crops(root: Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*.png"))
            if p.parent.name in ("image", "label")
        }

    expected = crops(FIXTURE_TREE)
    run = [sys.executable, "-c", _BUILD_KILLER]
    counting = subprocess.run(
        [*run, "0", str(originals_only(tmp_path / "count"))], capture_output=True, text=True
    )
    assert counting.returncode == 0, counting.stderr
    total = int(counting.stdout.split()[-1])
    for limit in sorted(random.Random(1307).sample(range(1, total + 1), 3)):
        root = originals_only(tmp_path / f"kill{limit}")
        killed = subprocess.run([*run, str(limit), str(root)], capture_output=True, timeout=300)
        assert killed.returncode == -9, killed.stderr
        # Every crop under its own name is complete: byte-identical to the bundled one.
        assert all(expected[rel] == data for rel, data in crops(root).items()), limit
        build(root)
        assert crops(root) == expected, limit
        assert not [p for p in root.rglob("*.tmp")], limit
