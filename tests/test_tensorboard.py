"""TensorBoard logging of the training script, read back with TensorBoard's own reader (EventAccumulator).

The step of every event is the image count (the log's kimg × 1000); a kill -9 and resume, and a rollback,
leave each tag with one event per tick of `log.jsonl`.
"""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from run_helpers import FAST, one_thread_env

from progrow.adapters.progan import tensorboard_log
from progrow.adapters.progan.plots import read_log
from progrow.adapters.progan.train import main as train_main

D_TERMS = ("real_loss", "fake_loss", "r1_penalty")  # the cpu-demo preset's logistic loss with R1
TICK_TAGS = {
    "Loss/D": "d_loss",
    "Loss/G": "g_loss",
    **{f"Loss/D_{term}": f"d_{term}" for term in D_TERMS},
    "Progress/alpha": "alpha",
    "Progress/resolution": "resolution",
    "Progress/stage": "stage",
    "Progress/batch_size": "batch_size",
    "Train/lr": "lr",
    "Train/skipped_steps": "skipped_steps",
    "Speed/img_per_s": "img_per_s",
}


@pytest.fixture
def accumulator():
    """`read(folder, purge=True)`: TensorBoard's EventAccumulator over a run's event files, keeping every event."""
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

    def read(folder: Path, *, purge: bool = True):
        keep_all = {ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0}
        return ea.EventAccumulator(str(folder), size_guidance=keep_all, purge_orphaned_data=purge).Reload()

    return read


@pytest.fixture
def served_steps():
    """`steps(folder)`: the steps of every tag as the TensorBoard server reads them (its plugin accumulator, in which
    scalars, images and text are all tensors; the older EventAccumulator does not purge text)."""
    pea = pytest.importorskip("tensorboard.backend.event_processing.plugin_event_accumulator")

    def steps(folder: Path) -> dict[str, list[int]]:
        acc = pea.EventAccumulator(str(folder), size_guidance={pea.TENSORS: 0}).Reload()
        return {tag: [e.step for e in acc.Tensors(tag)] for tag in acc.Tags()["tensors"]}

    return steps


def _steps(acc, tag: str) -> list[int]:
    return [e.step for e in acc.Scalars(tag)]


def _tick_steps(out: Path) -> list[int]:
    """The image count of every tick in the run's log (the history training continued from)."""
    return [round(r["kimg"] * 1000) for r in read_log(out / "log.jsonl")]


def test_a_short_run_logs_every_tick_the_grid_and_the_config(tmp_path, accumulator):
    out = tmp_path / "run"
    args = [*FAST, "--out", str(out), "--kimg", "0.128", "--metrics", "ms_ssim", "--metric-samples", "16"]
    assert train_main(args) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in log] == [0.032, 0.064, 0.096, 0.128]  # through the fade into 8²
    acc = accumulator(out / "tensorboard")
    tags = acc.Tags()
    assert set(tags["scalars"]) == {*TICK_TAGS, "Metrics/ms_ssim"}
    steps = [round(r["kimg"] * 1000) for r in log]
    for tag, key in TICK_TAGS.items():
        events = acc.Scalars(tag)
        assert [e.step for e in events] == steps, tag
        assert [e.value for e in events] == pytest.approx([r[key] for r in log], rel=1e-6), tag
    with_metric = [(round(r["kimg"] * 1000), r[f"ms_ssim@{r['resolution']}"]) for r in log if f"ms_ssim@{r['resolution']}" in r]
    assert [s for s, _ in with_metric] == [64, 128]  # the stage end and the end
    assert [(e.step, e.value) for e in acc.Scalars("Metrics/ms_ssim")] == [
        (s, pytest.approx(v, rel=1e-6)) for s, v in with_metric
    ]
    assert [e.value for e in acc.Scalars("Progress/resolution")] == [4, 4, 8, 8]
    images = acc.Images("Samples/G_ema")
    assert [e.step for e in images] == steps
    for event, step in zip(images, steps, strict=True):
        saved = np.asarray(Image.open(out / "grids" / f"grid-{step:09d}.png"))
        assert (event.width, event.height) == (256, 256) == saved.shape[1::-1]  # 4 × 4 images, each enlarged to 64 px
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(event.encoded_image_string))), saved)
    (config,) = acc.Tensors("config/text_summary")
    text = config.tensor_proto.string_val[0].decode()
    assert config.step == 0 and text.startswith("```json\n") and text.endswith("\n```")
    options = json.loads(text.removeprefix("```json\n").removesuffix("\n```"))
    assert options["preset"]["name"] == "cpu-demo" and options["preset"]["schedule"]["total_kimg"] == 0.128
    assert options["metrics"] == ["ms_ssim"] and options["tensorboard"] is True and options["out"] == str(out)


def test_kill_9_twice_then_resume_leaves_each_tag_one_event_per_logged_tick(tmp_path, accumulator, served_steps):
    """Killed past the checkpoint, twice (the second time before a newer checkpoint exists, so both resumes start
    from the same one); the events of the killed sessions after it are in the files, but not in what TensorBoard reads."""
    out = tmp_path / "run"
    # Checkpoints at the stage ends only: 0.128 kimg (tick 4) and 0.384 kimg (tick 12).
    args = [*FAST, "--phase-kimg", "0.128", "--kimg", "0.448", "--checkpoint-ticks", "100", "--out", str(out)]
    cmd = [sys.executable, "-m", "progrow.adapters.progan.train", *args]
    env = one_thread_env()
    log = out / "log.jsonl"
    for lines in (6, 7):  # each time: ticks logged past the 0.128 checkpoint, none at the next one
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and (not log.exists() or len(log.read_text().splitlines()) < lines):
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
        assert sorted(p.name for p in (out / "checkpoints").glob("*.pt")) == ["checkpoint-000000000128.pt"]
    assert train_main(args) == 0
    steps = _tick_steps(out)
    assert steps == list(range(32, 449, 32)) and len(log.read_text().splitlines()) == len(steps)  # log.jsonl: no repeats
    acc = accumulator(out / "tensorboard")
    for tag in TICK_TAGS:
        assert _steps(acc, tag) == steps, tag
    assert [e.step for e in acc.Images("Samples/G_ema")] == steps
    served = served_steps(out / "tensorboard")
    assert set(served) == {*TICK_TAGS, "Samples/G_ema", "config/text_summary"}
    assert all(served[tag] == steps for tag in (*TICK_TAGS, "Samples/G_ema")), served
    assert served["config/text_summary"] == [0, 129]  # the first session's and the last resume's
    raw = accumulator(out / "tensorboard", purge=False)  # what the files hold: the killed sessions' ticks too
    assert len(_steps(raw, "Loss/D")) > len(steps) and len(raw.Tensors("config/text_summary")) == 3
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 3


def test_a_rollback_drops_the_ticks_logged_after_its_checkpoint(tmp_path, monkeypatch, accumulator):
    """Three NaN steps after the 0.064 checkpoint and a tick: a rollback to it, then training goes on to the end."""
    from progrow.adapters.progan.losses import LOSSES
    from progrow.adapters.progan.presets import get_preset

    loss = get_preset("cpu-demo").loss
    (d_loss, g_loss), calls = LOSSES[loss], {"n": 0}

    def poisoned(*args, **kwargs):
        result = d_loss(*args, **kwargs)
        calls["n"] += 1
        return result._replace(loss=result.loss * float("nan")) if calls["n"] in (4, 5, 6) else result

    monkeypatch.setitem(LOSSES, loss, (poisoned, g_loss))
    out = tmp_path / "run"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.192", "--max-bad-steps", "3", "--checkpoint-ticks", "100"]) == 0
    raw_log = [round(json.loads(line)["kimg"] * 1000) for line in (out / "log.jsonl").read_text().splitlines()]
    assert raw_log[:6] == [32, 64, 96, 128, 160, 96]  # the log keeps what the rolled-back steps logged
    steps = _tick_steps(out)
    assert steps == list(range(32, 193, 32))
    acc = accumulator(out / "tensorboard")
    for tag in TICK_TAGS:
        assert _steps(acc, tag) == steps, tag
    history = [r["d_loss"] for r in read_log(out / "log.jsonl")]
    assert np.isfinite(history).all()  # the NaN ticks were replaced by those logged after the rollback
    assert [e.value for e in acc.Scalars("Loss/D")] == pytest.approx(history, rel=1e-6)
    assert _steps(accumulator(out / "tensorboard", purge=False), "Loss/D") == raw_log


def test_a_fresh_start_over_a_run_killed_before_its_first_checkpoint_drops_that_run(tmp_path, accumulator, served_steps):
    """What such a run leaves (a log, event files, no checkpoint) is made here by deleting a short run's checkpoints."""
    out = tmp_path / "run"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.096"]) == 0
    shutil.rmtree(out / "checkpoints")
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.064"]) == 0  # starts over: nothing to resume
    assert [json.loads(line)["kimg"] for line in (out / "log.jsonl").read_text().splitlines()] == [0.032, 0.064]
    served = served_steps(out / "tensorboard")
    assert served["Loss/D"] == served["Samples/G_ema"] == [32, 64] and served["config/text_summary"] == [0]
    assert len(_steps(accumulator(out / "tensorboard", purge=False), "Loss/D")) == 5  # both runs' ticks are in the files


def test_a_session_opened_within_the_second_of_the_last_file_sorts_after_it(tmp_path):
    """TensorBoard reads the files in name order; a quick restart must not land before the session it purges."""
    pytest.importorskip("torch.utils.tensorboard")
    folder = tmp_path / "tensorboard"
    folder.mkdir()
    second = int(time.time()) + 1  # the next second, and a host and pid that sort after any of this machine's
    (folder / f"events.out.tfevents.{second:010d}.zzzz.99999999.0").write_bytes(b"")
    tensorboard_log.TensorBoardLog(folder, nimg=0, resumed=False, config="{}").close()
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 2 and names[0].startswith(f"events.out.tfevents.{second:010d}.zzzz."), names


_LIMITED = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    from progrow.adapters.progan import report
    report.LOSS_PLOT_MIN_SECONDS = float("inf")  # losses.png is larger than the limit: let the event file reach it first
    from progrow.adapters.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_an_event_file_past_the_file_size_limit_is_one_error_naming_it_and_the_run_starts_over(tmp_path, served_steps):
    out = tmp_path / "run"
    assert train_main([*FAST, "--out", str(tmp_path / "cache"), "--kimg", "0.032", "--no-tensorboard"]) == 0
    out.mkdir()
    shutil.copytree(tmp_path / "cache" / "dataset", out / "dataset")  # the cache is larger than the limit
    # ~3 kB of events per tick; no checkpoint before 1 kimg
    argv = ["train", *FAST, "--data", str(out / "dataset"), "--phase-kimg", "1", "--kimg", "0.5", "--checkpoint-ticks", "100"]
    env = one_thread_env()
    proc = subprocess.run(
        [sys.executable, "-c", _LIMITED, *argv, "--out", str(out)], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 2, proc.stderr
    (events,) = (out / "tensorboard").glob("events.out.tfevents.*")
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert errors == [f"error: could not write {events}: File too large"] and "Traceback" not in proc.stderr, proc.stderr
    assert events.stat().st_size == 20_000  # cut inside a record, as by a full disk
    assert train_main([*argv[1:], "--out", str(out), "--kimg", "0.128"]) == 0  # no checkpoint: a fresh start
    served = served_steps(out / "tensorboard")
    assert served["Loss/D"] == served["Samples/G_ema"] == [32, 64, 96, 128] and served["config/text_summary"] == [0]


def test_no_tensorboard_option_writes_no_event_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.064", "--no-tensorboard"]) == 0
    assert not (out / "tensorboard").exists() and not list(out.rglob("events.out.tfevents.*"))
    assert "notice:" not in capsys.readouterr().out
    assert (out / "log.jsonl").is_file()


_WITHOUT_TENSORBOARD = textwrap.dedent("""
    import sys
    sys.modules["tensorboard"] = None  # as if not installed: `import tensorboard` raises ImportError
    from progrow.adapters.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_without_the_tensorboard_package_a_run_succeeds_with_one_notice(tmp_path):
    out = tmp_path / "run"
    argv = ["train", *FAST, "--out", str(out), "--kimg", "0.128"]  # four ticks
    env = one_thread_env()
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TENSORBOARD, *argv], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count(tensorboard_log.NOTICE) == 1, proc.stdout
    assert [line for line in proc.stdout.splitlines() if line.startswith("notice:")] == [tensorboard_log.NOTICE]
    assert "Traceback" not in proc.stderr and "warning" not in proc.stderr.lower()
    assert not (out / "tensorboard").exists() and len((out / "log.jsonl").read_text().splitlines()) == 4


def test_scalar_tags_of_log_fields():
    tag = tensorboard_log.scalar_tag
    assert [tag(k) for k in ("d_loss", "g_loss", "d_gradient_penalty", "fid@64", "swd@4", "img_per_s")] == [
        "Loss/D",
        "Loss/G",
        "Loss/D_gradient_penalty",
        "Metrics/fid",
        "Metrics/swd",
        "Speed/img_per_s",
    ]
    assert tag("tick") is None and tag("kimg") is None and tag("seconds") is None
    assert tag("some_new_field") == "Train/some_new_field"  # every numeric field is logged, known or not
