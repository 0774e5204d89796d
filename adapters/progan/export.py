"""G_ema export: weights in safetensors plus a JSON config that rebuilds the generator."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import progrow as pg

from .networks import ProGANDiscriminator, ProGANGenerator
from .presets import ProGANPreset

__all__ = [
    "export_generator",
    "load_generator",
    "generator_from_checkpoint",
    "discriminator_from_checkpoint",
    "generator_kwargs",
    "discriminator_kwargs",
]

EXPORT_FORMAT = "progrow.progan.generator/1"


def export_generator(
    G: pg.ProgressiveGenerator,
    stem: str | Path,
    *,
    preset: ProGANPreset,
    num_classes: int,
    img_channels: int,
    state: pg.GrowthState,
) -> tuple[Path, Path]:
    """Write `<stem>.safetensors` (the weights) and `<stem>.json` (what rebuilds the network, and the state it runs at)."""
    from safetensors.torch import save_file

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "format": EXPORT_FORMAT,
        "architecture": generator_kwargs(preset, num_classes),
        "img_channels": img_channels,
        "state": {"resolution": state.resolution, "alpha": state.alpha},
        "preset": preset.to_dict(),
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in G.state_dict().items()}
    weights, meta = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    save_file(tensors, str(weights), metadata={"format": EXPORT_FORMAT})
    meta.write_text(json.dumps(config, indent=2))
    return weights, meta


def generator_kwargs(preset: ProGANPreset, num_classes: int) -> dict[str, Any]:
    """Keyword arguments of `ProGANGenerator` for a preset."""
    return {
        "resolution": preset.resolution,
        "latent_dim": preset.latent_dim,
        "num_classes": num_classes,
        "fmap_base": preset.fmap_base,
        "fmap_max": preset.fmap_max,
        "padding_mode": preset.g_padding,
    }


def discriminator_kwargs(preset: ProGANPreset | Mapping[str, Any], num_classes: int) -> dict[str, Any]:
    """Keyword arguments of `ProGANDiscriminator` for a preset (or its `to_dict()` form, as in a checkpoint's identity)."""
    fields = preset.to_dict() if isinstance(preset, ProGANPreset) else preset
    return {
        "resolution": fields["resolution"],
        "num_classes": num_classes,
        "fmap_base": fields["fmap_base"],
        "fmap_max": fields["fmap_max"],
        "mbstd_group_size": fields["mbstd_group_size"],
    }


def load_generator(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[pg.ProgressiveGenerator, dict[str, Any]]:
    """Rebuild an exported generator from `<stem>.safetensors` (its `<stem>.json` beside it); returns (G, config).

    The generator is bound to the growth state it was exported at, so `G(z)` works at once.
    """
    from safetensors.torch import load_file

    path = Path(path)
    weights = path.with_suffix(".safetensors")
    meta = path.with_suffix(".json")
    for f in (weights, meta):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing (an export is a .safetensors file with its .json beside it)")
    config = json.loads(meta.read_text())
    if config.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{meta}: format {config.get('format')!r}, expected {EXPORT_FORMAT!r}")
    G = pg.ProgressiveGenerator(ProGANGenerator(**config["architecture"]), img_channels=config["img_channels"])
    G.load_state_dict(load_file(str(weights)))
    G.set_state(pg.GrowthState(config["state"]["resolution"], alpha=config["state"]["alpha"]))
    return G.to(device).eval(), config


def generator_from_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[pg.ProgressiveGenerator, dict[str, Any]]:
    """Rebuild G_ema from a training checkpoint, bound to the growth state the checkpoint was taken at."""
    payload, arch = _training_checkpoint(path)
    G = pg.ProgressiveGenerator(ProGANGenerator(**arch["generator"]), img_channels=arch["img_channels"])
    G.load_state_dict(payload["G_ema"]["module"])
    nimg = _bind_to_checkpoint_state(G, payload)
    return G.to(device).eval(), {"architecture": arch["generator"], "img_channels": arch["img_channels"], "nimg": nimg}


def discriminator_from_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[pg.ProgressiveDiscriminator, dict[str, Any]]:
    """Rebuild D from a training checkpoint, bound to the growth state it was taken at, in eval mode; returns (D, config).

    D scores images `[N, C, R, R]` in [-1, 1] as `[N, 1 + num_classes]` (the score first, then the class
    logits of a conditional run). Checkpoints written before D's architecture was stored in them are
    rebuilt from the preset in their identity.
    """
    payload, arch = _training_checkpoint(path)
    kwargs = arch.get("discriminator")
    if kwargs is None:  # an older checkpoint: D's arguments follow from its preset and G's class count
        kwargs = discriminator_kwargs(payload["identity"]["preset"], arch["generator"]["num_classes"])
    D = pg.ProgressiveDiscriminator(ProGANDiscriminator(**kwargs), img_channels=arch["img_channels"])
    D.load_state_dict(payload["D"])
    nimg = _bind_to_checkpoint_state(D, payload)
    return D.to(device).eval(), {"architecture": kwargs, "img_channels": arch["img_channels"], "nimg": nimg}


def _training_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A training checkpoint's payload and its `architecture` entry; a ValueError naming `path` when it has none."""
    from progrow.checkpoint import load_checkpoint

    payload = load_checkpoint(path)
    arch = payload.get("architecture")
    if arch is None:
        raise ValueError(f"{path}: not a ProGAN training checkpoint (no 'architecture' entry)")
    return payload, arch


def _bind_to_checkpoint_state(module: pg.ProgressiveGenerator | pg.ProgressiveDiscriminator, payload: dict[str, Any]) -> int:
    """Bind `module` to the growth state of a checkpoint `payload` (its schedule at its image count); returns that count."""
    nimg = int(payload["scheduler"]["nimg"])
    config = pg.ScheduleConfig.from_dict(payload["scheduler"]["config"])
    module.set_state(pg.ProgressiveScheduler(config).state_at(nimg))
    return nimg
