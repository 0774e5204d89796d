"""progrow.data: the synthetic dataset, the sampler (epochs, ranks, mirroring, resume, device transfer) and to_float."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import rng_image, write_folder
from PIL import Image

from progrow.data import (
    DataError,
    ImageSampler,
    MultiResDataset,
    SyntheticShapes,
    build_cache,
    open_source,
    to_float,
)
from progrow.data.loader import _mirror_on_device
from progrow.data.sources import SyntheticSource

# --------------------------------------------------------------------------------------------------
# the synthetic dataset
# --------------------------------------------------------------------------------------------------


def test_synthetic_is_deterministic() -> None:
    a, b, c = SyntheticShapes(seed=1), SyntheticShapes(seed=1), SyntheticShapes(seed=2)
    for index in (0, 7, 9999):
        for resolution in (4, 32):
            assert a.render(index, resolution).tobytes() == b.render(index, resolution).tobytes()
    assert a.render(3, 32).tobytes() != c.render(3, 32).tobytes()
    assert a.render(3, 32).tobytes() != a.render(4, 32).tobytes()


def test_synthetic_resolutions_agree() -> None:
    shapes = SyntheticShapes(seed=0)
    for index in range(8):
        big = shapes.render(index, 64).astype(np.float64)
        down = big.reshape(3, 16, 4, 16, 4).mean(axis=(2, 4))
        small = shapes.render(index, 16).astype(np.float64)
        assert np.abs(down - small).mean() < 1.5, index
    top = shapes.render(5, 1024).astype(np.float64)
    assert np.abs(top.reshape(3, 4, 256, 4, 256).mean(axis=(2, 4)) - shapes.render(5, 4)).mean() < 1.5


def test_synthetic_shapes_and_range() -> None:
    shapes = SyntheticShapes(seed=0, num_images=20, num_channels=1)
    for resolution in (4, 8, 128, 1024):
        image = shapes.render(0, resolution)
        assert image.shape == (1, resolution, resolution) and image.dtype == np.uint8
    colour = SyntheticShapes(seed=0)
    stds = [colour.render(i, 32).astype(np.float64).std() for i in range(20)]
    assert np.median(stds) > 10  # structure, not flat fields
    for bad in (2, 3, 6, 2048):
        with pytest.raises(ValueError, match=rf"resolution .*got {bad}"):
            colour.render(0, bad)
    with pytest.raises(IndexError, match="index"):
        shapes.render(20, 8)


def test_synthetic_is_fast() -> None:
    shapes = SyntheticShapes(seed=0)
    start = time.perf_counter()
    for index in range(1000):
        shapes.render(index, 32)
    assert time.perf_counter() - start < 2.0


def test_synthetic_source_strings(tmp_path: Path) -> None:
    source = open_source("synthetic:3:12")
    assert isinstance(source, SyntheticSource) and len(source) == 12 and source.shapes.seed == 3
    assert len(open_source("synthetic")) == 10_000
    dataset = MultiResDataset(build_cache("synthetic:3:12", tmp_path / "out", resolution=16, min_resolution=8))
    assert dataset.resolutions == (8, 16)
    np.testing.assert_array_equal(dataset.level(16)[11], SyntheticShapes(seed=3, num_images=12).render(11, 16))
    for bad in ("synthetic:x", "synthetic:1", "synthetic:1:0", "synthetic:-1:5"):
        with pytest.raises(DataError, match="synthetic:SEED:N"):
            open_source(bad)


# --------------------------------------------------------------------------------------------------
# sampler
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> MultiResDataset:
    root = tmp_path_factory.mktemp("labelled")
    names = {f"{i:02d}.png": Image.fromarray(rng_image(200 + i, 8, 8, 3), "RGB") for i in range(10)}
    write_folder(root / "src", names)
    (root / "src" / "dataset.json").write_text(json.dumps({"labels": [[n, 7 * i] for i, n in enumerate(names)]}))
    return MultiResDataset(build_cache(root / "src", root / "cache", resolution=8))


def test_sampler_epochs_are_permutations(labelled: MultiResDataset) -> None:
    sampler = ImageSampler(labelled, seed=5)
    first = np.concatenate([sampler.next_indices(5)[0] for _ in range(2)])
    assert sorted(first.tolist()) == list(range(10))
    assert (sampler.epoch, sampler.position) == (1, 0)
    second = np.concatenate([sampler.next_indices(4)[0], sampler.next_indices(6)[0]])
    assert sorted(second.tolist()) == list(range(10)) and second.tolist() != first.tolist()
    np.testing.assert_array_equal(first, np.random.default_rng([5, 0]).permutation(10))


def test_sampler_batch_contents(labelled: MultiResDataset) -> None:
    sampler = ImageSampler(labelled, seed=1)
    replay = ImageSampler(labelled, seed=1)
    images, labels = sampler.next_batch(4, 6)
    indices, _ = replay.next_indices(6)
    assert images.dtype == torch.uint8 and images.shape == (6, 3, 4, 4)
    np.testing.assert_array_equal(images.numpy(), labelled.level(4)[indices])
    assert labels is not None and labels.tolist() == (7 * indices).tolist()


def test_sampler_resume_is_bit_exact(labelled: MultiResDataset) -> None:
    plan = [(8, 4), (4, 5), (8, 3), (4, 8), (8, 10), (8, 1), (4, 7)]
    sampler = ImageSampler(labelled, seed=3, mirror=True)
    for resolution, batch in plan[:3]:
        sampler.next_batch(resolution, batch)
    state = json.loads(json.dumps(sampler.state_dict()))  # survives a JSON checkpoint
    assert (state["epoch"], state["position"]) == (1, 2)
    expected = [sampler.next_batch(r, b) for r, b in plan[3:]]
    resumed = ImageSampler(labelled, seed=3, mirror=True)
    resumed.load_state_dict(state)
    got = [resumed.next_batch(r, b) for r, b in plan[3:]]
    for (images, labels), (want_images, want_labels) in zip(got, expected, strict=True):
        assert torch.equal(images, want_images) and torch.equal(labels, want_labels)
    assert resumed.state_dict() == sampler.state_dict()
    fresh = ImageSampler(labelled, seed=3, mirror=True)
    assert not torch.equal(fresh.next_batch(4, 8)[0], expected[0][0])
    with pytest.raises(ValueError, match="seed: saved 3 vs now 4"):
        ImageSampler(labelled, seed=4).load_state_dict(state)


def test_ranks_take_disjoint_slices_of_the_global_batch(labelled: MultiResDataset) -> None:
    whole = ImageSampler(labelled, seed=2, mirror=True)
    ranks = [ImageSampler(labelled, seed=2, mirror=True, rank=r, world_size=2) for r in range(2)]
    for batch in (6, 6, 6, 2, 10, 10, 4):  # some batches run across an epoch's end
        (global_images, global_labels) = whole.next_batch(8, batch)
        parts = [s.next_batch(8, batch) for s in ranks]
        assert all(images.shape[0] == batch // 2 for images, _ in parts)
        assert torch.equal(torch.cat([images for images, _ in parts]), global_images)
        assert torch.equal(torch.cat([labels for _, labels in parts]), global_labels)
        if batch == 10:  # a whole epoch (the cursors are at an epoch start here): the slices partition the images
            assert sorted(parts[0][1].tolist() + parts[1][1].tolist()) == [7 * i for i in range(10)]
    assert [s.state_dict() for s in ranks] == [whole.state_dict()] * 2
    with pytest.raises(ValueError, match="global batch size 7 is not divisible by world_size 2"):
        ranks[0].next_batch(8, 7)


def test_mirror_flips_about_half(labelled: MultiResDataset) -> None:
    plain = ImageSampler(labelled, seed=9)
    mirrored = ImageSampler(labelled, seed=9, mirror=True)
    level = np.asarray(labelled.level(8))
    flipped_count = total = 0
    for _ in range(100):
        a, _ = plain.next_batch(8, 10)
        b, labels = mirrored.next_batch(8, 10)
        indices = (labels // 7).numpy()
        np.testing.assert_array_equal(a.numpy(), level[indices])  # same order with or without mirroring
        flipped = [not np.array_equal(b[i].numpy(), level[j]) for i, j in enumerate(indices)]
        for i, j in enumerate(indices):
            np.testing.assert_array_equal(b[i].numpy(), level[j][..., ::-1] if flipped[i] else level[j])
        flipped_count += sum(flipped)
        total += len(indices)
    assert 0.4 < flipped_count / total < 0.6


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> MultiResDataset:
    """12 random RGB images with levels 4² … 128² (the host flips row by row from 128² up)."""
    root = tmp_path_factory.mktemp("large")
    write_folder(root / "src", {f"{i:02d}.png": Image.fromarray(rng_image(300 + i, 128, 128, 3), "RGB") for i in range(12)})
    return MultiResDataset(build_cache(root / "src", root / "cache", resolution=128))


@pytest.mark.parametrize("resolution", [4, 8, 32, 64, 128])
def test_mirrored_batches_equal_numpy_flips_on_host_and_device(large: MultiResDataset, resolution: int) -> None:
    """Every mirrored row is exactly `level[i][..., ::-1]`, whichever flip path runs (host below/from 128², device)."""
    level = np.asarray(large.level(resolution))
    host, replay = ImageSampler(large, seed=4, mirror=True), ImageSampler(large, seed=4, mirror=True)
    deferred = ImageSampler(large, seed=4, mirror=True)
    seen = 0
    for _ in range(5):
        images, _ = host.next_batch(resolution, 5)
        indices, flips = replay.next_indices(5)
        expected = np.stack([level[j][..., ::-1] if f else level[j] for j, f in zip(indices, flips, strict=True)])
        np.testing.assert_array_equal(images.numpy(), expected)
        batch, flags, _, _ = deferred._read(resolution, 5, mirror_on_host=False)  # what a GPU run copies
        np.testing.assert_array_equal(batch, level[indices])
        assert torch.equal(_mirror_on_device(torch.from_numpy(batch), flags), images)
        seen += int(flips.sum())
    assert 0 < seen < 25  # both kinds of rows were checked


def test_cuda_transfer_is_pinned_and_non_blocking(labelled: MultiResDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: calls.append(("pin", self.dtype)) or self)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: calls.append(("to", self.dtype, str(a[0]), k)) or self)
    images, labels = ImageSampler(labelled).next_batch(8, 2, device="cuda:0")
    assert calls == [
        ("pin", torch.uint8),
        ("to", torch.uint8, "cuda:0", {"non_blocking": True}),
        ("pin", torch.int64),
        ("to", torch.int64, "cuda:0", {"non_blocking": True}),
    ]


def test_to_float() -> None:
    images = torch.tensor([0, 1, 127, 128, 254, 255], dtype=torch.uint8).view(1, 1, 2, 3)
    out = to_float(images)
    assert out.dtype == torch.float32 and out.shape == images.shape
    expected = torch.tensor([v / 127.5 - 1 for v in (0, 1, 127, 128, 254, 255)], dtype=torch.float64).view(1, 1, 2, 3)
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-6)
    assert out.min().item() == -1.0 and out.max().item() == 1.0
    assert to_float(images, dtype=torch.float16).dtype == torch.float16
    with pytest.raises(ValueError, match="uint8"):
        to_float(images.float())
