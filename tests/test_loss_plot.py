"""`plots/losses.png`: the D and G losses against kimg from `log.jsonl`, stage changes marked, redrawn at every tick."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest
from PIL import Image
from run_helpers import FAST

from progrow.adapters.progan import plots, report
from progrow.adapters.progan.plots import fade_spans, loss_figure, read_log, stage_changes
from progrow.adapters.progan.train import main as train_main


@pytest.fixture(scope="module")
def three_stages(tmp_path_factory):
    """The log of a run through 4², the fade into 8², 8², the fade into 16² and 16² (one tick per step)."""
    out = tmp_path_factory.mktemp("losses") / "run"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.32", "--no-tensorboard"]) == 0
    return out


def test_read_log_keeps_the_history_training_continued_from(tmp_path):
    path = tmp_path / "log.jsonl"
    rows = [{"kimg": k, "d_loss": v} for k, v in [(1, 0.1), (2, 0.2), (3, float("nan")), (2, 0.25), (3, 0.3), (4, 0.4)]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"kimg": 5, "d_lo')  # the last line cut by a kill
    assert [(r["kimg"], r["d_loss"]) for r in read_log(path)] == [(1, 0.1), (2, 0.25), (3, 0.3), (4, 0.4)]


def test_stage_changes_and_fades_of_a_real_run(three_stages):
    records = read_log(three_stages / "log.jsonl")
    assert stage_changes(records) == [(0.064, 8), (0.192, 16)]
    assert fade_spans(records) == [pytest.approx((0.064, 0.128)), pytest.approx((0.192, 0.256))]


def test_a_fade_ends_where_its_alpha_says_not_at_a_tick():
    """Ticks 0.6 kimg apart in a 1-kimg fade: the end follows from the alpha of the last tick inside it."""
    records = [
        {"kimg": 1.0, "stage": 0, "resolution": 4, "phase": "stable", "alpha": 1.0, "batch_size": 32},
        {"kimg": 1.6, "stage": 1, "resolution": 8, "phase": "fade", "alpha": 0.568, "batch_size": 32},  # at 1.568 kimg
        {"kimg": 2.2, "stage": 1, "resolution": 8, "phase": "stable", "alpha": 1.0, "batch_size": 32},
        {"kimg": 2.5, "stage": 2, "resolution": 16, "phase": "fade", "alpha": 0.268, "batch_size": 32},  # run ends mid-fade
    ]
    assert stage_changes(records) == [(1.0, 8), (2.2, 16)]
    assert fade_spans(records) == [pytest.approx((1.0, 2.0)), pytest.approx((2.2, 2.5))]


def test_the_figure_draws_every_loss_term_at_every_tick_and_marks_the_stages(three_stages):
    records = read_log(three_stages / "log.jsonl")
    fig = loss_figure(records)
    ax_d, ax_g = fig.axes
    kimg = [r["kimg"] for r in records]
    for ax, keys, labels in (
        (ax_d, ["d_loss", "d_real_loss", "d_fake_loss", "d_r1_penalty"], ["D loss", "real loss", "fake loss", "r1 penalty"]),
        (ax_g, ["g_loss"], ["G loss"]),
    ):
        curves = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
        assert [c.get_label() for c in curves] == labels
        assert [t.get_text() for t in ax.get_legend().get_texts()] == labels
        for curve, key in zip(curves, keys, strict=True):
            assert list(curve.get_xdata()) == kimg and list(curve.get_ydata()) == [r[key] for r in records], key
        dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert [line.get_xdata()[0] for line in dashed] == [0.064, 0.192]
    assert [t.get_text() for t in ax_d.texts] == ["4²", "8²", "16²"]
    assert ax_g.get_xlim()[0] == 0 and ax_g.get_xlabel() == "kimg"


def _watch_loss_plots(monkeypatch):
    """Record, at each drawing, how many ticks the log holds and a hash of the PNG written."""
    drawn: list[tuple[int, str]] = []
    original = report.plot_losses

    def watched(log_path, out_dir):
        path = original(log_path, out_dir)
        drawn.append((len(log_path.read_text().splitlines()), hashlib.sha256(path.read_bytes()).hexdigest()))
        return path

    monkeypatch.setattr(report, "plot_losses", watched)
    return drawn


def test_losses_png_is_redrawn_at_every_tick(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "LOSS_PLOT_MIN_SECONDS", 0.0)
    drawn = _watch_loss_plots(monkeypatch)
    out = tmp_path / "run"
    assert train_main([*FAST, "--out", str(out), "--kimg", "0.128", "--no-tensorboard"]) == 0
    assert [ticks for ticks, _ in drawn] == [1, 2, 3, 4]
    assert len({digest for _, digest in drawn}) == 4  # a new picture each time
    assert hashlib.sha256((out / "plots" / "losses.png").read_bytes()).hexdigest() == drawn[-1][1]
    assert Image.open(out / "plots" / "losses.png").size == (900, 550)
    assert not list((out / "plots").glob("*.tmp"))


def test_ticks_closer_than_the_interval_wait_but_the_last_tick_draws(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "LOSS_PLOT_MIN_SECONDS", 3600.0)
    drawn = _watch_loss_plots(monkeypatch)
    assert train_main([*FAST, "--out", str(tmp_path / "run"), "--kimg", "0.128", "--no-tensorboard"]) == 0
    assert [ticks for ticks, _ in drawn] == [4]


def test_without_matplotlib_a_run_succeeds_with_one_notice(tmp_path, monkeypatch, capsys):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)  # `import matplotlib…` raises ImportError
    monkeypatch.setattr(report, "LOSS_PLOT_MIN_SECONDS", 0.0)
    out = tmp_path / "run"
    args = [*FAST, "--out", str(out), "--kimg", "0.128", "--metrics", "ms_ssim", "--metric-samples", "16", "--no-tensorboard"]
    assert train_main(args) == 0  # four loss drawings and two metric plots skipped
    notices = [line for line in capsys.readouterr().out.splitlines() if line.startswith("notice:")]
    assert notices == ["notice: matplotlib is not installed, so no loss or metric plots (pip install 'progrow-gan[plots]')"]
    assert not (out / "plots").exists()
    assert plots.plot_losses(out / "log.jsonl", out / "plots") is None
