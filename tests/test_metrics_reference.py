"""Tests for progrow.metrics.reference (`real_vs_real`) and the real-vs-real column of `progrow metrics`.

The reference of a metric is the metric's own code run on two disjoint sets of reals, so SWD and MS-SSIM
are compared exactly with direct calls on those sets, and FID with the generator path fed the same images
(one FID test: Inception costs ~0.15 s per image here). The cache is checked by making the metric code
raise on a second call, by file names and modification times.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import progrow as pg
from progrow.adapters.cli import main as progrow_main
from progrow.data import MultiResDataset, build_cache
from progrow.metrics import (
    METRICS,
    WEIGHTS_FILE_NAME,
    Metric,
    compute_metrics,
    ms_ssim_diversity,
    real_vs_real,
    registry,
    swd,
    write_random_inception_weights,
)
from progrow.metrics import reference as R
from progrow.metrics.images import RealImages, real_halves, real_subset

RES = 8


def _cache(path: Path, seed: int = 1, count: int = 24) -> Path:
    return build_cache(f"synthetic:{seed}:{count}", path, resolution=RES)


def _halves(data: Path, n: int, resolution: int = RES) -> tuple[Tensor, Tensor]:
    images = MultiResDataset(data).level(resolution)
    a, b = real_halves(len(images), n)
    return RealImages(images, a).all(), RealImages(images, b).all()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("progrow-rvr-")) if folder.exists() else []


class Calls:
    """Counts `evaluate_images` calls made by `real_vs_real` (one per group it computes)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.groups: list[list[str]] = []
        original = R.evaluate_images

        def counting(names, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.groups.append(list(names))
            return original(names, *args, **kwargs)

        monkeypatch.setattr(R, "evaluate_images", counting)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    return Calls(monkeypatch)


# ------------------------------------------------------------------------------------------ the two sets
@pytest.mark.parametrize("total", [4, 17, 128])
def test_real_halves_are_disjoint_and_the_first_is_the_generators_real_subset(total):
    for n in sorted({1, 2, total // 3, total // 2} - {0}):
        a, b = real_halves(total, n)
        assert len(a) == len(b) == n and not set(a.tolist()) & set(b.tolist())
        assert torch.equal(a, a.sort().values) and torch.equal(b, b.sort().values)
        assert 0 <= int(torch.cat([a, b]).min()) and int(torch.cat([a, b]).max()) < total
        assert torch.equal(a, real_subset(total, n))  # the reals `evaluate` scores a generator against
    with pytest.raises(ValueError, match="count"):
        real_halves(total, total // 2 + 1)


# ------------------------------------------------------------------------------------- exact values
def test_swd_and_ms_ssim_are_the_metrics_on_the_two_sets(tmp_path):
    data = _cache(tmp_path / "data")
    opts = dict(seed=3, num_pairs=40, num_projections=64, num_repeats=2, cache_dir=tmp_path / "c")
    got = real_vs_real(["swd", "ms_ssim"], data, RES, num_samples=10, **opts)
    a, b = _halves(data, 10)
    want = swd(b, a, seed=3, num_projections=64, num_repeats=2)
    assert got == {"num_samples": 10, **want, "ms_ssim": ms_ssim_diversity(b, seed=3, num_pairs=40)}
    assert list(got) == ["num_samples", *want, "ms_ssim"] and set(want) == {"swd", "swd_8"}
    assert got["swd"] > 0


def test_fewer_than_twice_the_samples_uses_half_the_set_and_says_so(tmp_path):
    data = _cache(tmp_path / "data", count=15)
    got = real_vs_real(["swd"], data, RES, num_samples=100, cache_dir=tmp_path / "c")
    a, b = _halves(data, 7)
    assert got == {"num_samples": 7, **swd(b, a)}
    tiny = _cache(tmp_path / "tiny", count=3)
    with pytest.raises(ValueError, match=r"the 8² real set has 3 images; two disjoint sets of at least 2 need 4"):
        real_vs_real(["swd"], tiny, RES, num_samples=2, cache_dir=tmp_path / "c")


def test_a_tensor_of_reals_works_like_a_dataset(tmp_path):
    data = _cache(tmp_path / "data")
    level = torch.from_numpy(np.array(MultiResDataset(data).level(RES)))
    from_tensor = real_vs_real(["swd"], level, RES, num_samples=8, cache_dir=tmp_path / "c")
    from_dataset = real_vs_real(["swd"], data, RES, num_samples=8, cache_dir=tmp_path / "c")
    assert from_tensor == from_dataset


def test_a_metric_without_a_reference_is_absent_and_bad_calls_are_errors(tmp_path, monkeypatch, calls):
    def constant(generator, state, reals, **options):  # type: ignore[no-untyped-def]
        raise AssertionError("a registered metric is never called for a reference")

    monkeypatch.setitem(METRICS, "const", Metric(constant, registry.SHARED_OPTIONS))
    data = _cache(tmp_path / "data")
    got = real_vs_real(["const", "swd"], data, RES, num_samples=4, cache_dir=tmp_path / "c")
    assert set(got) == {"num_samples", "swd", "swd_8"}
    assert real_vs_real(["const"], data, RES, num_samples=4, cache_dir=tmp_path / "c") == {"num_samples": 4}
    assert calls.groups == [["swd"]]
    with pytest.raises(ValueError, match=r"real_vs_real: unknown or no metric\(s\) \['prc'\]"):
        real_vs_real(["swd", "prc"], data, RES, num_samples=4)
    with pytest.raises(ValueError, match=r"real_vs_real: unknown option\(s\) num_projection"):
        real_vs_real(["swd"], data, RES, num_samples=4, num_projection=8)
    with pytest.raises(ValueError, match=r"real_vs_real: num_samples expected an int ≥ 2"):
        real_vs_real(["swd"], data, RES, num_samples=1)


# ------------------------------------------------------------------------------------------------ cache
def test_the_second_call_computes_nothing(tmp_path, monkeypatch, calls):
    data = _cache(tmp_path / "data")
    cache = tmp_path / "c"
    first = real_vs_real(["swd", "ms_ssim"], data, RES, num_samples=8, cache_dir=cache, num_pairs=20)
    files = _files(cache)
    assert len(files) == 2 and files[0].startswith("progrow-rvr-ms_ssim-") and files[1].startswith("progrow-rvr-swd-")
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name]
    mtimes = {name: (cache / name).stat().st_mtime_ns for name in files}

    def fail(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("computed again")

    monkeypatch.setattr(registry, "swd", fail)
    monkeypatch.setattr(registry, "ms_ssim_diversity", fail)
    second = real_vs_real(["swd", "ms_ssim"], data, RES, num_samples=8, cache_dir=cache, num_pairs=20)
    assert second == first and calls.groups == [["swd"], ["ms_ssim"]]
    assert {name: (cache / name).stat().st_mtime_ns for name in _files(cache)} == mtimes
    # a default given explicitly is the same key
    assert real_vs_real(["swd"], data, RES, num_samples=8, cache_dir=cache, seed=0, patch_size=7)["swd"] == first["swd"]


def test_the_cache_folder_defaults_to_torch_fidelitys(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    data = _cache(tmp_path / "data")
    real_vs_real(["swd"], data, RES, num_samples=4)
    assert len(_files(tmp_path / "home" / "fidelity_cache")) == 1


def test_the_key_holds_content_resolution_count_and_value_changing_options(tmp_path, calls):
    data = _cache(tmp_path / "data")
    cache = tmp_path / "c"
    base = real_vs_real(["swd"], data, RES, num_samples=6, cache_dir=cache)
    variants = [dict(resolution=4), dict(num_samples=5), dict(seed=1), dict(num_projections=256), dict(descriptors_per_image=64)]
    for change in variants:
        args = {"resolution": RES, "num_samples": 6, **change}
        resolution, count = args.pop("resolution"), args.pop("num_samples")
        real_vs_real(["swd"], data, resolution, num_samples=count, cache_dir=cache, **args)
    assert len(calls.groups) == 1 + len(variants) and len(_files(cache)) == 1 + len(variants)
    names = _files(cache)
    assert any("-r4-n6-" in n for n in names) and any("-r8-n5-" in n for n in names)

    key = R.reference_key("swd", MultiResDataset(data).content_hash, RES, 6)
    assert R.reference_file(key, cache).is_file()
    assert key == {
        "format": 1,
        "metric": "swd",
        "content": MultiResDataset(data).content_hash,
        "resolution": RES,
        "num_samples": 6,
        "seed": 0,
        "descriptors_per_image": 128,
        "patch_size": 7,
        "num_projections": 512,
        "num_repeats": 4,
        "min_resolution": 16,
    }
    # options that do not change the value (where it runs, how it batches) share the file
    real_vs_real(["swd"], data, RES, num_samples=6, cache_dir=cache, device="cpu", batch_size=3, verbose=True)
    assert len(calls.groups) == 1 + len(variants)

    # a rebuilt dataset under the same path: a new content hash, a new file, another value
    shutil.rmtree(data)
    _cache(tmp_path / "data", seed=2)
    rebuilt = real_vs_real(["swd"], data, RES, num_samples=6, cache_dir=cache)
    assert len(calls.groups) == 2 + len(variants) and len(_files(cache)) == 2 + len(variants)
    assert rebuilt["swd"] != base["swd"]
    a, b = _halves(data, 6)
    assert rebuilt == {"num_samples": 6, **swd(b, a)}


@pytest.mark.parametrize(
    "content", ["", "{not json", "\x00\xff garbage", "[1, 2]", '{"key": {}, "values": {"swd": 1.0}}', "KEY_WITH_BAD_VALUES"]
)
def test_a_corrupt_cache_file_is_ignored_and_rewritten(tmp_path, calls, content, recwarn):
    data = _cache(tmp_path / "data")
    cache = tmp_path / "c"
    first = real_vs_real(["swd"], data, RES, num_samples=6, cache_dir=cache)
    (name,) = _files(cache)
    path = cache / name
    if content == "KEY_WITH_BAD_VALUES":
        record = json.loads(path.read_text())
        content = json.dumps({"key": record["key"], "values": {"swd": "73.9"}})
    path.write_bytes(content.encode("latin-1"))  # "\xff" is not UTF-8
    again = real_vs_real(["swd"], data, RES, num_samples=6, cache_dir=cache)
    assert again == first and len(calls.groups) == 2
    assert json.loads(path.read_text())["values"] == {k: v for k, v in first.items() if k != "num_samples"}
    assert not [w for w in recwarn if "real_vs_real" in str(w.message)]


def test_an_unwritable_cache_is_a_warning_and_the_values_still_come(tmp_path, calls):
    data = _cache(tmp_path / "data")
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    with pytest.warns(UserWarning, match="could not cache the swd reference"):
        got = real_vs_real(["swd"], data, RES, num_samples=6, cache_dir=blocker / "c")
    a, b = _halves(data, 6)
    assert got == {"num_samples": 6, **swd(b, a)}


# -------------------------------------------------------------------------------------------- FID / KID / IS
class Replay(nn.Module):
    """A 'generator' returning stored uint8 images (as [-1, 1] floats) in order, cycling."""

    latent_dim = 4

    def __init__(self, images: Tensor) -> None:
        super().__init__()
        self.images = images
        self.weight = nn.Parameter(torch.zeros(()))
        self.position = 0

    def forward(self, z: Tensor, state: pg.GrowthState) -> Tensor:
        idx = (torch.arange(len(z)) + self.position) % len(self.images)
        self.position += len(z)
        return self.images[idx].float() / 127.5 - 1.0


def test_fid_kid_is_reference_is_the_generator_path_fed_the_second_set(tmp_path, monkeypatch, calls):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    seen = {"images": 0}
    original = FeatureExtractorInceptionV3.forward

    def counting_forward(extractor, x):  # type: ignore[no-untyped-def]
        seen["images"] += x.shape[0]
        return original(extractor, x)

    monkeypatch.setattr(FeatureExtractorInceptionV3, "forward", counting_forward)
    weights = write_random_inception_weights(tmp_path / WEIGHTS_FILE_NAME)
    data = _cache(tmp_path / "data", count=20)
    opts = dict(weights_path=weights, cache_dir=tmp_path / "c", batch_size=8, kid_subset_size=4)

    got = real_vs_real(["fid", "kid", "is", "swd"], data, RES, num_samples=8, **opts)
    assert seen["images"] == 16 and calls.groups == [["fid", "kid", "is"], ["swd"]]  # one torch-fidelity call
    assert set(got) == {"num_samples", "fid", "kid", "kid_std", "is", "is_std", "swd", "swd_8"} and got["fid"] > 0
    assert len(_files(tmp_path / "c")) == 4

    # the generator path, its generator replaying set B: the same numbers, and set A's statistics from the cache
    _, b = _halves(data, 8)
    seen["images"] = 0
    generated = compute_metrics(Replay(b), pg.GrowthState(RES), data, metrics=("fid", "kid", "is"), num_samples=8, **opts)
    assert seen["images"] == 8
    assert generated == {k: got[k] for k in ("fid", "kid", "kid_std", "is", "is_std")}

    seen["images"] = 0
    assert real_vs_real(["is", "fid"], data, RES, num_samples=8, **opts) == {
        "num_samples": 8,
        "is": got["is"],
        "is_std": got["is_std"],
        "fid": got["fid"],
    }
    assert seen["images"] == 0 and len(calls.groups) == 2
    # other Inception weights are another key
    (tmp_path / "other").mkdir()
    other = write_random_inception_weights(tmp_path / "other" / WEIGHTS_FILE_NAME, seed=1)
    key = R.reference_key("fid", MultiResDataset(data).content_hash, RES, 8, weights_path=weights)
    assert R.reference_key("fid", MultiResDataset(data).content_hash, RES, 8, weights_path=other)["weights"] != key["weights"]


# ------------------------------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rvr") / "run"
    assert (
        progrow_main(
            [
                "train",
                "--preset",
                "cpu-demo",
                "--phase-kimg",
                "0.064",
                "--tick-kimg",
                "0.064",
                "--data",
                "synthetic:0:48",
                "--out",
                str(out),
                "--kimg",
                "0.128",
            ]
        )
        == 0
    )
    return out


def _rows(table: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in table.splitlines()[1:] if line and not line.startswith("real vs")}


def test_metrics_prints_the_real_vs_real_column_and_writes_it_to_json(run_dir, tmp_path, capsys, monkeypatch, calls):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    out = tmp_path / "scores.json"
    argv = [
        "metrics",
        "--from",
        str(run_dir),
        "--data",
        str(run_dir / "dataset"),
        "--metrics",
        "swd,ms_ssim",
        "--samples",
        "16",
        "--json",
        str(out),
    ]
    assert progrow_main(argv) == 0
    captured = capsys.readouterr()
    header, *_ = captured.out.splitlines()
    assert header.split()[:5] == ["metric", "value", "real", "vs", "real"] and "(8², alpha 1, 16 samples)" in header
    scores = json.loads(out.read_text())
    reference = scores["real_vs_real"]
    a, b = _halves(run_dir / "dataset", 16)
    assert reference == {"num_samples": 16, **swd(b, a), "ms_ssim": ms_ssim_diversity(b)}
    rows = _rows(captured.out)
    assert set(rows) == {"swd", "swd_8", "ms_ssim"}
    for key, (value, floor) in rows.items():
        assert float(value) == pytest.approx(scores[key], abs=1e-6) and float(floor) == pytest.approx(reference[key], abs=1e-6)
    assert captured.err == "" and len(_files(tmp_path / "home" / "fidelity_cache")) == 2

    assert progrow_main(argv) == 0  # the second time from the cache
    assert calls.groups == [["swd"], ["ms_ssim"]] and json.loads(out.read_text())["real_vs_real"] == reference
    capsys.readouterr()

    assert progrow_main([*argv, "--samples", "40"]) == 0  # 48 images: two sets of 24
    text = capsys.readouterr().out
    assert "real vs real: two sets of 24 reals (the 8² level has 48 images, fewer than 2 × 40)" in text
    assert json.loads(out.read_text())["real_vs_real"]["num_samples"] == 24


def test_no_reference_keeps_the_two_column_table(run_dir, tmp_path, capsys, monkeypatch, calls):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    out = tmp_path / "scores.json"
    assert (
        progrow_main(
            [
                "metrics",
                "--from",
                str(run_dir),
                "--data",
                str(run_dir / "dataset"),
                "--metrics",
                "swd",
                "--samples",
                "8",
                "--json",
                str(out),
                "--no-reference",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "real vs real" not in table and table.splitlines()[0].split()[:2] == ["metric", "value"]
    assert all(len(row) == 1 for row in _rows(table).values())
    assert "real_vs_real" not in json.loads(out.read_text()) and calls.groups == []
    assert _files(tmp_path / "home" / "fidelity_cache") == []


def test_a_failed_reference_is_one_warning_and_the_table_still_prints(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    tiny = _cache(tmp_path / "tiny", count=3)
    out = tmp_path / "scores.json"
    assert (
        progrow_main(
            ["metrics", "--from", str(run_dir), "--data", str(tiny), "--metrics", "swd", "--samples", "3", "--json", str(out)]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "warning: real vs real: swd: the 8² real set has 3 images; two disjoint sets of at least 2 need 4"
    ]
    rows = _rows(captured.out)
    assert set(rows) == {"swd", "swd_8"} and all(row[1] == "—" for row in rows.values())
    record = json.loads(out.read_text())
    assert record["swd"] > 0 and record["real_vs_real"] == {} and "swd" in record["real_vs_real_errors"]
    assert "Traceback" not in captured.err and not os.path.exists(tmp_path / "home" / "fidelity_cache")
