"""`progrow.adapters.devices`: which precision a CPU runs fast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from progrow.adapters import devices


def _cpu_flags() -> set[str] | None:
    """The flags of the first processor in /proc/cpuinfo (Linux), or None elsewhere."""
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return None
    for line in info.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def test_bf16_is_fast_exactly_where_the_cpu_has_amx_tiles(monkeypatch):
    for variable in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(variable, raising=False)
    flags = _cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo to compare with")
    assert devices.cpu_bf16_is_fast() is ("amx_bf16" in flags and "amx_tile" in flags)


def test_bf16_is_not_fast_when_torch_cannot_tell(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert devices.cpu_bf16_is_fast() is False

    def broken() -> bool:
        raise RuntimeError("cpuinfo failed")

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", broken, raising=False)
    assert devices.cpu_bf16_is_fast() is False


@pytest.mark.parametrize("variable", ["ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"])
def test_bf16_is_not_fast_when_onednn_is_capped_below_amx(variable, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert devices.cpu_bf16_is_fast() is True
    monkeypatch.setenv(variable, "avx512_core_bf16")
    assert devices.cpu_bf16_is_fast() is False
    monkeypatch.setenv(variable, "AVX512_CORE_AMX")
    assert devices.cpu_bf16_is_fast() is True
    monkeypatch.setenv(variable, "all")
    assert devices.cpu_bf16_is_fast() is True
