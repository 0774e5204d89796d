"""A 10,000-image folder with 25 broken files: every one reported by path, none falsely; skip or error."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from progrow.data import DataError, MultiResDataset, build_cache

N, RES = 10_000, 4


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad") / "images"
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (RES, RES, 3), dtype=np.uint8)).save(buf, format="PNG")
    good = buf.getvalue()
    broken = set(rng.choice(N, size=25, replace=False).tolist())
    kinds = {}
    for i in range(N):
        sub = root / f"d{i // 1000}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img{i:05d}.png"
        if i in broken:
            kind = ("zero", "truncated", "garbage")[len(kinds) % 3]
            data = {"zero": b"", "truncated": good[: len(good) // 2], "garbage": rng.bytes(200)}[kind]
            kinds[str(path)] = kind
        else:
            data = good
        path.write_bytes(data)
    return root, kinds


def test_error_policy_lists_every_broken_file_and_writes_nothing(folder, tmp_path):
    root, kinds = folder
    with pytest.raises(DataError) as info:
        build_cache(root, tmp_path / "cache", resolution=RES)
    message = str(info.value)
    assert message.startswith(
        f"25 of {N} images cannot be used, so nothing was written:\n  25 cannot be read (--bad-images skip leaves them out):"
    )
    listed = {line.split(": cannot read")[0].removeprefix("    - ") for line in message.splitlines()[2:]}
    assert listed == set(kinds)  # all 25, and nothing else
    assert not (tmp_path / "cache").exists() and not list(tmp_path.iterdir())


def test_skip_policy_leaves_them_out_and_records_them(folder, tmp_path):
    root, kinds = folder
    out = build_cache(root, tmp_path / "cache", resolution=RES, bad_images="skip")
    ds = MultiResDataset(out)
    assert ds.num_images == N - 25
    meta = json.loads((out / "meta.json").read_text())
    assert len(meta["skipped"]) == 25
    assert {str(root / s["name"]) for s in meta["skipped"]} == set(kinds)  # names relative to the folder
    skipped = {s["reason"].split(": cannot read")[0] for s in meta["skipped"]}
    assert skipped == set(kinds) and meta["policies"]["bad_images"] == "skip"
    again = build_cache(root, tmp_path / "again", resolution=RES, bad_images="skip")
    assert MultiResDataset(again).content_hash == ds.content_hash  # deterministic
