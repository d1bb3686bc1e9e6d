"""Defects found in a reviewer's pass over the dataset side (build, check, merge, grains).

Each test is built on data shaped like the lab's (the fixture tree: grey noisy Voronoi
micrographs, 3-px labels cut from a GIMP-like tracing) and fails without its fix.
"""

from __future__ import annotations

import json
from pathlib import Path

from datatool import io

T = "training/0102_training/aligned"


def test_crop_kept_as_edited_by_a_rebuild_is_re_proven_by_pixels(
    sample_tree: Path, run_cli
) -> None:
    """A rebuild keeps an edited label and records its new sha256 beside the plan's box.

    That box is not where the edited file came from, so the check must not take it on
    trust (the manifest fast path): the label cut 6 px higher is still found misaligned.
    """
    from datatool.crop import cut
    from datatool.labels import process_tracing

    stem = "0102_2_3"  # a pair the fast path would not re-prove by pixels
    code, _, _ = run_cli("build", sample_tree, "--no-check")
    assert code == 0
    plan = json.loads((sample_tree / T / "crops.json").read_text())["boxes"]
    left, top, width, height = plan[2]
    tracing = io.read_grey(sample_tree / T / "0102_trace.png")[:-24]
    label_rel = f"{T}/label/{stem}.png"
    io.write_png(
        sample_tree / label_rel, cut(process_tracing(tracing, 3), (left, top - 6, width, height))
    )
    code, out, _ = run_cli("build", sample_tree, "--no-check")
    assert code == 0 and "kept" in out
    entries = json.loads((sample_tree / "manifest.json").read_text())["entries"]
    assert [e["edited"] for e in entries if e["output"] == label_rel] == [True]
    code, out, _ = run_cli("check", sample_tree, "--json", "--workers", "1")
    found = [f for f in json.loads(out)["findings"] if f["code"] == "misaligned"]
    assert code == 1 and [f["path"] for f in found] == [label_rel]
    assert found[0]["measured"] == [0.0, -6.0]


def test_grains_reads_a_tracing_drawn_on_a_transparent_layer(tmp_path: Path) -> None:
    """GIMP's export of black lines on a transparent layer: RGB one flat black, alpha the lines.

    ``datatool check`` and ``build`` read it as the drawing; ``datatool grains`` read the
    flat RGB alone and reported an empty tracing.
    """
    import numpy as np
    from PIL import Image

    from datatool import grains, synth

    tracing = synth.make_sample(5, (192, 192), 26.0, 1, strip=0).tracing  # black lines on white
    flat = tmp_path / "0301_trace.png"
    layer = tmp_path / "0301_trace_layer.png"
    Image.fromarray(tracing).save(flat)
    black = np.zeros_like(tracing)
    rgba = np.dstack([black, black, black, 255 - tracing]).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(layer)
    expected, _ = grains.measure_file(str(flat))
    measured, _ = grains.measure_file(str(layer))
    assert expected.grains > 5
    assert measured.grains == expected.grains


def test_a_malformed_plan_does_not_call_the_crops_stale(sample_tree: Path, run_cli) -> None:
    """A box with three numbers is a broken plan (build refuses it), not an older one.

    The check counted its one entry and told the user to delete the crops 2-4 of both
    fields of view, which the plan's author meant to keep.
    """
    plan = sample_tree / T / "crops.json"
    plan.write_text('{"boxes": [[0, 0, 128]]}\n')
    code, out, _ = run_cli("check", sample_tree, "--json", "--fast")
    assert [f for f in json.loads(out)["findings"] if f["code"] == "stale-crop"] == []
    code, _, err = run_cli("build", sample_tree, "--no-check")
    assert code != 0 and "crops.json" in err


def test_merge_compares_labels_as_drawn_so_an_alpha_drawn_copy_is_a_duplicate(
    tmp_path: Path,
) -> None:
    """A label exported with its lines only in the alpha channel is the same truth, not another."""
    import shutil

    import numpy as np
    from PIL import Image

    from datatool.merge import MergeOptions, Source, merge
    from tests.conftest import FIXTURE_TREE

    (image,) = FIXTURE_TREE.glob("*/*/aligned/image/0102_2_2.png")
    (label,) = FIXTURE_TREE.glob("*/*/aligned/label/0102_2_2.png")
    plain, alpha = tmp_path / "plain", tmp_path / "alpha"
    for folder in (plain, alpha):
        (folder / "image").mkdir(parents=True)
        (folder / "label").mkdir()
        shutil.copyfile(image, folder / "image" / "x.png")
    shutil.copyfile(label, plain / "label" / "x.png")
    lines = np.asarray(Image.open(label).convert("L"))
    rgba = np.zeros((*lines.shape, 4), np.uint8)
    rgba[..., 3] = lines  # black everywhere, the drawing only in alpha
    Image.fromarray(rgba, "RGBA").save(alpha / "label" / "x.png")

    result = merge(
        [Source(plain, "plain"), Source(alpha, "alpha")],
        tmp_path / "out",
        MergeOptions(name="out", allow_errors=True),
    )
    assert result.manifest.conflicts == []
    assert result.run_counts["alpha"].deduplicated == 1


def test_plan_preview_must_be_named_png(run_cli, sample_tree: Path, tmp_path: Path) -> None:
    code, _, err = run_cli(
        "plan", sample_tree, "--sample", "0101", "--preview", tmp_path / "plan.jpg"
    )
    assert code == 2
    assert "plan.jpg" in err and "*.png" in err
    assert not (tmp_path / "plan.jpg").exists()


def test_grains_measures_the_good_files_and_names_the_bad_one(run_cli, tmp_path: Path) -> None:
    from tests.conftest import FIXTURE_TREE

    (tracing,) = FIXTURE_TREE.glob("training/0101_training/aligned/0101_trace.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    code, out, err = run_cli("grains", broken, tracing, "--json")
    assert code == 1
    assert "broken.png" in err
    import json

    measured = json.loads(out)
    assert [m["file"] for m in measured] == [str(tracing)]
    assert measured[0]["grains"] > 0
