"""Checkpoint files: atomic writes, safe loading, fallback past broken files, pruning, RNG state."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from progrow.checkpoint import (
    CheckpointError,
    capture_rng_state,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    save_checkpoint,
)


def _payload(value: float) -> dict:
    return {"weights": torch.full((3,), value), "step": int(value), "name": "x", "nested": {"a": [1, 2.5]}}


def test_round_trip_and_latest_pointer(tmp_path):
    path = save_checkpoint(_payload(1.0), checkpoint_path(tmp_path, 1000))
    assert path.name == "checkpoint-000000001000.pt"
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["weights"], torch.full((3,), 1.0)) and loaded["nested"] == {"a": [1, 2.5]}
    assert (tmp_path / "latest").read_text().strip() == path.name
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_newest_unreadable_checkpoint_falls_back_with_one_warning(tmp_path):
    for n in (1, 2):
        save_checkpoint(_payload(float(n)), checkpoint_path(tmp_path, n))
    newest = save_checkpoint(_payload(3.0), checkpoint_path(tmp_path, 3))
    truncated = newest.read_bytes()[:200]
    for broken in (b"", b"garbage" * 10, truncated):
        newest.write_bytes(broken)
        with pytest.warns(RuntimeWarning, match=f"skipping unreadable checkpoint: {newest}") as record:
            path, payload = latest_checkpoint(tmp_path)
        assert len(record) == 1 and path == checkpoint_path(tmp_path, 2) and payload["step"] == 2


def test_truncated_checkpoint_is_an_error_naming_the_path(tmp_path):
    path = save_checkpoint(_payload(1.0), checkpoint_path(tmp_path, 1))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"{path}: not a readable checkpoint"):
        load_checkpoint(path)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"the file is empty \(0 bytes\)"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")


class _Exploit:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(_Exploit.marker),))


def test_a_pickle_payload_is_refused_without_running_it(tmp_path):
    _Exploit.marker = str(tmp_path / "pwned")
    path = tmp_path / "checkpoint-000000000001.pt"
    torch.save({"evil": _Exploit()}, path, pickle_module=pickle)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(CheckpointError, match="refuses to execute"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_leftover_temporary_files_are_ignored_and_removed(tmp_path):
    save_checkpoint(_payload(1.0), checkpoint_path(tmp_path, 1))
    leftover = tmp_path / ".checkpoint-000000000002.pt.tmp-999"
    leftover.write_bytes(b"half a checkpoint")
    assert list_checkpoints(tmp_path) == [checkpoint_path(tmp_path, 1)]
    assert not leftover.exists()


def test_prune_keeps_the_newest(tmp_path):
    for n in range(1, 6):
        save_checkpoint(_payload(float(n)), checkpoint_path(tmp_path, n * 100))
    removed = prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in removed] == [checkpoint_path(tmp_path, n * 100).name for n in (1, 2, 3)]
    assert list_checkpoints(tmp_path) == [checkpoint_path(tmp_path, 400), checkpoint_path(tmp_path, 500)]
    with pytest.raises(ValueError, match="keep must be ≥ 1"):
        prune_checkpoints(tmp_path, keep=0)


def test_rng_state_survives_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.random(), np.random.randn(), torch.randn(2)
    path = save_checkpoint({"rng": capture_rng_state()}, checkpoint_path(tmp_path, 1))
    expected = (random.random(), np.random.randn(3).tolist(), torch.randn(4))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(load_checkpoint(path)["rng"])
    got = (random.random(), np.random.randn(3).tolist(), torch.randn(4))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def _user_loop(directory, steps: int, *, drop: str = "") -> torch.Tensor:
    """A user's own loop drawing from all three global RNGs (torch noise, a NumPy scale, a Python coin),
    checkpointing every 3 steps with progrow.checkpoint and resuming from the newest one; its final weights.

    `drop` names one RNG whose saved state is NOT restored on resume (it keeps the fresh process's state)."""
    torch.manual_seed(0), np.random.seed(0), random.seed(0)  # the fresh process's seeding
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    step = 0
    found = latest_checkpoint(directory)
    if found is not None:
        payload = found[1]
        model.load_state_dict(payload["model"]), opt.load_state_dict(payload["opt"])
        step = payload["step"]
        saved = dict(payload["rng"])
        if drop:
            saved[drop] = capture_rng_state()[drop]
        restore_rng_state(saved)
    while step < steps:
        x = torch.randn(8, 4)
        scale = np.random.uniform(0.5, 1.5)
        if random.random() < 0.5:
            x = -x
        loss = (model(x) * scale).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 3 == 0:
            save_checkpoint(
                {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "rng": capture_rng_state()},
                checkpoint_path(directory, step),
            )
    return model.weight.detach().clone()


@pytest.mark.parametrize("drop", ["", "python", "numpy", "torch"])
def test_a_user_loop_resumes_bit_for_bit_only_with_every_rng(tmp_path, drop):
    """Mutation test for the RNG part of a checkpoint: each of the three generators must be restored."""
    straight = _user_loop(tmp_path / "straight", 12)
    _user_loop(tmp_path / "split", 7)  # the newest checkpoint is at step 6; step 7's work is lost, as in a crash
    resumed = _user_loop(tmp_path / "split", 12, drop=drop)
    assert torch.equal(resumed, straight) == (drop == "")
