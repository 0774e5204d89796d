"""progrow.data: folder sources, the mode/crop/resize rules, labels, the cache files, atomic builds and the reader.

Expected values are computed independently (tests/data_helpers.py): Pillow calls written out per mode, float
arithmetic for rounding rules, and python loops for the 2×2 integer box filter.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from data_helpers import LANCZOS, MIXED, box_loop, expected_top, make_mixed_folder, png_bytes, rng_image, write_folder
from PIL import Image

from progrow.data import (
    DataError,
    MultiResDataset,
    box_downsample_u8,
    build_cache,
    open_source,
)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mixed_folder(tmp_path_factory.mktemp("mixed"))


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
        expected = expected_top(mixed_folder / name, 16, channels=3)
        np.testing.assert_array_equal(top[i], expected, err_msg=name)


def test_lower_levels_are_integer_box_filter(mixed_cache: Path) -> None:
    dataset = MultiResDataset(mixed_cache)
    np.testing.assert_array_equal(dataset.level(8), box_loop(np.asarray(dataset.level(16))))
    np.testing.assert_array_equal(dataset.level(4), box_loop(np.asarray(dataset.level(8))))
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
    write_folder(tmp_path / "src", {"g16.png": Image.fromarray(values)})
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
    rgba[1:] = rng_image(9, 3, 4, 4)
    la = np.stack([rng_image(10, 4, 4, 1), rng_image(11, 4, 4, 1)], axis=-1)
    write_folder(tmp_path / "rgba", {"x.png": Image.fromarray(rgba, "RGBA")})
    write_folder(tmp_path / "la", {"y.png": Image.fromarray(la, "LA")})
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
    image = Image.fromarray(rng_image(12, 4, 4, 3), "RGB").quantize(4)
    transparent_index = int(np.asarray(image)[0, 0])
    write_folder(tmp_path / "src", {"p.png": image}, **{"p.png": {"transparency": transparent_index}})
    dataset = MultiResDataset(build_cache(tmp_path / "src", tmp_path / "out", resolution=4))
    got = dataset.level(4)[0].transpose(1, 2, 0)
    indices = np.asarray(image)
    palette = np.array(image.getpalette()[: 3 * 4]).reshape(-1, 3)
    expected = np.where((indices == transparent_index)[..., None], 255, palette[indices])
    np.testing.assert_array_equal(got, expected)


def test_channels_keep_and_rgb(tmp_path: Path) -> None:
    gray = rng_image(13, 8, 8, 1)
    write_folder(tmp_path / "src", {"a.png": Image.fromarray(gray, "L"), "b.png": Image.fromarray(gray[::-1].copy(), "L")})
    kept = MultiResDataset(build_cache(tmp_path / "src", tmp_path / "keep", resolution=8))
    rgb = MultiResDataset(build_cache(tmp_path / "src", tmp_path / "rgb", resolution=8, channels="rgb"))
    assert kept.num_channels == 1 and rgb.num_channels == 3
    np.testing.assert_array_equal(kept.level(8)[0, 0], gray)
    for c in range(3):
        np.testing.assert_array_equal(rgb.level(8)[:, c], kept.level(8)[:, 0])


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = rng_image(14, 8, 8, 3)
    exif = Image.Exif()
    exif[0x0112] = 3  # rotate 180°
    write_folder(tmp_path / "src", {"r.png": Image.fromarray(pixels, "RGB")}, **{"r.png": {"exif": exif}})
    dataset = MultiResDataset(build_cache(tmp_path / "src", tmp_path / "out", resolution=8))
    np.testing.assert_array_equal(dataset.level(8)[0].transpose(1, 2, 0), pixels[::-1, ::-1])


def test_upscale_enlarges_with_lanczos(tmp_path: Path) -> None:
    small = Image.fromarray(rng_image(15, 12, 12, 3), "RGB")
    write_folder(tmp_path / "src", {"s.png": small})
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
            archive.writestr(name, png_bytes(Image.fromarray(rng_image(100 + i, 8, 8, 3), "RGB")))
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
    write_folder(
        tmp_path / "src", {f"c{k}/{i}.png": Image.fromarray(rng_image(i, 4, 4, 1), "L") for k in range(2) for i in range(2)}
    )
    (tmp_path / "src" / "dataset.json").write_text(
        json.dumps({"labels": [["c1/1.png", 3], ["c0/0.png", 0], ["c0/1.png", 1], ["c1/0.png", 2]]})
    )
    dataset = MultiResDataset(build_cache(tmp_path / "src", tmp_path / "out", resolution=4))
    assert dataset.labels.tolist() == [0, 1, 2, 3]


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
