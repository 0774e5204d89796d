"""Non-finite losses: skipped updates, nothing non-finite in weights or checkpoints, rollback, and a final stop."""

from __future__ import annotations

import math

import torch
from run_helpers import FAST

from progrow.adapters.progan import train as T
from progrow.adapters.progan.losses import LOSSES
from progrow.adapters.progan.presets import get_preset

PRESET = get_preset("cpu-demo")
BATCH = PRESET.schedule.batch_size  # the step counts below are in minibatches of this size


def _poison(monkeypatch, bad_calls):
    """Make the discriminator loss NaN on the listed calls (0-based) of the preset's D loss (one call per step)."""
    (original, g_loss), calls = LOSSES[PRESET.loss], {"n": 0}

    def d_loss(*args, **kwargs):
        out = original(*args, **kwargs)
        i = calls["n"]
        calls["n"] += 1
        if bad_calls(i):
            return out._replace(loss=out.loss * float("nan"))
        return out

    monkeypatch.setitem(LOSSES, PRESET.loss, (d_loss, g_loss))
    return calls


def _all_finite(payload):
    tensors = [*payload["G"].values(), *payload["D"].values(), *payload["G_ema"]["module"].values()]
    return all(torch.isfinite(t).all() for t in tensors)


def test_a_nan_step_is_skipped_and_never_reaches_the_weights(tmp_path, monkeypatch):
    steps = 128 // BATCH
    bad = (1, steps - 1)  # of the steps in 0.128 kimg
    _poison(monkeypatch, lambda i: i in bad)
    out = tmp_path / "run"
    assert T.main([*FAST, "--out", str(out), "--kimg", "0.128"]) == 0
    log = [__import__("json").loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["skipped_steps"] == len(bad)
    checkpoints = sorted((out / "checkpoints").glob("*.pt"))
    assert checkpoints  # written after the skipped steps, so there is something to check
    for ckpt in checkpoints:
        assert _all_finite(torch.load(ckpt, weights_only=True))


def test_persistent_divergence_rolls_back_then_stops_with_exit_code_3(tmp_path, monkeypatch, capsys):
    good = 64 // BATCH + 1  # a checkpoint at the 0.064-kimg stage end, one more good step, then NaN forever
    calls = _poison(monkeypatch, lambda i: i >= good)
    out = tmp_path / "run"
    code = T.main([*FAST, "--out", str(out), "--kimg", "1", "--max-bad-steps", "3", "--max-rollbacks", "2"])
    assert code == 3
    err = capsys.readouterr().err
    assert err.count("warning: rolled back to") == 2
    assert "training diverged: 3 consecutive non-finite steps after 2 rollbacks" in err and "Traceback" not in err
    assert calls["n"] == good + 3 * 3  # three streaks of three bad steps: before each rollback and the last
    checkpoints = sorted((out / "checkpoints").glob("*.pt"))
    assert checkpoints and all(_all_finite(torch.load(c, weights_only=True)) for c in checkpoints)
    assert not math.isnan(sum(float(v.sum()) for v in torch.load(checkpoints[-1], weights_only=True)["G"].values()))
