"""Test-wide settings: the hypothesis profile for CI, and a fixed torch seed before every test."""

import os

import pytest
import torch
from hypothesis import settings

# CI runs the property tests with a fixed seed (reproducible, no example database); locally they explore.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _seeded_rng():
    torch.manual_seed(0)
    yield
