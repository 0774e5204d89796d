"""Tests for progrow.data: sources, the mode/crop/resize rules, the cache, the reader, the sampler and the CLI.

Expected values are computed here independently: Pillow calls written out per mode, float arithmetic for
rounding rules, and python loops for the 2×2 integer box filter.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from progrow.data import (
    DataError,
    ImageSampler,
    MultiResDataset,
    SyntheticShapes,
    box_downsample_u8,
    build_cache,
    open_source,
    to_float,
)
from progrow.data.cli import main
from progrow.data.loader import _mirror_on_device
from progrow.data.sources import SyntheticSource

REPO = Path(__file__).resolve().parents[1]
LANCZOS = Image.Resampling.LANCZOS


# --------------------------------------------------------------------------------------------------
# helpers (independent of the implementation)
# --------------------------------------------------------------------------------------------------


def _box_loop(x: np.ndarray) -> np.ndarray:
    """Integer 2×2 box filter rounding half up, with python loops: uint8 `[N, C, H, W] -> [N, C, H/2, W/2]`."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, h // 2, w // 2), dtype=np.uint8)
    for a in range(n):
        for b in range(c):
            for i in range(h // 2):
                for j in range(w // 2):
                    s = sum(int(x[a, b, 2 * i + di, 2 * j + dj]) for di in (0, 1) for dj in (0, 1))
                    out[a, b, i, j] = (s + 2) // 4
    return out


def _expected_8bit(image: Image.Image) -> Image.Image:
    """The documented mode rule, written independently with float arithmetic."""
    if image.mode == "I;16":
        values = np.asarray(image).astype(np.float64)
        return Image.fromarray(np.floor(values / 257.0 + 0.5).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA" if image.mode != "LA" else "LA")).astype(np.float64)
        alpha = rgba[..., -1:] / 255.0
        out = np.floor(rgba[..., :-1] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
        return Image.fromarray(out[..., 0], "L") if out.shape[-1] == 1 else Image.fromarray(out, "RGB")
    if image.mode in ("L", "RGB"):
        return image.copy()
    return image.convert("RGB")


def _expected_top(path: Path, resolution: int, *, channels: int) -> np.ndarray:
    """Open, EXIF-rotate, apply the mode rule, centre-crop, LANCZOS-resize: uint8 `[C, R, R]`."""
    with Image.open(path) as image:
        image = _expected_8bit(ImageOps.exif_transpose(image))
    w, h = image.size
    s = min(w, h)
    image = image.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    if s != resolution:
        image = image.resize((resolution, resolution), LANCZOS)
    if channels == 3:
        image = image.convert("RGB")
    array = np.asarray(image)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _rng_image(seed: int, h: int, w: int, channels: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _folder(root: Path, images: dict[str, Image.Image], **save_kwargs: dict) -> Path:
    for name, image in images.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, **save_kwargs.get(name, {}))
    return root


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------------------------------
# a folder of mixed sizes and modes
# --------------------------------------------------------------------------------------------------

MIXED = [
    "a_rgb.png",
    "b_rgba.png",
    "c_gray.png",
    "d_palette.png",
    "e_gray16.png",
    "f_wide.JPG",
    "sub/g_nested.png",
    "sub/h_lossless.webp",
]


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    rgba = _rng_image(2, 32, 32, 4)
    gray16 = np.random.default_rng(5).integers(0, 65536, size=(32, 32)).astype(np.uint16)
    images = {
        "a_rgb.png": Image.fromarray(_rng_image(1, 40, 40, 3), "RGB"),
        "b_rgba.png": Image.fromarray(rgba, "RGBA"),
        "c_gray.png": Image.fromarray(_rng_image(3, 36, 36, 1), "L"),
        "d_palette.png": Image.fromarray(_rng_image(4, 32, 32, 3), "RGB").quantize(16),
        "e_gray16.png": Image.fromarray(gray16),
        "f_wide.JPG": Image.fromarray(_rng_image(6, 32, 48, 3), "RGB"),
        "sub/g_nested.png": Image.fromarray(_rng_image(7, 64, 64, 3), "RGB"),
        "sub/h_lossless.webp": Image.fromarray(_rng_image(8, 20, 20, 3), "RGB"),
    }
    _folder(root, images, **{"sub/h_lossless.webp": {"lossless": True}, "f_wide.JPG": {"quality": 90}})
    (root / "notes.txt").write_text("not an image")
    (root / "sub" / "readme.md").write_text("not an image either")
    with Image.open(root / "e_gray16.png") as gray16_image, Image.open(root / "d_palette.png") as palette_image:
        assert (gray16_image.mode, palette_image.mode) == ("I;16", "P")
    return root


@pytest.fixture(scope="module")
def mixed_cache(mixed_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cache(mixed_folder, tmp_path_factory.mktemp("out") / "cache", resolution=16, min_resolution=4)


def test_folder_source_order_and_filter(mixed_folder: Path) -> None:
    with open_source(mixed_folder) as source:
        assert list(source.names) == MIXED
        assert source.labels is None
    with open_source(str(mixed_folder), max_images=3) as source:
        assert list(source.names) == MIXED[:3]


def test_cache_layout_and_meta(mixed_cache: Path) -> None:
    meta = json.loads((mixed_cache / "meta.json").read_text())
    assert meta["format_version"] == 1
    assert meta["num_images"] == len(MIXED)
    assert meta["num_channels"] == 3  # mixed gray and colour under "keep" -> RGB
    assert meta["resolutions"] == [4, 8, 16]
    assert meta["policies"]["crop"] == "center" and meta["policies"]["channels"] == "keep"
    for r in (4, 8, 16):
        assert (mixed_cache / f"level_{r}.u8").stat().st_size == len(MIXED) * 3 * r * r
    assert not (mixed_cache / "labels.npy").exists()
    assert not list(mixed_cache.parent.glob("*.tmp-*"))


def test_top_level_equals_pillow_pipeline(mixed_folder: Path, mixed_cache: Path) -> None:
    dataset = MultiResDataset(mixed_cache)
    top = dataset.level(16)
    for i, name in enumerate(MIXED):
        expected = _expected_top(mixed_folder / name, 16, channels=3)
        np.testing.assert_array_equal(top[i], expected, err_msg=name)


def test_lower_levels_are_integer_box_filter(mixed_cache: Path) -> None:
    dataset = MultiResDataset(mixed_cache)
    np.testing.assert_array_equal(dataset.level(8), _box_loop(np.asarray(dataset.level(16))))
    np.testing.assert_array_equal(dataset.level(4), _box_loop(np.asarray(dataset.level(8))))
    # and written differently: floor(mean + 1/2) of each 2×2 block
    x = np.asarray(dataset.level(16)).astype(np.float64)
    n, c = x.shape[:2]
    mean = x.reshape(n, c, 8, 2, 8, 2).mean(axis=(3, 5))
    np.testing.assert_array_equal(dataset.level(8), np.floor(mean + 0.5).astype(np.uint8))


def test_box_downsample_rounds_half_up() -> None:
    x = np.array([[[[1, 2], [1, 2]]], [[[0, 0], [0, 1]]], [[[1, 1], [1, 0]]], [[[255, 255], [255, 255]]]], np.uint8)
    assert box_downsample_u8(x).ravel().tolist() == [2, 0, 1, 255]  # 1.5 -> 2, 0.25 -> 0, 0.75 -> 1, no overflow


def test_content_hash_is_sha256_of_top_level(mixed_cache: Path) -> None:
    dataset = MultiResDataset(mixed_cache)
    digest = hashlib.sha256((mixed_cache / "level_16.u8").read_bytes()).hexdigest()
    assert dataset.content_hash == f"sha256:{digest}"
    dataset.verify()


# --------------------------------------------------------------------------------------------------
# the mode rule
# --------------------------------------------------------------------------------------------------


def test_16bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[65535, 32768, 0, 40000], [257, 128, 129, 32767]] * 2, dtype=np.uint16)
    _folder(tmp_path / "src", {"g16.png": Image.fromarray(values)})
    dataset = MultiResDataset(build_cache(tmp_path / "src", tmp_path / "out", resolution=4, crop="center"))
    assert dataset.num_channels == 1
    got = dataset.level(4)[0, 0]
    assert got[0].tolist() == [255, 128, 0, 156]  # white stays 255, mid-gray ~128, 40000 is not clipped to 255
    assert got[1].tolist() == [1, 0, 1, 127]  # 257/257 = 1; 128/257 < 0.5; 129/257 > 0.5; 32767/257 = 127.498


def test_alpha_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (200, 100, 50, 128)
    rgba[0, 1] = (10, 20, 30, 0)  # fully transparent -> white
    rgba[0, 2] = (10, 20, 30, 255)  # opaque -> unchanged
    rgba[1:] = _rng_image(9, 3, 4, 4)
    la = np.stack([_rng_image(10, 4, 4, 1), _rng_image(11, 4, 4, 1)], axis=-1)
    _folder(tmp_path / "rgba", {"x.png": Image.fromarray(rgba, "RGBA")})
    _folder(tmp_path / "la", {"y.png": Image.fromarray(la, "LA")})
    rgb_set = MultiResDataset(build_cache(tmp_path / "rgba", tmp_path / "o1", resolution=4))
    gray_set = MultiResDataset(build_cache(tmp_path / "la", tmp_path / "o2", resolution=4))
    assert rgb_set.num_channels == 3 and gray_set.num_channels == 1
    got = rgb_set.level(4)[0].transpose(1, 2, 0)
    a = 128 / 255
    assert got[0, 0].tolist() == [round(200 * a + 255 * (1 - a)), round(100 * a + 255 * (1 - a)), round(50 * a + 255 * (1 - a))]
    assert got[0, 1].tolist() == [255, 255, 255]
    assert got[0, 2].tolist() == [10, 20, 30]
    alpha = rgba[..., 3:].astype(np.float64) / 255
    np.testing.assert_array_equal(got, np.floor(rgba[..., :3] * alpha + 255 * (1 - alpha) + 0.5).astype(np.uint8))
    alpha = la[..., 1].astype(np.float64) / 255
    np.testing.assert_array_equal(gray_set.level(4)[0, 0], np.floor(la[..., 0] * alpha + 255 * (1 - alpha) + 0.5))


def test_palette_transparency_is_composited(tmp_path: Path) -> None:
    image = Image.fromarray(_rng_image(12, 4, 4, 3), "RGB").quantize(4)
    transparent_index = int(np.asarray(image)[0, 0])
    _folder(tmp_path / "src", {"p.png": image}, **{"p.png": {"transparency": transparent_index}})
    dataset = MultiResDataset(build_cache(tmp_path / "src", tmp_path / "out", resolution=4))
    got = dataset.level(4)[0].transpose(1, 2, 0)
    indices = np.asarray(image)
    palette = np.array(image.getpalette()[: 3 * 4]).reshape(-1, 3)
    expected = np.where((indices == transparent_index)[..., None], 255, palette[indices])
    np.testing.assert_array_equal(got, expected)


def test_channels_keep_and_rgb(tmp_path: Path) -> None:
    gray = _rng_image(13, 8, 8, 1)
    _folder(tmp_path / "src", {"a.png": Image.fromarray(gray, "L"), "b.png": Image.fromarray(gray[::-1].copy(), "L")})
    kept = MultiResDataset(build_cache(tmp_path / "src", tmp_path / "keep", resolution=8))
    rgb = MultiResDataset(build_cache(tmp_path / "src", tmp_path / "rgb", resolution=8, channels="rgb"))
    assert kept.num_channels == 1 and rgb.num_channels == 3
    np.testing.assert_array_equal(kept.level(8)[0, 0], gray)
    for c in range(3):
        np.testing.assert_array_equal(rgb.level(8)[:, c], kept.level(8)[:, 0])


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = _rng_image(14, 8, 8, 3)
    exif = Image.Exif()
    exif[0x0112] = 3  # rotate 180°
    _folder(tmp_path / "src", {"r.png": Image.fromarray(pixels, "RGB")}, **{"r.png": {"exif": exif}})
    dataset = MultiResDataset(build_cache(tmp_path / "src", tmp_path / "out", resolution=8))
    np.testing.assert_array_equal(dataset.level(8)[0].transpose(1, 2, 0), pixels[::-1, ::-1])


def test_upscale_enlarges_with_lanczos(tmp_path: Path) -> None:
    small = Image.fromarray(_rng_image(15, 12, 12, 3), "RGB")
    _folder(tmp_path / "src", {"s.png": small})
    with pytest.raises(DataError, match=r"(?s)--upscale enlarges them.*s\.png is 12×12"):
        build_cache(tmp_path / "src", tmp_path / "out", resolution=16)
    assert not (tmp_path / "out").exists()
    dataset = MultiResDataset(build_cache(tmp_path / "src", tmp_path / "out", resolution=16, upscale=True))
    np.testing.assert_array_equal(dataset.level(16)[0].transpose(1, 2, 0), np.asarray(small.resize((16, 16), LANCZOS)))


# --------------------------------------------------------------------------------------------------
# labels: StyleGAN2-ADA zip and folder dataset.json
# --------------------------------------------------------------------------------------------------


def _ada_zip(path: Path, labels: dict[str, int] | None, *, count: int = 5) -> list[str]:
    names = [f"{i // 3:05d}/img{i:08d}.png" for i in range(count)]
    with zipfile.ZipFile(path, "w") as archive:
        for i, name in enumerate(reversed(names)):  # stored out of order on purpose
            archive.writestr(name, _png_bytes(Image.fromarray(_rng_image(100 + i, 8, 8, 3), "RGB")))
        if labels is not None:
            archive.writestr("dataset.json", json.dumps({"labels": [[n, labels[n]] for n in reversed(list(labels))]}))
    return names


def test_zip_labels_are_honoured(tmp_path: Path) -> None:
    names = _ada_zip(tmp_path / "d.zip", None)
    labels = {n: (7 * i) % 5 for i, n in enumerate(names)}
    names = _ada_zip(tmp_path / "d.zip", labels)
    dataset = MultiResDataset(build_cache(tmp_path / "d.zip", tmp_path / "out", resolution=8))
    assert dataset.labels is not None and dataset.labels.dtype == np.int64
    assert dataset.labels.tolist() == [labels[n] for n in sorted(names)]
    with zipfile.ZipFile(tmp_path / "d.zip") as archive:
        first = np.asarray(Image.open(io.BytesIO(archive.read(sorted(names)[0]))))
    np.testing.assert_array_equal(dataset.level(8)[0].transpose(1, 2, 0), first)
    # the content hash covers the labels
    top = (tmp_path / "out" / "level_8.u8").read_bytes()
    assert dataset.content_hash == "sha256:" + hashlib.sha256(top + dataset.labels.astype("<i8").tobytes()).hexdigest()
    _ada_zip(tmp_path / "e.zip", {n: v + 1 for n, v in labels.items()})
    other = MultiResDataset(build_cache(tmp_path / "e.zip", tmp_path / "out2", resolution=8))
    assert other.content_hash != dataset.content_hash


def test_zip_missing_label_is_an_error(tmp_path: Path) -> None:
    names = _ada_zip(tmp_path / "d.zip", None)
    _ada_zip(tmp_path / "d.zip", {n: 1 for n in names[:-1]})
    with pytest.raises(DataError, match=rf"dataset\.json: no label for {names[-1]}"):
        open_source(tmp_path / "d.zip")


def test_folder_labels(tmp_path: Path) -> None:
    _folder(tmp_path / "src", {f"c{k}/{i}.png": Image.fromarray(_rng_image(i, 4, 4, 1), "L") for k in range(2) for i in range(2)})
    (tmp_path / "src" / "dataset.json").write_text(
        json.dumps({"labels": [["c1/1.png", 3], ["c0/0.png", 0], ["c0/1.png", 1], ["c1/0.png", 2]]})
    )
    dataset = MultiResDataset(build_cache(tmp_path / "src", tmp_path / "out", resolution=4))
    assert dataset.labels.tolist() == [0, 1, 2, 3]


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
# atomic build, reader validation
# --------------------------------------------------------------------------------------------------


def test_interrupted_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    seen = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        assert not out.exists()  # nothing at OUT until the build is complete
        assert [p.name for p in tmp_path.iterdir()] == [f"out.tmp-{os.getpid()}"]
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_cache("synthetic:0:10", out, resolution=8, progress=progress)
    assert seen == [1, 2, 3]
    assert list(tmp_path.iterdir()) == []


def test_reader_errors_name_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere: no such cache folder"):
        MultiResDataset(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    with pytest.raises(DataError, match=r"half/meta\.json: missing"):
        MultiResDataset(tmp_path / "half")

    good = build_cache("synthetic:0:6", tmp_path / "good", resolution=8)
    meta = json.loads((good / "meta.json").read_text())

    def broken(name: str, edit) -> Path:  # a copy of the good cache with one thing changed
        path = tmp_path / name
        path.mkdir()
        for file in good.iterdir():
            (path / file.name).write_bytes(file.read_bytes())
        edit(path)
        return path

    bad_json = broken("json", lambda p: (p / "meta.json").write_text("{not json"))
    with pytest.raises(DataError, match=r"json/meta\.json: not valid JSON"):
        MultiResDataset(bad_json)
    without_count = json.dumps({k: v for k, v in meta.items() if k != "num_images"})
    no_count = broken("field", lambda p: (p / "meta.json").write_text(without_count))
    with pytest.raises(DataError, match=r"field/meta\.json: field 'num_images' expected an int ≥ 1, got '<missing>'"):
        MultiResDataset(no_count)
    short = broken("short", lambda p: (p / "level_8.u8").write_bytes((p / "level_8.u8").read_bytes()[:-1]))
    with pytest.raises(DataError, match=r"short/level_8\.u8: size mismatch, expected 1152 bytes .* found 1151"):
        MultiResDataset(short)
    missing = broken("missing", lambda p: (p / "level_4.u8").unlink())
    with pytest.raises(DataError, match=r"level_4\.u8: missing"):
        MultiResDataset(missing)

    def flip_byte(p: Path) -> None:
        data = bytearray((p / "level_8.u8").read_bytes())
        data[5] ^= 1
        (p / "level_8.u8").write_bytes(bytes(data))

    corrupt = MultiResDataset(broken("corrupt", flip_byte))
    with pytest.raises(DataError, match="content hash mismatch"):
        corrupt.verify()

    dataset = MultiResDataset(good)
    with pytest.raises(ValueError, match="no level at resolution 16; available: 4, 8"):
        dataset.level(16)
    level = dataset.level(8)
    assert isinstance(level, np.memmap) and level.shape == (6, 3, 8, 8) and not level.flags.writeable


# --------------------------------------------------------------------------------------------------
# sampler
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> MultiResDataset:
    root = tmp_path_factory.mktemp("labelled")
    names = {f"{i:02d}.png": Image.fromarray(_rng_image(200 + i, 8, 8, 3), "RGB") for i in range(10)}
    _folder(root / "src", names)
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
    _folder(root / "src", {f"{i:02d}.png": Image.fromarray(_rng_image(300 + i, 128, 128, 3), "RGB") for i in range(12)})
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


# --------------------------------------------------------------------------------------------------
# bad input: API and CLI
# --------------------------------------------------------------------------------------------------


def test_cli_help_lists_every_option_with_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run_cli(capsys, "--help")
    assert code == 0
    out = " ".join(out.split())  # argparse wraps lines
    for text in (
        "--resolution",
        "--min-resolution",
        "(default: 4)",
        "--crop {center,none}",
        "(default: center)",
        "--channels {keep,rgb}",
        "(default: keep)",
        "--upscale",
        "(default: off)",
        "--max-images",
        "(default: all)",
        "LANCZOS",
        "(a + b + c + d + 2) // 4",
        "composited over white",
    ):
        assert text in out, text


def test_cli_builds_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str], mixed_folder: Path) -> None:
    argv = [str(mixed_folder), str(tmp_path / "c"), "--resolution", "8", "--max-images", "3", "--channels", "rgb"]
    code, out, err = _run_cli(capsys, *argv)
    assert code == 0
    assert err.startswith(f"building {tmp_path / 'c'}: 3 images, 3 channel(s), levels 4..8 (2), 720 B (") and err.count("\n") == 1
    assert out.count("\n") == 1 and "3 images, 3 channel(s)" in out and "4..8" in out
    assert MultiResDataset(tmp_path / "c").num_images == 3


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "empty",
        "no_images",
        "zip_without_images",
        "too_small",
        "not_square",
        "not_power_of_two",
        "out_not_empty",
        "bad_synthetic",
    ],
)
def test_cli_bad_input_exits_2_with_message(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out")
    src = tmp_path / "src"
    src.mkdir()
    args: list[str]
    if case == "missing":
        args, expect = [str(tmp_path / "absent"), out, "--resolution", "8"], [f"{tmp_path / 'absent'}: no such file or folder"]
    elif case == "empty":
        args, expect = ["", out, "--resolution", "8"], ["empty path"]
    elif case == "no_images":
        (src / "a.txt").write_text("x")
        args, expect = [str(src), out, "--resolution", "8"], [f"{src}: no images found", ".png"]
    elif case == "zip_without_images":
        with zipfile.ZipFile(tmp_path / "z.zip", "w") as archive:
            archive.writestr("readme.txt", "x")
        args, expect = [str(tmp_path / "z.zip"), out, "--resolution", "8"], [f"{tmp_path / 'z.zip'}: the zip holds no images"]
    elif case == "too_small":
        _folder(src, {"ok.png": Image.new("RGB", (16, 16)), "tiny.png": Image.new("RGB", (12, 10))})
        args, expect = [str(src), out, "--resolution", "16"], [f"{src / 'tiny.png'} is 12×10", "--upscale", "1 of 2 images"]
    elif case == "not_square":
        _folder(src, {"wide.jpg": Image.new("RGB", (48, 32))})
        args = [str(src), out, "--resolution", "16", "--crop", "none"]
        expect = [f"{src / 'wide.jpg'} is 48×32", "not square", "--crop center"]
    elif case == "not_power_of_two":
        args, expect = ["synthetic", out, "--resolution", "48"], ["--resolution", "power of two", "'48'"]
    elif case == "out_not_empty":
        Path(out).mkdir()
        (Path(out) / "keep.txt").write_text("mine")
        args, expect = ["synthetic:0:4", out, "--resolution", "8"], [f"{out}: the output folder already holds files"]
    else:
        args, expect = ["synthetic:a:b", out, "--resolution", "8"], ["'synthetic:a:b'", "synthetic:SEED:N"]
    code, stdout, stderr = _run_cli(capsys, *args)
    assert code == 2
    assert stdout == ""
    assert "Traceback" not in stderr
    for text in expect:
        assert text in stderr, (text, stderr)
    if case != "out_not_empty":
        assert not Path(out).exists()
    assert not list(tmp_path.glob("*.tmp-*"))


def test_api_bad_options_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"crop \(--crop\): expected one of 'center', 'none', got 'middle'"):
        build_cache("synthetic:0:2", tmp_path / "o", resolution=8, crop="middle")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"channels \(--channels\): expected one of 'keep', 'rgb'"):
        build_cache("synthetic:0:2", tmp_path / "o", resolution=8, channels="gray")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"resolution \(--resolution\): expected a power of two.*got 12"):
        build_cache("synthetic:0:2", tmp_path / "o", resolution=12)
    with pytest.raises(DataError, match=r"min_resolution.*≤ resolution \(8\), got 16"):
        build_cache("synthetic:0:2", tmp_path / "o", resolution=8, min_resolution=16)
    with pytest.raises(DataError, match=r"max_images \(--max-images\)"):
        build_cache("synthetic:0:2", tmp_path / "o", resolution=8, max_images=0)
    with pytest.raises(ValueError, match=r"world_size"):
        ImageSampler(MultiResDataset(build_cache("synthetic:0:2", tmp_path / "ok", resolution=8)), rank=2, world_size=2)


def test_python_m_entry_point(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ok = subprocess.run(
        [sys.executable, "-m", "progrow.data", "synthetic:0:20", str(tmp_path / "c"), "--resolution", "16"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{tmp_path / 'c'}: 20 images, 3 channel(s)")
    bad = subprocess.run(
        [sys.executable, "-m", "progrow.data", str(tmp_path / "absent"), str(tmp_path / "d"), "--resolution", "16"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"{tmp_path / 'absent'}: no such file or folder" in bad.stderr
