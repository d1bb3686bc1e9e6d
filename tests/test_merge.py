"""Merging: counts, no overwrite, duplicates, conflicts, lineage, atomicity, group split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from datatool import io, synth
from datatool import merge as merge_mod
from datatool.errors import DatatoolError, UsageError
from datatool.info import describe
from datatool.layout import scan
from datatool.merge import (
    MergeManifest,
    MergeOptions,
    Source,
    group_split,
    merge,
    parse_split,
    verify,
)
from tests.conftest import FIXTURE_TREE

# Pairs of the fixture copied byte for byte into the "new" flat set, and re-encoded.
COPIED = ["0101_1_3", "0101_2_4", "0102_2_3", "0201_1_4"]
REENCODED = {"0102_1_1": "reenc_a", "0201_2_2": "reenc_b"}


def _fixture_pair(name: str) -> tuple[Path, Path]:
    (image,) = FIXTURE_TREE.glob(f"*/*/aligned/image/{name}.png")
    return image, image.parent.parent / "label" / image.name


def _flat_from_tree(tree: Path, flat: Path, rename: dict[str, str] | None = None) -> None:
    for pair in scan(tree).pairs:
        stem = (rename or {}).get(pair.name, pair.name)
        for side, rel in (("image", pair.image), ("label", pair.label)):
            (flat / side).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tree / rel, flat / side / f"{stem}.png")


def _reencode(source: Path, target: Path) -> None:
    with Image.open(source) as img:
        img.save(target, format="PNG", compress_level=1)
    assert io.sha256_file(source) != io.sha256_file(target)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small synthetic trees with new content: 0101 collides with the fixture's names."""
    root = tmp_path_factory.mktemp("synthetic")
    small = dict(size=(160, 160), crop=96, crops_per_fov=2, fields_of_view=1)
    synth.write_tree(root / "new", {"0101": "training", "0301": "training"}, seed=901, **small)
    synth.write_tree(root / "grae", {"0401": "training"}, seed=950, **small)
    return root


@pytest.fixture
def sources(tmp_path: Path, synthetic: Path) -> dict[str, Path]:
    """OG (tree copy of the fixture), new (flat, sharing names and pairs), grae (flat)."""
    og = tmp_path / "OG"
    shutil.copytree(FIXTURE_TREE, og)
    new = tmp_path / "new"
    _flat_from_tree(synthetic / "new", new)  # 0101_1_1, 0101_1_2 (collide), 0301_1_1, 0301_1_2
    for name in COPIED:
        image, label = _fixture_pair(name)
        shutil.copyfile(image, new / "image" / image.name)
        shutil.copyfile(label, new / "label" / label.name)
    for name, new_name in REENCODED.items():
        image, label = _fixture_pair(name)
        _reencode(image, new / "image" / f"{new_name}.png")
        _reencode(label, new / "label" / f"{new_name}.png")
    grae = tmp_path / "grae"
    _flat_from_tree(synthetic / "grae", grae, rename={"0401_1_1": "0301_1_1"})
    return {"OG": og, "new": new, "grae": grae}


def _options(name: str, **kwargs: object) -> MergeOptions:
    return MergeOptions(name=name, workers=1, **kwargs)


def _manifest(root: Path) -> MergeManifest:
    return MergeManifest.model_validate_json((root / "manifest.json").read_text())


def _input_pairs(root: Path) -> set[str]:
    return {p.image or p.label for p in scan(root).pairs}


def _assert_accounts_for_every_input(manifest: MergeManifest, sources: dict[str, Path]) -> None:
    for tag, root in sources.items():
        taken = {p.source_image for p in manifest.pairs if p.source_tag == tag}
        dropped = {d.dropped.image for d in manifest.duplicates if d.dropped.source_tag == tag}
        refused = {r.name for r in manifest.refused if r.source_tag == tag}
        names = {Path(p).stem for p in _input_pairs(root) - taken - dropped}
        assert names == refused, f"{tag}: pairs neither taken, de-duplicated nor refused"
        assert not taken & dropped


# --------------------------------------------------------------------------- counts


def test_merge_counts_renames_and_deduplicates(sources: dict[str, Path], tmp_path: Path) -> None:
    picked = {k: sources[k] for k in ("OG", "new")}
    result = merge(
        [Source(p, t) for t, p in picked.items()], tmp_path / "Gong_sum", _options("Gong_sum")
    )
    counts = result.run_counts
    assert counts["OG"].model_dump() == dict(
        input=24, taken=24, renamed=0, deduplicated=0, refused=0
    )
    # new: 4 synthetic pairs (2 with colliding names) + 4 copies + 2 re-encoded copies.
    assert counts["new"].model_dump() == dict(
        input=10, taken=4, renamed=2, deduplicated=6, refused=0
    )
    manifest = _manifest(tmp_path / "Gong_sum")
    assert len(manifest.pairs) == 28
    renamed = {p.original_name: p.name for p in manifest.pairs if p.renamed}
    assert renamed == {"0101_1_1": "0101-new_1_1", "0101_1_2": "0101-new_1_2"}
    by_bytes = {d.dropped.image: d.identical_bytes for d in manifest.duplicates}
    assert by_bytes == {
        **{f"image/{n}.png": True for n in COPIED},
        **{f"image/{n}.png": False for n in REENCODED.values()},
    }
    _assert_accounts_for_every_input(manifest, picked)


def test_no_output_file_is_overwritten(sources: dict[str, Path], tmp_path: Path) -> None:
    picked = {k: sources[k] for k in ("OG", "new")}
    dest = tmp_path / "out"
    merge([Source(p, t) for t, p in picked.items()], dest, _options("out"))
    manifest = _manifest(dest)
    for pair in manifest.pairs:
        root = picked[pair.source_tag]
        assert io.sha256_file(dest / pair.image) == io.sha256_file(root / pair.source_image)
        assert io.sha256_file(dest / pair.label) == io.sha256_file(root / pair.source_label)
    # Both contents behind the colliding name 0101_1_1 survive.
    og_image, _ = _fixture_pair("0101_1_1")
    hashes = {io.sha256_file(p) for p in (dest / "image").glob("0101*_1_1.png")}
    hashes |= {io.sha256_file(p) for p in dest.glob("*/image/0101*_1_1.png")}
    assert io.sha256_file(og_image) in hashes
    assert io.sha256_file(sources["new"] / "image" / "0101_1_1.png") in hashes
    assert verify(dest) == manifest


def test_source_splits_are_kept_without_split_option(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    merge([Source(sources["OG"], "OG"), Source(sources["new"], "new")], dest, _options("out"))
    splits = {p.split for p in _manifest(dest).pairs}
    assert splits == {"training", "validation", None}
    assert (dest / "validation" / "image" / "0201_1_1.png").is_file()
    assert (dest / "image" / "0301_1_1.png").is_file()


# --------------------------------------------------------------------------- lineage


def test_chained_merge_keeps_lineage(sources: dict[str, Path], tmp_path: Path) -> None:
    gong = tmp_path / "Gong_sum"
    merge([Source(sources["OG"], "OG"), Source(sources["new"], "new")], gong, _options("Gong_sum"))
    gg = tmp_path / "GG_sum"
    result = merge(
        [Source(gong, "Gong_sum"), Source(sources["grae"], "Grae_nuevo")], gg, _options("GG_sum")
    )
    manifest = _manifest(gg)
    lineages = {p.name: p.lineage for p in manifest.pairs}
    assert lineages["0102_1_3"] == ["OG", "Gong_sum", "GG_sum"]
    assert lineages["0101-new_1_1"] == ["new", "Gong_sum", "GG_sum"]
    # grae's 0301_1_1 collides with new's 0301_1_1 (inside Gong_sum): renamed, own lineage.
    assert lineages["0301-Grae_nuevo_1_1"] == ["Grae_nuevo", "GG_sum"]
    assert result.run_counts["Gong_sum"].taken == 28
    assert result.run_counts["Grae_nuevo"].model_dump() == dict(
        input=2, taken=2, renamed=1, deduplicated=0, refused=0
    )
    # The split group of a renamed pair is still its original sample.
    groups = {p.name: p.group for p in manifest.pairs}
    assert groups["0101-new_1_1"] == "0101"
    info = describe(gg)
    assert info.per_lineage == {
        "OG > Gong_sum > GG_sum": 24,
        "new > Gong_sum > GG_sum": 4,
        "Grae_nuevo > GG_sum": 2,
    }
    assert info.manifest_matches is True


# --------------------------------------------------------------------------- refusals


def test_conflicting_truth_names_both_sources(sources: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    (bad / "image").mkdir(parents=True)
    (bad / "label").mkdir()
    image, _ = _fixture_pair("0102_2_2")
    _, other_label = _fixture_pair("0102_2_1")
    shutil.copyfile(image, bad / "image" / "x.png")
    shutil.copyfile(other_label, bad / "label" / "x.png")
    dest = tmp_path / "out"
    with pytest.raises(DatatoolError, match="conflicting-truth") as info:
        merge([Source(sources["OG"], "OG"), Source(bad, "bad")], dest, _options("out"))
    message = str(info.value)
    assert "OG:training/0102_training/aligned/image/0102_2_2.png" in message
    assert "bad:image/x.png" in message
    assert not dest.exists()

    result = merge(
        [Source(sources["OG"], "OG"), Source(bad, "bad")], dest, _options("out", allow_errors=True)
    )
    assert not result.ok
    assert result.run_counts["bad"].refused == 1
    assert result.manifest.conflicts[0].refused.source_tag == "bad"


def test_source_with_errors_is_refused_with_its_errors(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    new = sources["new"]
    (new / "label" / "0301_1_2.png").unlink()
    dest = tmp_path / "out"
    with pytest.raises(DatatoolError, match="refusing to merge") as info:
        merge([Source(sources["OG"], "OG"), Source(new, "new")], dest, _options("out"))
    assert "new (" in str(info.value) and "0301_1_2" in str(info.value)
    assert not dest.exists()
    result = merge([Source(new, "new")], dest, _options("out", allow_errors=True))
    assert result.run_counts["new"].refused == 1
    assert result.run_counts["new"].input == 10
    _assert_accounts_for_every_input(_manifest(dest), {"new": new})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a/b=X", ("a/b", "X")), ("a/folder", ("a/folder", "folder")), ("a=b/c", ("a=b/c", "c"))],
)
def test_source_parse(text: str, expected: tuple[str, str]) -> None:
    source = Source.parse(text)
    assert (str(source.path), source.tag) == expected


@pytest.mark.parametrize("text", ["validation", "validation=0", "validation=1.5", "training=0.1"])
def test_bad_split_spec(text: str) -> None:
    with pytest.raises(UsageError):
        parse_split(text)


def test_dest_inside_source_and_repeated_tags_refused(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="inside"):
        merge([Source(sources["OG"], "OG")], sources["OG"] / "out", _options("x"))
    with pytest.raises(UsageError, match="twice"):
        merge(
            [Source(sources["OG"], "a"), Source(sources["new"], "a")], tmp_path / "o", _options("x")
        )


# --------------------------------------------------------------------------- atomicity


def _snapshot(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): io.sha256_file(p) for p in root.rglob("*") if p.is_file()
    }


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    real = merge_mod.copy_file
    seen = {"n": 0}

    def flaky(source: Path, target: Path) -> None:
        seen["n"] += 1
        if seen["n"] > calls:
            raise KeyboardInterrupt("simulated interruption")
        real(source, target)

    monkeypatch.setattr(merge_mod, "copy_file", flaky)


def test_interrupted_merge_leaves_no_dest(
    sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "out"
    _interrupt_after(monkeypatch, 7)
    with pytest.raises(KeyboardInterrupt):
        merge([Source(sources["OG"], "OG"), Source(sources["new"], "new")], dest, _options("out"))
    assert not dest.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_existing_dest_refused_and_interrupted_update_leaves_it_unchanged(
    sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "out"
    merge([Source(sources["OG"], "OG")], dest, _options("out"))
    before = _snapshot(dest)
    with pytest.raises(DatatoolError, match="already exists"):
        merge([Source(sources["new"], "new")], dest, _options("out"))
    _interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        merge([Source(sources["new"], "new")], dest, _options("out", update=True))
    assert _snapshot(dest) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_update_adds_new_pairs_and_keeps_old(sources: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "out"
    merge([Source(sources["OG"], "OG")], dest, _options("out"))
    before = _snapshot(dest)
    result = merge([Source(sources["new"], "new")], dest, _options("out", update=True))
    after = _snapshot(dest)
    assert all(after[rel] == digest for rel, digest in before.items() if rel != "manifest.json")
    assert result.run_counts["new"].taken == 4
    manifest = _manifest(dest)
    assert len(manifest.pairs) == 28
    assert len(manifest.previous_runs) == 1
    assert set(manifest.counts) == {"OG", "new"}
    _assert_accounts_for_every_input(manifest, {"OG": sources["OG"], "new": sources["new"]})


# --------------------------------------------------------------------------- split


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_group_split_never_puts_a_sample_on_both_sides(
    sources: dict[str, Path], tmp_path: Path, seed: int
) -> None:
    dest = tmp_path / "out"
    options = _options("out", split=("validation", 0.3), seed=seed)
    merge([Source(sources["OG"], "OG"), Source(sources["new"], "new")], dest, options)
    manifest = _manifest(dest)
    sides: dict[str, set[str]] = {}
    for pair in manifest.pairs:
        sample = pair.original_name.split("_")[0]
        sides.setdefault(sample, set()).add(pair.split)
        assert pair.image.startswith(f"{pair.split}/image/")
    assert all(len(s) == 1 for s in sides.values()), sides
    assert {s for v in sides.values() for s in v} == {"training", "validation"}
    assert manifest.parameters.split == {"validation": 0.3}
    assert manifest.parameters.seed == seed
    # The same seed gives the same split.
    again = tmp_path / "again"
    merge([Source(sources["OG"], "OG"), Source(sources["new"], "new")], again, options)
    assert {p.name: p.split for p in _manifest(again).pairs} == {
        p.name: p.split for p in manifest.pairs
    }


@pytest.mark.parametrize(
    ("groups", "fraction"),
    [({"a": 5}, 0.5), ({"a": 1, "b": 1}, 0.1), ({f"g{i}": i + 1 for i in range(20)}, 0.2)],
)
def test_group_split_assigns_whole_groups(groups: dict[str, int], fraction: float) -> None:
    assignment = group_split(groups, "validation", fraction, seed=3)
    assert set(assignment) == set(groups)
    held = sum(n for g, n in groups.items() if assignment[g] == "validation")
    if len(groups) > 1:
        assert 0 < held < sum(groups.values())
        assert held >= round(fraction * sum(groups.values()))


# --------------------------------------------------------------------------- tree layout


def test_tree_layout_output_passes_the_check(sources: dict[str, Path], tmp_path: Path) -> None:
    from datatool.check import run_check
    from datatool.checks import CheckOptions

    dest = tmp_path / "out"
    merge([Source(sources["OG"], "OG")], dest, _options("out", layout="tree"))
    assert (dest / "training/0101_training/aligned/0101_trace.png").is_file()
    report = run_check(dest, CheckOptions(alignment=False, workers=1))
    assert report.ok, report.errors()
    with pytest.raises(DatatoolError, match="--layout tree needs"):
        merge(
            [Source(sources["new"], "new")],
            tmp_path / "t2",
            _options("t2", layout="tree", allow_errors=True),
        )
    assert not (tmp_path / "t2").exists()


# --------------------------------------------------------------------------- CLI


def test_cli_merge_and_info_end_to_end(sources: dict[str, Path], tmp_path: Path, run_cli) -> None:
    dest = tmp_path / "Gong_sum"
    code, out, _ = run_cli(
        "merge", f"{sources['OG']}=OG", sources["new"], "--into", dest, "--name", "Gong_sum",
        "--workers", "1", "--json",
    )  # fmt: skip
    assert code == 0
    printed = json.loads(out)
    assert printed["counts"] == {t: c.model_dump() for t, c in _manifest(dest).counts.items()}
    code, out, _ = run_cli("info", dest, "--json")
    assert code == 0
    assert json.loads(out) == json.loads(describe(dest).model_dump_json())
    code, _, err = run_cli("merge", sources["OG"], "--into", dest, "--name", "again")
    assert code == 1 and "already exists" in err
    code, out, _ = run_cli("info", dest)
    assert code == 0 and "OG > Gong_sum" in out
