"""Tests for progrow.metrics: FID/KID/IS through the real torch-fidelity path, the real-statistics cache, the
missing-weights error, SWD, MS-SSIM, the generator wrapper and the registry.

Nothing downloads: InceptionV3 is torch-fidelity's own module loaded (strictly) from a state dict with its
exact keys and shapes and random values, and the download in the missing-weights test is made to fail.
Inception costs about 150 ms per image on 2 CPU cores, so the FID tests use 8–16 images per side. SWD and
SSIM are compared with straightforward re-implementations written here (numpy, loops).
"""

from __future__ import annotations

import math
import shutil
import urllib.error
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from nets import ProtocolGenerator, StackGenerator, plain_generator_stack
from torch import Tensor, nn

import progrow as pg
from progrow.data import MultiResDataset, build_cache
from progrow.metrics import (
    METRICS,
    WEIGHTS_FILE_NAME,
    GeneratedImages,
    MissingWeightsError,
    compute_metrics,
    evaluate,
    ms_ssim,
    ms_ssim_diversity,
    ssim,
    swd,
    to_uint8_rgb,
    write_random_inception_weights,
)

RES = 8


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random InceptionV3 weights with torch-fidelity's exact 566 keys and shapes (it loads them strictly)."""
    return write_random_inception_weights(tmp_path_factory.mktemp("inception") / WEIGHTS_FILE_NAME, seed=0)


class ExtractorCounter:
    """Counts the images torch-fidelity's InceptionV3 processes (its forward, wrapped)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.images = 0
        original = FeatureExtractorInceptionV3.forward

        def counting_forward(extractor: nn.Module, x: Tensor):  # type: ignore[no-untyped-def]
            self.images += x.shape[0]
            return original(extractor, x)

        monkeypatch.setattr(FeatureExtractorInceptionV3, "forward", counting_forward)


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> ExtractorCounter:
    return ExtractorCounter(monkeypatch)


class Replay(nn.Module):
    """A 'generator' that returns stored uint8 images (as [-1, 1] floats) in order, cycling; for exact FID checks."""

    latent_dim = 4

    def __init__(self, images: Tensor) -> None:
        super().__init__()
        self.images = torch.from_numpy(np.array(images))
        self.weight = nn.Parameter(torch.zeros(()))  # a parameter, so the device is found as for a real G
        self.position = 0

    def forward(self, z: Tensor, state: pg.GrowthState) -> Tensor:
        idx = (torch.arange(len(z)) + self.position) % len(self.images)
        self.position += len(z)
        return self.images[idx].float() / 127.5 - 1.0


def _cache(path: Path, seed: int, count: int = 16) -> Path:
    return build_cache(f"synthetic:{seed}:{count}", path, resolution=RES)


# ----------------------------------------------------------------------------- FID through torch-fidelity
def test_weights_file_matches_torch_fidelity(weights: Path) -> None:
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3

    assert URL_INCEPTION_V3.rsplit("/", 1)[-1] == WEIGHTS_FILE_NAME
    state = torch.load(weights, weights_only=True)
    assert len(state) == 566
    FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))  # strict


def test_fid_self_zero_and_real_side_cached(weights, tmp_path, counter) -> None:
    data = _cache(tmp_path / "data", seed=1)
    reals = MultiResDataset(data).level(RES)
    opts = dict(num_samples=16, batch_size=16, weights_path=weights, cache_dir=tmp_path / "fidcache")
    state = pg.GrowthState(RES)

    first = compute_metrics(Replay(reals), state, data, **opts)
    assert abs(first["fid"]) < 1e-3
    assert counter.images == 32  # 16 generated + 16 real
    cached = sorted(p.name for p in (tmp_path / "fidcache").iterdir())
    content = MultiResDataset(data).content_hash.split(":")[1][:32]
    assert cached and all(name.startswith(f"progrow-{content}-r{RES}-n16-w") for name in cached)

    counter.images = 0
    second = compute_metrics(Replay(reals), state, data, **opts)
    assert counter.images == 16  # the generated side only: real statistics come from the cache
    assert second == first


def test_changed_dataset_under_same_path_recomputes_and_differs(weights, tmp_path, counter) -> None:
    data = _cache(tmp_path / "data", seed=1, count=8)
    fixed = Replay(MultiResDataset(data).level(RES))  # always the first dataset's images
    opts = dict(num_samples=8, batch_size=8, weights_path=weights, cache_dir=tmp_path / "fidcache")
    before = compute_metrics(fixed, pg.GrowthState(RES), data, **opts)
    shutil.rmtree(data)
    _cache(tmp_path / "data", seed=3, count=8)  # same path, new content hash
    fixed.position = 0
    counter.images = 0
    after = compute_metrics(fixed, pg.GrowthState(RES), data, **opts)
    assert counter.images == 16  # the real side was extracted again
    assert len(list((tmp_path / "fidcache").glob("progrow-*-stat-fid-2048.pt"))) == 2
    # against itself ≈ 0; against a clearly different set (the new content) clearly > 0
    assert abs(before["fid"]) < 1e-3 and after["fid"] > 1e-2 and after["fid"] > 1000 * abs(before["fid"])


def test_missing_weights_error_says_how_to_supply_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty hub cache

    def offline(*args, **kwargs):  # no network: the download torch-fidelity starts fails as it would offline
        raise urllib.error.URLError("offline (simulated)")

    monkeypatch.setattr(torch.hub, "urlopen", offline)
    G = ProtocolGenerator()
    with pytest.raises(MissingWeightsError) as info:
        compute_metrics(
            pg.ProgressiveGenerator(G),
            pg.GrowthState(RES),
            torch.zeros(4, 3, RES, RES, dtype=torch.uint8),
            num_samples=4,
            latent_dim=G.z_dim,
            cache_dir=tmp_path / "cache",
        )
    message = str(info.value)
    assert "weights_path" in message and "pt_inception-2015-12-05" in message and WEIGHTS_FILE_NAME in message
    assert "$TORCH_HOME/hub/checkpoints/" in message and str(tmp_path / "torch_home") in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no URLError traceback attached
    assert isinstance(info.value, FileNotFoundError) and not isinstance(info.value, urllib.error.URLError)


def test_bad_weights_path_is_named(tmp_path) -> None:
    G = pg.ProgressiveGenerator(ProtocolGenerator())
    reals = torch.zeros(4, 3, RES, RES, dtype=torch.uint8)
    with pytest.raises(MissingWeightsError, match="weights_path"):
        compute_metrics(G, pg.GrowthState(RES), reals, num_samples=4, latent_dim=16, weights_path=tmp_path / "nope.pth")
    torch.save({"fc.weight": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match=r"weights_path: .*wrong.pth.*missing"):
        compute_metrics(G, pg.GrowthState(RES), reals, num_samples=4, latent_dim=16, weights_path=tmp_path / "wrong.pth")


def test_options_are_validated_before_anything_runs() -> None:
    G = pg.ProgressiveGenerator(ProtocolGenerator())
    reals = torch.zeros(4, 3, RES, RES, dtype=torch.uint8)
    state = pg.GrowthState(RES)
    with pytest.raises(ValueError, match="metrics: unknown"):
        compute_metrics(G, state, reals, metrics=("fid", "prc"), latent_dim=16)
    with pytest.raises(ValueError, match="num_samples"):
        compute_metrics(G, state, reals, num_samples=1, latent_dim=16)
    with pytest.raises(ValueError, match="latent_dim"):
        compute_metrics(G, state, reals, num_samples=4)  # ProtocolGenerator calls it z_dim
    with pytest.raises(ValueError, match="num_real: 9 requested, the real set has 4"):
        compute_metrics(G, state, reals, num_samples=4, num_real=9, latent_dim=16)
    with pytest.raises(ValueError, match="reals: the images are"):
        compute_metrics(G, state, torch.zeros(4, 3, 16, 16, dtype=torch.uint8), num_samples=4, latent_dim=16)
    with pytest.raises(ValueError, match="device"):
        compute_metrics(G, state, reals, num_samples=4, latent_dim=16, device="mps")


# ------------------------------------------------------------------------------------------ the registry
def test_registry_names_and_errors() -> None:
    assert set(METRICS) == {"fid", "kid", "is", "swd", "ms_ssim"}
    G = pg.ProgressiveGenerator(ProtocolGenerator())
    reals = torch.zeros(4, 3, RES, RES, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"unknown metric\(s\) 'fdi'; known: fid, kid, is, swd, ms_ssim"):
        evaluate(["fdi"], G, pg.GrowthState(RES), reals)
    with pytest.raises(ValueError, match=r"unknown option\(s\) num_sampels"):
        evaluate(["swd"], G, pg.GrowthState(RES), reals, num_sampels=4)


def test_evaluate_all_metrics(weights, tmp_path, counter) -> None:
    G = pg.ProgressiveGenerator(ProtocolGenerator())
    data = _cache(tmp_path / "data", seed=1)
    scores = evaluate(
        ["fid", "kid", "is", "swd", "ms_ssim"],
        G,
        pg.GrowthState(RES),
        data,
        num_samples=8,
        latent_dim=16,
        weights_path=weights,
        cache_dir=tmp_path / "c",
        num_pairs=16,
        seed=1,
    )
    assert set(scores) == {"fid", "kid", "kid_std", "is", "is_std", "swd", "swd_8", "ms_ssim"}
    assert counter.images == 16  # FID, KID and IS share one extraction per side
    assert all(math.isfinite(v) for v in scores.values())
    assert scores["fid"] > 0 and scores["swd"] > 0 and 0 <= scores["ms_ssim"] <= 1 and scores["is"] >= 1 - 1e-6


# ----------------------------------------------------------------------------------- the generator side
def test_generated_images_uint8_rgb_deterministic_and_batch_independent() -> None:
    G = pg.ProgressiveGenerator(ProtocolGenerator(), img_channels=1)  # grayscale: repeated to RGB
    state = pg.GrowthState(16, alpha=0.5)
    images = GeneratedImages(G, state, latent_dim=16, seed=3).sample(10, batch_size=4)
    assert images.dtype == torch.uint8 and images.shape == (10, 3, 16, 16)
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])
    assert torch.equal(images, GeneratedImages(G, state, latent_dim=16, seed=3).sample(10, batch_size=7))
    assert not torch.equal(images, GeneratedImages(G, state, latent_dim=16, seed=4).sample(10, batch_size=4))
    source = GeneratedImages(G, state, latent_dim=16, seed=3)
    assert torch.equal(torch.cat([source(torch.zeros(6, 1)), source(torch.zeros(4, 1))]), images)  # noise ignored


def test_generated_images_restore_modes_and_growth_state() -> None:
    G = pg.ProgressiveGenerator(StackGenerator(plain_generator_stack(16)))  # BatchNorm: the mode matters
    seen: list[bool] = []
    G.register_forward_pre_hook(lambda module, args: seen.append(module.net.stack[0][1].training))
    bound = pg.GrowthState(8, alpha=0.25)
    G.set_state(bound)
    G.train()
    G.net.stack[1].eval()  # a mixed setting must come back as it was
    before = {name: m.training for name, m in G.named_modules()}
    images = GeneratedImages(G, pg.GrowthState(16), latent_dim=16).sample(4)
    assert images.shape == (4, 3, 16, 16) and seen == [False]
    assert {name: m.training for name, m in G.named_modules()} == before
    assert G.growth_state == bound


def test_to_uint8_rgb_rounding() -> None:
    x = torch.tensor([-1.5, -1.0, -0.99999, 0.0, 1.0 / 255, 1.0, 2.0]).view(1, 1, 1, 7)
    assert to_uint8_rgb(x)[0, 0, 0].tolist() == [0, 0, 0, 128, 128, 255, 255]
    u = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(to_uint8_rgb(pg.to_float(u))[:, :1], u)  # exact inverse of to_float
    with pytest.raises(ValueError, match="NaN"):
        to_uint8_rgb(torch.full((1, 3, 2, 2), float("nan")))


# ---------------------------------------------------------------------------------------------------- SWD
def _smooth_images(n: int, size: int, seed: int) -> Tensor:
    """Band-limited colour images (random low-frequency patterns), uint8 `[n, 3, size, size]`."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    return (x * 180 + 30).round().clamp(0, 255).to(torch.uint8)


def test_swd_identical_sets_and_monotone_in_noise() -> None:
    a = _smooth_images(64, 32, seed=0)
    same = swd(a, a.clone(), descriptors_per_image=32)
    assert set(same) == {"swd_32", "swd_16", "swd"} and all(v == 0.0 for v in same.values())
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(a.shape, generator=g)
    values = [
        swd(a, (a + s * noise).round().clamp(0, 255).to(torch.uint8), descriptors_per_image=32)["swd"]
        for s in (1.0, 4.0, 16.0, 64.0)
    ]
    assert all(x < y for x, y in pairwise(values)), values
    offset = swd(a, a + 10, descriptors_per_image=32)["swd"]  # no clipping: normalized away (per-set mean/std)
    assert offset < 1e-2 * values[0]


def test_swd_is_seeded() -> None:
    a, b = _smooth_images(16, 16, seed=0), _smooth_images(16, 16, seed=1)
    assert swd(a, b, seed=5) == swd(a, b, seed=5) != swd(a, b, seed=6)


def _np_blur(x: np.ndarray, gain: float = 1.0) -> np.ndarray:
    k = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16 * gain
    p = np.pad(x, ((2, 2), (2, 2)), mode="reflect")
    h, w = x.shape
    rows = np.array([[sum(k[t] * p[i + 2, j + t] for t in range(5)) for j in range(w)] for i in range(-2, h + 2)])
    return np.array([[sum(k[t] * rows[i + t, j] for t in range(5)) for j in range(w)] for i in range(h)])


def _reference_swd(a: np.ndarray, b: np.ndarray, *, k: int, projections: int, repeats: int, seed: int) -> dict:
    """SWD written out: numpy pyramid (loops), loop-extracted patches, per-channel normalization, sorted projections."""
    n, c, size, _ = a.shape

    def pyramid(img: np.ndarray) -> list[np.ndarray]:  # [C, S, S] -> levels, finest first
        levels, cur = [], img
        while cur.shape[-1] > 16:
            down = np.stack([_np_blur(ch)[::2, ::2] for ch in cur])
            up = np.zeros_like(cur)
            up[:, ::2, ::2] = down
            levels.append(cur - np.stack([_np_blur(ch, 2.0) for ch in up]))
            cur = down
        return levels + [cur]

    pyr_a = [pyramid(img.astype(np.float64)) for img in a]
    pyr_b = [pyramid(img.astype(np.float64)) for img in b]
    g = torch.Generator().manual_seed(seed)
    out = {}
    for level in range(len(pyr_a[0])):
        s = pyr_a[0][level].shape[-1]
        ys = torch.randint(0, s - 7 + 1, (n, k), generator=g).numpy()
        xs = torch.randint(0, s - 7 + 1, (n, k), generator=g).numpy()
        sets = []
        for pyr in (pyr_a, pyr_b):
            desc = np.array(
                [pyr[i][level][:, ys[i, j] : ys[i, j] + 7, xs[i, j] : xs[i, j] + 7] for i in range(n) for j in range(k)]
            )  # [M, C, 7, 7]
            mean = desc.mean(axis=(0, 2, 3), keepdims=True)
            std = desc.std(axis=(0, 2, 3), keepdims=True)
            sets.append(((desc - mean) / std).reshape(n * k, -1))
        dists = []
        for _ in range(repeats):
            dirs = torch.randn(c * 49, projections // repeats, generator=g).double().numpy()
            dirs /= np.sqrt((dirs**2).sum(axis=0, keepdims=True))
            pa, pb = np.sort(sets[0] @ dirs, axis=0), np.sort(sets[1] @ dirs, axis=0)
            dists.append(np.abs(pa - pb).mean())
        out[f"swd_{s}"] = float(np.mean(dists)) * 1e3
    out["swd"] = float(np.mean(list(out.values())))
    return out


@pytest.mark.parametrize("size", [16, 32])  # one level (the image), two levels (Laplacian 32², Gaussian 16²)
def test_swd_matches_written_out_computation(size: int) -> None:
    a, b = _smooth_images(3, size, seed=0), _smooth_images(3, size, seed=1)
    got = swd(a, b, descriptors_per_image=5, num_projections=6, num_repeats=2, seed=7)
    want = _reference_swd(a.numpy(), b.numpy(), k=5, projections=6, repeats=2, seed=7)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-4), key


def test_swd_of_images_smaller_than_a_patch_uses_whole_images() -> None:
    a, b = _smooth_images(32, 16, seed=0)[:, :, ::4, ::4], _smooth_images(32, 16, seed=1)[:, :, ::4, ::4]
    same, other = swd(a, a.clone()), swd(a, b)
    assert set(same) == {"swd_4", "swd"} and same["swd"] < 1e-6
    assert other["swd"] > 1.0


def test_swd_rejects_bad_input() -> None:
    a = _smooth_images(4, 16, seed=0)
    with pytest.raises(ValueError, match="same shape"):
        swd(a, a[:3])
    with pytest.raises(ValueError, match="uint8"):
        swd(a.float(), a)
    with pytest.raises(ValueError, match="min_resolution 4 smaller than patch_size 7"):
        swd(a, a, min_resolution=4)
    with pytest.raises(ValueError, match="multiple of num_repeats"):
        swd(a, a, num_projections=10, num_repeats=4)


# ------------------------------------------------------------------------------------------------ MS-SSIM
def _reference_ssim_cs(a: np.ndarray, b: np.ndarray, size: int = 11, sigma: float = 1.5, L: float = 255.0):
    """SSIM and cs of one pair `[C, H, W]`: every valid window written out, Gaussian weights, float64."""
    coords = np.arange(size) - (size - 1) / 2
    g1 = np.exp(-(coords**2) / (2 * sigma**2))
    w = np.outer(g1, g1) / np.outer(g1, g1).sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    ssims, css = [], []
    for ch in range(a.shape[0]):
        for i in range(a.shape[1] - size + 1):
            for j in range(a.shape[2] - size + 1):
                x, y = a[ch, i : i + size, j : j + size], b[ch, i : i + size, j : j + size]
                mx, my = (w * x).sum(), (w * y).sum()
                vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
                cov = (w * (x - mx) * (y - my)).sum()
                cs = (2 * cov + c2) / (vx + vy + c2)
                css.append(cs)
                ssims.append((2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs)
    return float(np.mean(ssims)), float(np.mean(css))


def test_ssim_matches_written_out_computation() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (2, 2, 14, 13), generator=g, dtype=torch.uint8)
    b = (a.float() + 40 * torch.randn(a.shape, generator=g)).clamp(0, 255).round().to(torch.uint8)
    got = ssim(a, b)
    for i in range(2):
        assert float(got[i]) == pytest.approx(_reference_ssim_cs(a[i].double().numpy(), b[i].double().numpy())[0], rel=1e-4)


def test_ms_ssim_scales_follow_the_documented_rule() -> None:
    a = _smooth_images(2, 44, seed=0).double()  # 44 → 22 → 11: three scales
    b = _smooth_images(2, 44, seed=1).double()
    weights = np.array([0.0448, 0.2856, 0.3001])
    weights = weights / weights.sum()
    pool = lambda x: torch.nn.functional.avg_pool2d(x, 2)  # noqa: E731
    scales = [(a, b), (pool(a), pool(b)), (pool(pool(a)), pool(pool(b)))]
    for i in range(2):
        terms = [_reference_ssim_cs(x[i].numpy(), y[i].numpy()) for x, y in scales]
        want = (
            np.prod([max(cs, 0) ** w for (_, cs), w in zip(terms[:-1], weights[:-1], strict=True)])
            * max(terms[-1][0], 0) ** weights[-1]
        )
        assert float(ms_ssim(a, b)[i]) == pytest.approx(want, rel=1e-6)
    assert torch.allclose(ms_ssim(a, b, max_scales=1), ssim(a, b))


def test_ms_ssim_identical_and_noise() -> None:
    a = _smooth_images(4, 64, seed=0)
    assert torch.allclose(ms_ssim(a, a.clone()), torch.ones(4, dtype=torch.float32))
    assert torch.allclose(ms_ssim(a[:, :, :8, :8], a[:, :, :8, :8]), torch.ones(4))  # below the window: 7×7, one scale
    g = torch.Generator().manual_seed(0)
    noise_a = torch.randint(0, 256, (8, 3, 64, 64), generator=g, dtype=torch.uint8)
    noise_b = torch.randint(0, 256, (8, 3, 64, 64), generator=g, dtype=torch.uint8)
    assert float(ms_ssim(noise_a, noise_b).mean()) < 0.05
    assert ms_ssim_diversity(a.repeat(3, 1, 1, 1), num_pairs=4, seed=1) < 1.0
    same = a[:1].expand(5, -1, -1, -1)
    assert ms_ssim_diversity(same, num_pairs=20) == pytest.approx(1.0)
    assert ms_ssim_diversity(noise_a, num_pairs=20, seed=2) == ms_ssim_diversity(noise_a, num_pairs=20, seed=2) < 0.05
