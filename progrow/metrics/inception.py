"""InceptionV3 weights for FID / KID / IS: where torch-fidelity looks for them, their identity, and a clear error.

torch-fidelity's feature extractor (`inception-v3-compat`) loads the TF-converted state dict
`pt_inception-2015-12-05` — the file `weights-inception-2015-12-05-6726825d.pth`, 566 tensors — from
`weights_path` when given, else from `$TORCH_HOME/hub/checkpoints/` (default `~/.cache/torch`), and
downloads it there when missing. Offline, that download fails: progrow then raises `MissingWeightsError`
saying how to supply the file. `write_random_inception_weights` writes a file of the same keys and shapes
with random values, for tests and benchmarks without network (its FID values are meaningless).
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
from pathlib import Path
from typing import Optional, Union

import torch

__all__ = [
    "MissingWeightsError",
    "WEIGHTS_FILE_NAME",
    "default_weights_file",
    "weights_identity",
    "check_weights_file",
    "missing_weights_message",
    "write_random_inception_weights",
]

PathLike = Union[str, "os.PathLike[str]"]

# The basename of torch-fidelity's (0.3, 0.4) URL_INCEPTION_V3; checked against it in the tests.
WEIGHTS_FILE_NAME = "weights-inception-2015-12-05-6726825d.pth"


class MissingWeightsError(FileNotFoundError):
    """The InceptionV3 weights are not available (not given, not in the hub cache, and no download possible)."""


def default_weights_file() -> Path:
    """Where torch-fidelity looks for (and downloads) the weights: `$TORCH_HOME/hub/checkpoints/<file>`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE_NAME


def missing_weights_message(reason: str) -> str:
    """The error text: what is missing, why, and the two ways to supply the file."""
    return (
        f"InceptionV3 weights for FID/KID/IS are not available: {reason}. Supply torch-fidelity's "
        f"`pt_inception-2015-12-05` state dict (the file {WEIGHTS_FILE_NAME}, from torch-fidelity's v0.2.0 "
        f"release) either with the option weights_path='/path/to/{WEIGHTS_FILE_NAME}' or by placing the file in "
        f"$TORCH_HOME/hub/checkpoints/ (here: {default_weights_file()}), where torch-fidelity finds it offline."
    )


@functools.lru_cache(maxsize=1)
def _expected_shapes() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Key → (shape, dtype) of torch-fidelity's extractor, read from its module definition on the meta device."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # type: ignore[no-untyped-def, override]
            return None  # keep the (meta) parameters: only names and shapes are wanted

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with torch.device("meta"):
        skeleton = _Skeleton("inception-v3-compat", ["2048"], feature_extractor_weights_path=empty)
    return {name: (tuple(t.shape), t.dtype) for name, t in skeleton.state_dict().items()}


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def weights_identity(weights_path: Optional[PathLike]) -> str:
    """`"default"` for torch-fidelity's own file, else the sha256 of `weights_path` (memoized per path, size, mtime)."""
    if weights_path is None:
        return "default"
    stat = os.stat(weights_path)
    return _file_sha256(os.path.realpath(weights_path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _checked(path: str, size: int, mtime_ns: int) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"weights_path: {path} is not a readable torch state dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise ValueError(f"weights_path: {path} holds a {type(state).__name__}, expected a state dict")
    expected = _expected_shapes()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(getattr(state[k], "shape", ())) != expected[k][0])
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{what} {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''} ({len(keys)})"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise ValueError(
            f"weights_path: {path} is not torch-fidelity's InceptionV3 state dict `pt_inception-2015-12-05` "
            f"({len(expected)} tensors, file {WEIGHTS_FILE_NAME}): {detail}"
        )


def check_weights_file(weights_path: PathLike) -> Path:
    """`weights_path` as a Path after checking it exists and has the extractor's exact keys and shapes (memoized)."""
    path = Path(weights_path)
    if not path.is_file():
        raise MissingWeightsError(missing_weights_message(f"weights_path {str(path)!r} is not a file"))
    stat = path.stat()
    _checked(os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    return path


def write_random_inception_weights(path: PathLike, *, seed: int = 0) -> Path:
    """Write a state dict with torch-fidelity's InceptionV3 keys and shapes and random values; return its path.

    Convolution and linear weights are He-normal (so activations keep a usable scale through the 94
    layers), batch-norm layers are identities, biases zero. For tests and benchmarks only: features are
    random projections, so FID values computed with it compare nothing meaningful.
    """
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, (shape, dtype) in _expected_shapes().items():
        if name.endswith(("running_var", "bn.weight")):
            state[name] = torch.ones(shape, dtype=dtype)
        elif len(shape) > 1:
            fan_in = math.prod(shape[1:])
            state[name] = torch.randn(shape, generator=generator, dtype=dtype) * math.sqrt(2.0 / fan_in)
        else:  # biases, running means, num_batches_tracked
            state[name] = torch.zeros(shape, dtype=dtype)
    path = Path(path)
    torch.save(state, path)
    return path
