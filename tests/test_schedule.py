"""The scheduler: local and Dask runs give the same findings and metrics, in the same order."""

from __future__ import annotations

import builtins
import csv
import json

import pytest

from datatool import schedule
from datatool.errors import UsageError

distributed = pytest.importorskip("distributed")


def _square(x: int) -> int:
    return x * x


@pytest.fixture(scope="module")
def cluster():
    """A two-worker Dask cluster in this process (threads, no worker processes)."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as running:
        yield running


def test_parse_scheduler_accepts_local_dask_and_addresses():
    assert schedule.parse_scheduler("local") == "local"
    assert schedule.parse_scheduler(" dask ") == "dask"
    assert schedule.parse_scheduler("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    with pytest.raises(UsageError, match="expected local, dask or a scheduler address"):
        schedule.parse_scheduler("10.0.0.5:8786")


@pytest.mark.parametrize("spec", ["local", "address"])
def test_map_keeps_the_order_of_the_items(spec, cluster):
    spec = cluster.scheduler_address if spec == "address" else spec
    with schedule.Scheduler(spec) as running:
        assert list(running.map(_square, range(20), window=3)) == [x * x for x in range(20)]


def test_dask_local_cluster_is_started_and_closed():
    with schedule.scheduler("dask", workers=2, processes=False) as running:
        assert list(running.map(_square, [3, 4])) == [9, 16]
        client = running._client
        assert len(client.nthreads()) == 2
    assert client.status == "closed"


def test_missing_dask_names_the_extra(monkeypatch, sample_tree, run_cli):
    real_import = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    with pytest.raises(UsageError, match=r'pip install "datatool\[dask\]"'):
        with schedule.Scheduler("dask"):
            pass
    code, out, err = run_cli("check", str(sample_tree), "--fast", "--scheduler", "dask")
    assert code == 2
    assert 'pip install "datatool[dask]"' in out + err


def _damage(tree) -> None:
    """Give the tree findings in two samples: a label rolled by 4 px, an inverted label."""
    import numpy as np

    from datatool import io

    labels = sorted(tree.rglob("label/*.png"))
    shifted, inverted = labels[0], labels[-1]
    pixels = io.read_image(shifted).pixels
    io.write_png(shifted, np.roll(pixels, 4, axis=1))
    io.write_png(inverted, 255 - io.read_image(inverted).pixels)


def _findings(report: dict) -> list[tuple]:
    return [(f["code"], f["path"], f["message"]) for f in report["findings"]]


def test_check_on_dask_gives_the_plain_findings_in_order(sample_tree, run_cli, cluster):
    _damage(sample_tree)
    code_plain, plain, _ = run_cli("check", str(sample_tree), "--json", "--workers", "1")
    code_dask, on_dask, _ = run_cli(
        "check", str(sample_tree), "--json", "--scheduler", cluster.scheduler_address
    )
    assert code_plain == code_dask
    plain_report, dask_report = json.loads(plain), json.loads(on_dask)
    assert _findings(dask_report) == _findings(plain_report)
    codes = {code for code, _, _ in _findings(plain_report)}
    assert "inverted" in codes and len(codes) >= 2, codes  # findings of two samples to order
    assert dask_report["pairs"] == plain_report["pairs"]


def test_check_library_takes_an_open_scheduler(sample_tree, cluster):
    from datatool.check import run_check
    from datatool.checks import CheckOptions

    _damage(sample_tree)
    options = CheckOptions(workers=1, alignment=False)
    plain = run_check(sample_tree, options)
    with schedule.Scheduler(cluster.scheduler_address) as running:
        on_dask = run_check(sample_tree, options, scheduler=running)
    assert [f.model_dump() for f in on_dask.findings] == [f.model_dump() for f in plain.findings]
    assert {f.code for f in plain.findings} >= {"inverted"}


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """Three width-2 U-Net checkpoints, one 64 px image and its truth label."""
    import torch

    from datatool.synth import write_tree
    from datatool.torch.unet import UNet

    root = tmp_path_factory.mktemp("sweep")
    data = write_tree(
        root / "data", {"0101": "validation"}, size=(80, 80), crop=64, crops_per_fov=1,
        fields_of_view=1, grain_px=16.0,
    )  # fmt: skip
    folder = root / "ckpt"
    folder.mkdir()
    for epoch in (1, 2, 3):
        torch.manual_seed(epoch)
        torch.save(UNet(base_width=2).state_dict(), folder / f"run_{epoch}.pth")
    image = next(data.rglob("image/*.png"))
    return folder, image, image.parent.parent / "label" / image.name


def _rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_evaluate_on_dask_writes_the_plain_metrics(tmp_path, run_cli, cluster, tiny_checkpoints):
    checkpoints, image, truth = tiny_checkpoints
    common = ["--image", str(image), "--truth", str(truth), "--resolution", "32"]
    common += ["--device", "cpu", "--batch-size", "2", "--no-cache", "--grains"]
    code, out, err = run_cli("evaluate", str(checkpoints), *common, "--out", str(tmp_path / "a"))
    assert code == 0, out + err
    code, out, err = run_cli(
        "evaluate", str(checkpoints), *common, "--out", str(tmp_path / "b"),
        "--scheduler", cluster.scheduler_address,
    )  # fmt: skip
    assert code == 0, out + err
    plain, on_dask = _rows(tmp_path / "a" / "metrics.csv"), _rows(tmp_path / "b" / "metrics.csv")
    assert [r["epoch"] for r in on_dask] == [r["epoch"] for r in plain]
    assert len(plain) == 3 * 1 + 3  # three checkpoints x one image, then three means
    for a, b in zip(plain, on_dask, strict=True):
        for key, value in a.items():
            if key in ("kind", "checkpoint", "image", "epoch", "images") or "" in (value, b[key]):
                assert b[key] == value, key  # grain columns are empty where undefined
            else:
                assert float(b[key]) == pytest.approx(float(value), rel=1e-3, abs=1e-9), key


def test_report_runs_its_check_on_dask(sample_tree, tmp_path, run_cli, cluster):
    _damage(sample_tree)
    args = ["report", str(sample_tree), "--fast", "--samples", "0"]
    code_plain, _, _ = run_cli(*args, "--out", tmp_path / "a.html", "--json", tmp_path / "a.json")
    code_dask, out, err = run_cli(
        *args, "--out", tmp_path / "b.html", "--json", tmp_path / "b.json",
        "--scheduler", cluster.scheduler_address,
    )  # fmt: skip
    assert code_dask == code_plain == 1, out + err
    plain = json.loads((tmp_path / "a.json").read_text())["check"]
    on_dask = json.loads((tmp_path / "b.json").read_text())["check"]
    assert _findings(on_dask) == _findings(plain)
