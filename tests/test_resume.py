"""Resuming the training script reproduces an uninterrupted run bit for bit."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from run_helpers import FAST, assert_same_run, final_checkpoint, newest_checkpoint, one_thread, one_thread_env

from progrow.adapters.progan import presets
from progrow.adapters.progan.train import main as train_main


def test_stop_and_resume_inside_a_fade_equals_an_uninterrupted_run(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_main([*FAST, "--out", str(straight), "--kimg", "0.16"]) == 0
    assert train_main([*FAST, "--out", str(split), "--kimg", "0.096"]) == 0  # stops mid-fade into 8²
    assert train_main([*FAST, "--out", str(split), "--kimg", "0.16"]) == 0  # resumes from the 0.096 checkpoint
    assert_same_run(final_checkpoint(straight), final_checkpoint(split))


def test_sigterm_checkpoints_the_current_step_exits_143_and_resumes_bit_for_bit(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    split, straight = tmp_path / "split", tmp_path / "straight"
    cmd = [sys.executable, "-m", "progrow.adapters.progan.train", *FAST, "--out", str(split), "--kimg", "50"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=one_thread_env())
    log = split / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    stopped = final_checkpoint(split)["scheduler"]["nimg"]
    assert "stopped by signal 15" in out and stopped >= 4 * 32
    target = f"{(stopped + 48) / 1000:.3f}"
    with one_thread():  # as the subprocess (see run_helpers.one_thread_env)
        assert train_main([*FAST, "--out", str(split), "--kimg", target]) == 0
        assert train_main([*FAST, "--out", str(straight), "--kimg", target]) == 0
    assert_same_run(final_checkpoint(straight), final_checkpoint(split))


def test_unknown_stop_signal_is_a_usage_error(tmp_path, capsys):
    assert train_main([*FAST, "--out", str(tmp_path / "x"), "--stop-signals", "TERM,NOPE"]) == 2
    assert "--stop-signals: unknown signal 'NOPE'" in capsys.readouterr().err


def test_kill_9_at_several_points_then_the_same_command_finishes_bit_for_bit(tmp_path):
    """SIGKILL (no chance to clean up) after 2, 5 and 7 ticks: inside the 4² stable phase, inside the fade
    into 8² and just after the stage change; each time the same command line resumes. Every process runs on
    one thread (see run_helpers.one_thread_env)."""
    import signal
    import subprocess
    import sys
    import time

    killed, straight = tmp_path / "killed", tmp_path / "straight"
    args = [*FAST, "--kimg", "0.288", "--checkpoint-ticks", "1"]
    cmd = [sys.executable, "-m", "progrow.adapters.progan.train", *args, "--out", str(killed)]
    log = killed / "log.jsonl"
    for ticks in (2, 5, 7):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=one_thread_env())
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and (not log.exists() or len(log.read_text().splitlines()) < ticks):
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=one_thread_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    with one_thread():
        assert train_main([*args, "--out", str(straight)]) == 0
    assert_same_run(final_checkpoint(straight), final_checkpoint(killed))
    ticks = [line for line in (killed / "log.jsonl").read_text().splitlines()]
    assert [__import__("json").loads(t)["kimg"] for t in ticks] == [
        __import__("json").loads(t)["kimg"] for t in (straight / "log.jsonl").read_text().splitlines()
    ]


DROPPABLE = ["torch_rng", "opt_g", "opt_d", "G_ema", "sampler", "scheduler"]


@pytest.mark.parametrize("dropped", DROPPABLE)
def test_every_checkpoint_item_is_needed(tmp_path, monkeypatch, dropped):
    """Mutation test: restoring all but one item breaks the bit-exact resume, so the checkpoint must hold each."""
    import copy

    from progrow.adapters.progan import resume

    original = resume.restore

    def restore_all_but_one(run, payload):
        fresh = {
            "torch_rng": torch.get_rng_state(),
            "opt_g": copy.deepcopy(run.opt_g.state_dict()),
            "opt_d": copy.deepcopy(run.opt_d.state_dict()),
            "G_ema": copy.deepcopy(run.ema.state_dict()),
            "sampler": run.sampler.state_dict(),
            "scheduler": run.scheduler.state_dict(),
        }
        original(run, payload)
        if dropped == "torch_rng":
            torch.set_rng_state(fresh["torch_rng"])
        elif dropped == "G_ema":
            run.ema.load_state_dict(fresh["G_ema"])
        else:
            getattr(run, dropped).load_state_dict(fresh[dropped])

    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_main([*FAST, "--out", str(straight), "--kimg", "0.16"]) == 0
    assert train_main([*FAST, "--out", str(split), "--kimg", "0.096"]) == 0
    monkeypatch.setattr(resume, "restore", restore_all_but_one)
    assert train_main([*FAST, "--out", str(split), "--kimg", "0.16"]) == 0
    with pytest.raises(AssertionError):
        assert_same_run(final_checkpoint(straight), final_checkpoint(split))


def test_a_corrupt_newest_checkpoint_falls_back_and_an_explicit_one_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.096", "--checkpoint-ticks", "1"]) == 0
    newest = newest_checkpoint(out)
    newest.write_bytes(newest.read_bytes()[:300])  # truncated, as by a full disk or a killed copy
    capsys.readouterr()
    with pytest.warns(RuntimeWarning, match=f"skipping unreadable checkpoint: {newest}") as record:
        assert train_main([*FAST, "--out", str(out), "--kimg", "0.128", "--checkpoint-ticks", "1"]) == 0
    assert len([w for w in record if "skipping unreadable" in str(w.message)]) == 1
    assert "resumed from" in (text := capsys.readouterr().out) and "checkpoint-000000000064.pt at" in text  # the previous one
    newest.write_bytes(b"garbage")
    assert train_main([*FAST, "--out", str(out), "--resume", str(newest)]) == 2
    err = capsys.readouterr().err
    assert (
        f"--resume: {newest}: not a checkpoint (a torch.save file starts with a zip or pickle header; "
        "this one starts with b'garb')" in err
    )
    assert "Traceback" not in err


def test_two_runs_with_the_same_seed_end_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert train_main([*FAST, "--out", str(out), "--kimg", "0.096"]) == 0
    assert_same_run(final_checkpoint(a), final_checkpoint(b))
    c = tmp_path / "c"
    assert train_main([*FAST, "--out", str(c), "--kimg", "0.096", "--seed", "1"]) == 0
    with pytest.raises(AssertionError):
        assert_same_run(final_checkpoint(a), final_checkpoint(c))


@pytest.mark.parametrize("drop_scaler", [False, True])
def test_fp16_resume_needs_the_grad_scaler_state(tmp_path, monkeypatch, drop_scaler):
    """fp16 + GradScaler, with the scale allowed to grow every 2 steps so it changes within a short run (and
    overflows, skipping steps): the resume is bit-exact, and not restoring the scaler's state breaks it."""
    from progrow.adapters.progan import resume

    real = torch.amp.GradScaler
    monkeypatch.setattr(torch.amp, "GradScaler", lambda *a, **k: real(*a, **{**k, "growth_interval": 2}))
    original = resume.restore

    def restore(run, payload):
        fresh = run.scaler.state_dict()
        original(run, payload)
        if drop_scaler:
            run.scaler.load_state_dict(fresh)

    monkeypatch.setattr(resume, "restore", restore)
    fp16 = [*FAST, "--precision", "fp16", "--phase-kimg", "0.128"]  # fp16 is slow on a CPU: stay at 4² and 8²
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_main([*fp16, "--out", str(straight), "--kimg", "0.32"]) == 0  # 10 steps of 32 images
    assert train_main([*fp16, "--out", str(split), "--kimg", "0.224"]) == 0  # 7 steps: mid-fade into 8²
    saved_scale = final_checkpoint(split)["scaler"]["scale"]
    assert saved_scale != 2.0**16  # the scale moved away from its initial value before the stop
    assert train_main([*fp16, "--out", str(split), "--kimg", "0.32"]) == 0
    if drop_scaler:
        with pytest.raises(AssertionError):
            assert_same_run(final_checkpoint(straight), final_checkpoint(split))
    else:
        assert_same_run(final_checkpoint(straight), final_checkpoint(split))
        assert final_checkpoint(straight)["scaler"] == final_checkpoint(split)["scaler"]


def test_data_workers_read_the_same_batches_and_resume_bit_for_bit(tmp_path):
    """`--data-workers 2` (read-ahead threads) ends where `--data-workers 0` does, across a stop and resume
    mid-fade: the checkpoint holds the cursor of the batches used, not of those read ahead."""
    inline, threaded = tmp_path / "inline", tmp_path / "threaded"
    assert train_main([*FAST, "--out", str(inline), "--kimg", "0.16"]) == 0
    assert train_main([*FAST, "--out", str(threaded), "--kimg", "0.096", "--data-workers", "2"]) == 0
    assert train_main([*FAST, "--out", str(threaded), "--kimg", "0.16", "--data-workers", "2"]) == 0
    assert_same_run(final_checkpoint(inline), final_checkpoint(threaded))


def _short_demo(monkeypatch, *, final_stable: float, stable_8: float = 0.032, stable_kimg: float = 0.032) -> None:
    """`cpu-demo` with fades of 32 images, the given stable lengths (8² and 32² overridden), and no other change."""
    demo = presets.get_preset("cpu-demo")
    schedule = demo.schedule.replace(
        fade_kimg=0.032,
        fade_kimg_per_res={},
        stable_kimg=stable_kimg,
        stable_kimg_per_res={8: stable_8, 32: final_stable},
    )
    monkeypatch.setitem(presets.PRESETS, "cpu-demo", lambda: replace(demo, schedule=schedule))


def test_a_finished_run_continues_when_the_presets_final_stable_phase_gets_longer(tmp_path, monkeypatch, capsys):
    """The final stable phase is open (it only says where a run ends, like --kimg): changing it keeps resume."""
    argv = ["--preset", "cpu-demo", "--data", "synthetic:0:256", "--tick-kimg", "0.032"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    with one_thread():  # compared bit for bit: see run_helpers
        _short_demo(monkeypatch, final_stable=0.064)
        assert train_main([*argv, "--out", str(split)]) == 0  # ends at 0.256 kimg, the end of its schedule
        assert final_checkpoint(split)["scheduler"]["nimg"] == 256
        _short_demo(monkeypatch, final_stable=0.128)
        assert train_main([*argv, "--out", str(split)]) == 0
        assert "resumed from" in capsys.readouterr().out
        assert train_main([*argv, "--out", str(straight)]) == 0
    a, b = final_checkpoint(straight), final_checkpoint(split)
    assert a["scheduler"]["nimg"] == 320
    assert_same_run(a, b)

    # A stable phase the run has trained through is still part of its identity, per resolution.
    _short_demo(monkeypatch, final_stable=0.128, stable_8=0.064)
    assert train_main([*argv, "--out", str(split), "--kimg", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "differing keys: preset.schedule.stable_kimg_per_res.8." in err and "Traceback" not in err


def test_a_changed_default_stable_length_is_refused_where_it_reaches_a_resolution(tmp_path, monkeypatch, capsys):
    """`stable_kimg` is the length of every resolution without an override: the refusal names those resolutions."""
    argv = ["--preset", "cpu-demo", "--data", "synthetic:0:256", "--tick-kimg", "0.032", "--out", str(tmp_path / "run")]
    _short_demo(monkeypatch, final_stable=0.064)
    assert train_main([*argv, "--kimg", "0.064"]) == 0
    _short_demo(monkeypatch, final_stable=0.064, stable_kimg=0.064)  # reaches 4² and 16², which have no override
    assert train_main([*argv, "--kimg", "0.128"]) == 2
    err = capsys.readouterr().err
    assert "differing keys: preset.schedule.stable_kimg_per_res.16, preset.schedule.stable_kimg_per_res.4." in err
