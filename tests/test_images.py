"""progrow.to_uint8 / progrow.to_pil: the one [-1, 1] → uint8 rule (half up, the inverse of to_float) and PIL modes."""

from __future__ import annotations

import pytest
import torch

import progrow as pg


def test_half_way_values_round_up_and_every_uint8_survives_the_round_trip():
    k = torch.arange(255, dtype=torch.float64)
    x = (k - 127) / 127.5  # 127.5·x + 127.5 = k + 0.5 exactly in float64
    assert torch.equal(x * 127.5 + 127.5, k + 0.5)
    assert torch.equal(pg.to_uint8(x), (k + 1).to(torch.uint8))  # half up: k + 0.5 → k + 1, also for even k
    u8 = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(pg.to_uint8(pg.to_float(u8)), u8)  # float32 too


def test_values_are_clamped_and_shapes_kept():
    x = torch.tensor([[-3.0, -1.0, 0.999, 1.0, 7.0]])
    assert pg.to_uint8(x).tolist() == [[0, 0, 255, 255, 255]]
    assert pg.to_uint8(torch.zeros(2, 3, 4, 5, dtype=torch.bfloat16)).shape == (2, 3, 4, 5)


def test_to_pil_modes_and_refusals():
    gray = pg.to_pil(torch.full((1, 4, 6), 7, dtype=torch.uint8))
    rgb = pg.to_pil(torch.stack([torch.full((4, 6), v, dtype=torch.uint8) for v in (1, 2, 3)]))
    assert (gray.mode, gray.size, gray.getpixel((0, 0))) == ("L", (6, 4), 7)
    assert (rgb.mode, rgb.getpixel((5, 3))) == ("RGB", (1, 2, 3))
    for bad in (torch.zeros(2, 4, 4, dtype=torch.uint8), torch.zeros(3, 4, 4), torch.zeros(1, 3, 4, 4, dtype=torch.uint8)):
        with pytest.raises(ValueError, match="to_pil: expected a uint8 image"):
            pg.to_pil(bad)
