"""The public API is listed once in `progrow.__all__`, and the version lives in one place."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

import progrow as pg

ROOT = Path(__file__).resolve().parent.parent


def test_every_public_name_is_listed_once_and_resolves():
    assert len(pg.__all__) == len(set(pg.__all__))
    missing = [name for name in pg.__all__ if not hasattr(pg, name)]
    assert not missing


def test_what_the_readme_presents_is_exported():
    presented = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "capture_rng_state", "restore_rng_state"]
    presented += ["Prefetcher", "register_metric", "bind", "to_uint8", "to_pil"]
    assert set(presented) <= set(pg.__all__)
    assert pg.save_checkpoint is __import__("progrow.checkpoint").checkpoint.save_checkpoint


def test_the_version_lives_in_progrow_version_only():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "progrow._version.__version__"}
    assert importlib.metadata.version("progrow-gan") == pg.__version__
