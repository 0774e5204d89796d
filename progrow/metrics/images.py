"""Both sides of a metric as uint8 RGB: a generator at a growth state, and a set of real images at its resolution.

The generated side is `GeneratedImages`, an `nn.Module` that draws its own latents from a fixed seed and
returns uint8 `[n, 3, R, R]`. The real side is `RealImages`, a torch `Dataset` of uint8 `[3, R, R]` over a
fixed subset of the dataset's level at `R` (the same 2×2 box-filtered uint8 levels training reads).

Colour rule (both sides): 3 channels pass through; 1 channel (grayscale) is repeated to 3, so InceptionV3
sees gray RGB; any other count is an error. Pixel rule (generated side): `[-1, 1] → round(127.5·x + 127.5)`
clamped to 0..255, the inverse of `progrow.data.to_float` (half-way values round up): `progrow.to_uint8`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from progrow.data import MultiResDataset
from progrow.images import to_uint8
from progrow.state import GrowthState

__all__ = [
    "GeneratedImages",
    "RealImages",
    "Reals",
    "Labels",
    "open_reals",
    "real_subset",
    "real_halves",
    "to_uint8_rgb",
    "evaluating",
    "resolve_latent_dim",
    "resolve_device",
]

# A cache folder (path), an opened cache, or uint8 images `[N, C, R, R]` already at the state's resolution.
Reals = MultiResDataset | str | os.PathLike[str] | Tensor
# None (unconditional), a number of classes (uniform labels), or a 1-D pool of labels to draw from.
Labels = None | int | Tensor | np.ndarray
DeviceLike = None | str | torch.device

_CHUNK = 256  # latents are drawn in chunks of this many, so images do not depend on the batch size
_SUBSET_SEED = 0  # the real subset is a fixed permutation prefix, the same for every call and every `seed`


def to_uint8_rgb(images: Tensor) -> Tensor:
    """Map generator output `[N, C, H, W]` in [-1, 1] (C = 1 or 3) to uint8 `[N, 3, H, W]` (see the module rules)."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"to_uint8_rgb: expected images [N, 1 or 3, H, W], got shape {tuple(images.shape)}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("to_uint8_rgb: the images contain NaN or infinite values (has the generator diverged?)")
    return _as_rgb_u8(to_uint8(images))


def _as_rgb_u8(images: Tensor) -> Tensor:
    return images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images


def check_image_batch(images: object, resolution: int, *, caller: str) -> Tensor:
    """`images` if they are uint8 `[N ≥ 2, 1 or 3, R, R]` at `resolution`; else a `ValueError` naming `caller`."""
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        got = f"{images.dtype} of shape {tuple(images.shape)}" if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{caller}: images expected uint8 [N, 1 or 3, R, R], got {got}")
    if tuple(images.shape[2:]) != (resolution, resolution) or len(images) < 2:
        raise ValueError(f"{caller}: images expected at least 2 of {resolution}², got shape {tuple(images.shape)}")
    return images


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Run `module` in eval mode inside the block; restore every submodule's train/eval mode after."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def resolve_latent_dim(generator: nn.Module, latent_dim: int | None) -> int:
    """`latent_dim` if given, else the generator's `net.latent_dim` or `latent_dim` (the reference ProGAN has one)."""
    if latent_dim is None:
        for owner in (getattr(generator, "net", None), generator):
            value = getattr(owner, "latent_dim", None)
            if isinstance(value, int) and not isinstance(value, bool):
                latent_dim = value
                break
        else:
            raise ValueError(
                f"latent_dim: {type(generator).__name__} has no `latent_dim` (nor `net.latent_dim`); "
                "pass latent_dim=<length of the latent vector z [N, latent_dim]>"
            )
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"latent_dim: expected an int ≥ 1, got {latent_dim!r}")
    return latent_dim


def _module_device(module: nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    for buffer in module.buffers():
        return buffer.device
    return torch.device("cpu")


def resolve_device(device: DeviceLike, generator: nn.Module | None) -> torch.device:
    """The device metrics run on: `device` if given, else the generator's (cpu without one); only CPU and CUDA."""
    if device is None:
        resolved = _module_device(generator) if generator is not None else torch.device("cpu")
    else:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device: expected 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device: torch-fidelity runs on 'cpu' or 'cuda' only, got {str(resolved)!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {str(resolved)!r} was asked for, but CUDA is not available on this machine")
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


def _check_labels(labels: Labels) -> Tensor | None:
    """Labels as a 1-D int64 pool (an int `K` becomes `arange(K)`), or None."""
    if labels is None:
        return None
    if isinstance(labels, int) and not isinstance(labels, bool):
        if labels < 1:
            raise ValueError(f"labels: a number of classes must be ≥ 1, got {labels}")
        return torch.arange(labels)
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(np.asarray(labels))
    if not isinstance(labels, Tensor) or labels.dim() != 1 or len(labels) == 0 or labels.is_floating_point():
        raise ValueError(
            "labels: expected None, a number of classes, or a non-empty 1-D integer tensor/array of labels to draw "
            f"from (e.g. the dataset's labels), got {type(labels).__name__}"
            + (f" of shape {tuple(labels.shape)} and dtype {labels.dtype}" if isinstance(labels, Tensor) else "")
        )
    return labels.detach().to("cpu", torch.int64)


class GeneratedImages(nn.Module):
    """The generator at a fixed growth state as an image source: `forward(noise) -> uint8 [n, 3, R, R]`.

    Only the length of `noise` is used (torch-fidelity passes its own noise): latents `[n, latent_dim]` are
    drawn from `torch.randn` with a CPU generator seeded by `seed`, in chunks of 256, so the k-th image is
    the same whatever the batch size; `reset()` starts the sequence again. With `labels` (a number of
    classes or a pool of labels) each chunk also draws uniform labels, passed as `generator(z, state,
    labels=...)`. The generator runs in eval mode under `torch.no_grad()`, on its own device; every
    submodule's train/eval mode is restored after each call, and a growth wrapper's bound state is left
    alone (an explicit state is for that call only). It is held outside this module's submodules, so
    `.eval()`, `.cuda()` or `.cpu()` on this wrapper (as torch-fidelity calls them) never touch it.
    Images are returned on `device`.
    """

    def __init__(
        self,
        generator: nn.Module,
        state: GrowthState,
        *,
        latent_dim: int | None = None,
        seed: int = 0,
        labels: Labels = None,
        device: DeviceLike = None,
    ) -> None:
        super().__init__()
        if not isinstance(generator, nn.Module):
            raise TypeError(f"generator: expected an nn.Module called as generator(z, state), got {type(generator).__name__}")
        if not isinstance(state, GrowthState):
            raise TypeError(f"state: expected a progrow.GrowthState, got {type(state).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed: expected an int, got {seed!r}")
        object.__setattr__(self, "generator", generator)  # not a submodule: see the class docstring
        self.state = state
        self.latent_dim = resolve_latent_dim(generator, latent_dim)
        self.seed = seed
        self.label_pool = _check_labels(labels)
        self.device = resolve_device(device, generator)
        self.reset()

    def reset(self) -> None:
        """Start the latent (and label) sequence again from `seed`."""
        self._rng = torch.Generator().manual_seed(self.seed)
        self._z = torch.empty(0, self.latent_dim)
        self._labels = torch.empty(0, dtype=torch.int64)

    def _draw(self, n: int) -> tuple[Tensor, Tensor | None]:
        while len(self._z) < n:
            z = torch.randn(_CHUNK, self.latent_dim, generator=self._rng)
            self._z = torch.cat([self._z, z])
            if self.label_pool is not None:
                pick = torch.randint(len(self.label_pool), (_CHUNK,), generator=self._rng)
                self._labels = torch.cat([self._labels, self.label_pool[pick]])
        z, self._z = self._z[:n], self._z[n:]
        labels = None
        if self.label_pool is not None:
            labels, self._labels = self._labels[:n], self._labels[n:]
        return z, labels

    def forward(self, noise: Tensor) -> Tensor:
        """The next `len(noise)` images as uint8 `[n, 3, R, R]` on `device` (the values of `noise` are ignored)."""
        return self.next(len(noise))

    def next(self, n: int) -> Tensor:
        """The next `n` images of the sequence as uint8 `[n, 3, R, R]` on `device`."""
        generator: nn.Module = self.generator  # type: ignore[assignment]
        z, labels = self._draw(n)
        g_device = _module_device(generator)
        kwargs: dict[str, Any] = {} if labels is None else {"labels": labels.to(g_device)}
        with evaluating(generator), torch.no_grad():
            images = generator(z.to(g_device), self.state, **kwargs)
        res = self.state.resolution
        if not isinstance(images, Tensor) or images.dim() != 4 or tuple(images.shape[2:]) != (res, res):
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"generator: expected images [{n}, 1 or 3, {res}, {res}] at the state's resolution, got {got}")
        return to_uint8_rgb(images).to(self.device)

    def sample(self, n: int, *, batch_size: int = 64) -> Tensor:
        """`n` images from the start of the sequence (after `reset()`), uint8 `[n, 3, R, R]` on the CPU."""
        self.reset()
        out = [self.next(min(batch_size, n - i)).cpu() for i in range(0, n, batch_size)]
        self.reset()
        return torch.cat(out) if out else torch.empty(0, 3, self.state.resolution, self.state.resolution, dtype=torch.uint8)

    def extra_repr(self) -> str:
        return f"state={self.state}, latent_dim={self.latent_dim}, seed={self.seed}, device={self.device}"


def open_reals(reals: Reals, resolution: int) -> tuple[Any, str]:
    """The images `[N, C, R, R]` (memmap or uint8 tensor) at `resolution` and their content identity `sha256:…`.

    A dataset is identified by its cache's content hash (each level is a pure function of the top one);
    a tensor by the sha256 of its shape and bytes.
    """
    if isinstance(reals, (str, os.PathLike)):
        reals = MultiResDataset(reals)
    if isinstance(reals, MultiResDataset):
        return reals.level(resolution), reals.content_hash
    if isinstance(reals, Tensor):
        if reals.dtype != torch.uint8 or reals.dim() != 4 or reals.shape[1] not in (1, 3) or len(reals) == 0:
            raise ValueError(
                f"reals: expected uint8 images [N, 1 or 3, {resolution}, {resolution}], got {reals.dtype} "
                f"of shape {tuple(reals.shape)}"
            )
        if tuple(reals.shape[2:]) != (resolution, resolution):
            raise ValueError(
                f"reals: the images are {tuple(reals.shape[2:])}, the state's resolution is {resolution}; pass them "
                "at that resolution (or pass the dataset, whose levels hold every resolution)"
            )
        data = reals.detach().cpu().contiguous()
        digest = hashlib.sha256(repr(tuple(data.shape)).encode())
        digest.update(data.numpy().tobytes())
        return data, f"sha256:{digest.hexdigest()}"
    raise TypeError(
        f"reals: expected a progrow.data cache folder, a MultiResDataset or a uint8 tensor, got {type(reals).__name__}"
    )


def _permutation(num_images: int) -> Tensor:
    return torch.randperm(num_images, generator=torch.Generator().manual_seed(_SUBSET_SEED))


def real_subset(num_images: int, count: int) -> Tensor:
    """Indices of `count` of `num_images` real images: all of them, or a fixed seeded subset (sorted)."""
    if count == num_images:
        return torch.arange(num_images)
    return _permutation(num_images)[:count].sort().values


def real_halves(num_images: int, count: int) -> tuple[Tensor, Tensor]:
    """Two disjoint sorted index sets `[count]`: the first `count` of `real_subset`'s permutation, then the next `count`.

    The first set is `real_subset(num_images, count)` itself whenever `2·count ≤ num_images` (required).
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1 or 2 * count > num_images:
        raise ValueError(f"count: expected an int in 1..{num_images // 2} (two disjoint sets of {num_images}), got {count!r}")
    perm = _permutation(num_images)
    return perm[:count].sort().values, perm[count : 2 * count].sort().values


class RealImages(Dataset):
    """Real images as a torch `Dataset` of uint8 `[3, R, R]` (gray repeated to RGB) over `indices` of `images`."""

    def __init__(self, images: Any, indices: Tensor) -> None:
        self.images = images  # memmap or uint8 tensor [N, C, R, R]
        self.indices = indices.tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Tensor:
        image = self.images[self.indices[i]]
        image = torch.from_numpy(np.array(image)) if isinstance(image, np.ndarray) else image.clone()
        return _as_rgb_u8(image[None])[0]

    def all(self) -> Tensor:
        """Every image of the set as one uint8 `[n, 3, R, R]` tensor on the CPU."""
        images = (
            self.images[self.indices]
            if isinstance(self.images, Tensor)
            else torch.from_numpy(np.asarray(self.images[np.asarray(self.indices, dtype=np.int64)]))
        )
        return _as_rgb_u8(images)
