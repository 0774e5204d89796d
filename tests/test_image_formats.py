"""Image formats the data pipeline meets in the wild, each converted by its documented rule."""

from __future__ import annotations

import numpy as np
from PIL import Image

from progrow.data import MultiResDataset, build_cache


def _build(tmp_path, name, image, **save):
    folder = tmp_path / name
    folder.mkdir()
    image.save(folder / f"img.{save.pop('ext')}", **save)
    return MultiResDataset(build_cache(folder, tmp_path / f"{name}-cache", resolution=8, channels="rgb"))


def test_cmyk_jpeg_becomes_rgb_by_pillows_conversion(tmp_path):
    rgb = Image.fromarray(np.full((8, 8, 3), (200, 40, 90), np.uint8))
    cmyk = rgb.convert("CMYK")
    ds = _build(tmp_path, "cmyk", cmyk, ext="jpg", quality=100)
    reread = Image.open(next((tmp_path / "cmyk").iterdir()))
    assert reread.mode == "CMYK"
    expected = np.asarray(reread.convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(ds.level(8)[0], expected)


def test_animated_gif_contributes_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    folder = tmp_path / "gif"
    folder.mkdir()
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(folder / "anim.gif").n_frames == 3
    ds = MultiResDataset(build_cache(folder, tmp_path / "gif-cache", resolution=8))
    top = ds.level(8)[0]
    assert top.shape == (3, 8, 8) and (top[0] > 200).all() and (top[1:] < 50).all()  # red: frame 0


def test_sixteen_bit_white_is_not_clipped_and_mid_grey_is_half(tmp_path):
    values = np.array([[65535, 32768], [0, 257]], np.uint16).repeat(4, 0).repeat(4, 1)
    ds = _build(tmp_path, "g16", Image.fromarray(values), ext="png")
    top = ds.level(8)[0, 0]
    assert top[0, 0] == 255 and top[0, 4] == 128 and top[4, 0] == 0 and top[4, 4] == 1
