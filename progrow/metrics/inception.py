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
from typing import Any, Union

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
    """The InceptionV3 weights are not available (not given, not in the hub cache, and no download possible).

    `reason` is why, without the advice, so a command line can say it again naming its own option.
    """

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


def default_weights_file() -> Path:
    """Where torch-fidelity looks for (and downloads) the weights: `$TORCH_HOME/hub/checkpoints/<file>`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE_NAME


def missing_weights_message(reason: str, *, option: str = "weights_path") -> str:
    """The error text: what is missing, why, and the two ways to supply the file (`option`: how the caller names it)."""
    given = f"{option} /path/to/{WEIGHTS_FILE_NAME}" if option.startswith("--") else f"{option}='/path/to/{WEIGHTS_FILE_NAME}'"
    return (
        f"InceptionV3 weights for FID/KID/IS are not available: {reason}. Supply torch-fidelity's "
        f"`pt_inception-2015-12-05` state dict (the file {WEIGHTS_FILE_NAME}, from torch-fidelity's v0.2.0 "
        f"release) either with {given} or by placing the file in "
        f"$TORCH_HOME/hub/checkpoints/ (here: {default_weights_file()}), where torch-fidelity finds it offline."
    )


@functools.lru_cache(maxsize=1)
def _expected_shapes() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Key → (shape, dtype) of torch-fidelity's extractor, read from its module definition on the meta device."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
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


def weights_identity(weights_path: PathLike | None) -> str:
    """`"default"` for torch-fidelity's own file, else the sha256 of `weights_path` (memoized per path, size, mtime)."""
    if weights_path is None:
        return "default"
    stat = os.stat(weights_path)
    return _file_sha256(os.path.realpath(weights_path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _checked(path: str, size: int, mtime_ns: int, option: str) -> None:
    with open(path, "rb") as file:
        head = file.read(4)
    if head != b"PK\x03\x04" and not head.startswith(b"\x80"):  # torch.save writes a zip (legacy: a pickle)
        raise ValueError(
            f"{option}: {path} is not a torch state dict file (torch.save files start with a zip or pickle "
            f"header, this one with {head!r}); expected {WEIGHTS_FILE_NAME}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(
            f"{option}: {path} is not a readable torch state dict ({type(exc).__name__}: {first[:200]}); "
            f"expected {WEIGHTS_FILE_NAME}"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"{option}: {path} holds a {type(state).__name__}, expected a state dict")
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
            f"{option}: {path} is not torch-fidelity's InceptionV3 state dict `pt_inception-2015-12-05` "
            f"({len(expected)} tensors, file {WEIGHTS_FILE_NAME}): {detail}"
        )


def check_weights_file(weights_path: PathLike, *, option: str = "weights_path") -> Path:
    """`weights_path` as a Path after checking it exists and has the extractor's exact keys and shapes (memoized).

    Errors (`MissingWeightsError`, `ValueError`) name the file as `option` (a command line passes its flag).
    """
    path = Path(weights_path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "is not a file"
        reason = f"{option} {str(path)!r} {what}"
        raise MissingWeightsError(missing_weights_message(reason, option=option), reason=reason)
    stat = path.stat()
    _checked(os.path.realpath(path), stat.st_size, stat.st_mtime_ns, option)
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
