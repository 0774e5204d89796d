"""progrow.adapters.lightning with a real `lightning.Trainer` on CPU: stage changes, logging, resume mid-fade."""

from __future__ import annotations

import csv
import importlib
import importlib.util
import sys

import pytest
import torch
import torch.nn.functional as F
from nets import ProtocolDiscriminator, ProtocolGenerator
from torch.utils.data import DataLoader, Dataset

import progrow as pg

needs_lightning = pytest.mark.skipif(importlib.util.find_spec("lightning") is None, reason="the lightning extra is not installed")

WIDTHS = {4: 8, 8: 8, 16: 4}
Z = 8


def config() -> pg.ScheduleConfig:
    """4² → 16², 20 images a phase, minibatch 8 then 4 at 16², lr halved at 16², optimizers reset per stage."""
    return pg.ScheduleConfig(
        start_resolution=4,
        final_resolution=16,
        fade_kimg=0.02,
        stable_kimg=0.02,
        batch_size=8,
        batch_size_per_res={16: 4},
        lr=2e-3,
        lr_per_res={16: 1e-3},
        reset_optimizers="stage",
    )


class SameImages(Dataset):
    """Every minibatch of 8 is the same 8 images at 16² (so a resumed fit sees the data an unbroken one does)."""

    def __init__(self, length: int = 800) -> None:
        self.images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i % 8]


def loader() -> DataLoader:
    return DataLoader(SameImages(), batch_size=8, shuffle=False, drop_last=True)


def make_module(growth):
    import lightning.pytorch as L

    class TinyGAN(L.LightningModule):
        """A user's module: manual optimization, wrappers called without a state, noise seeded by nimg."""

        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.growth = growth
            self.G = pg.ProgressiveGenerator(ProtocolGenerator(Z, WIDTHS))
            self.D = pg.ProgressiveDiscriminator(ProtocolDiscriminator(WIDTHS))
            self.ema = pg.EMA(self.G, beta=0.9)  # not a submodule: its shadow is found and bound all the same
            self.steps: list[dict] = []
            self.phases: list[tuple[int, str]] = []

        def configure_optimizers(self):
            return [
                torch.optim.Adam(self.G.parameters(), lr=0.5, betas=(0.0, 0.99)),
                torch.optim.Adam(self.D.parameters(), lr=0.5, betas=(0.0, 0.99)),
            ]

        def on_growth_phase(self, state: pg.GrowthState) -> None:
            self.phases.append((state.resolution, state.phase))

        def training_step(self, batch, batch_idx):
            opt_g, opt_d = self.optimizers()
            state = self.growth.state
            reals = self.growth.prepare_reals(batch)
            self.steps.append(
                dict(
                    nimg=state.nimg,
                    resolution=state.resolution,
                    alpha=state.alpha,
                    reals=tuple(reals.shape),
                    g_state=self.G.growth_state,
                    d_state=self.D.growth_state,
                    ema_state=self.ema.module.growth_state,
                    adam_state=len(opt_d.optimizer.state),
                    lr=opt_g.param_groups[0]["lr"],
                )
            )
            z = torch.randn(reals.shape[0], Z, generator=torch.Generator().manual_seed(state.nimg))
            fakes = self.G(z)
            d_loss = F.softplus(self.D(fakes.detach())).mean() + F.softplus(-self.D(reals)).mean()
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()
            g_loss = F.softplus(-self.D(fakes)).mean()
            opt_g.zero_grad()
            self.manual_backward(g_loss)
            opt_g.step()
            self.ema.update(self.G)

    return TinyGAN()


def trainer(tmp_path, *callbacks, name: str = "run"):
    import lightning.pytorch as L
    from lightning.pytorch.loggers import CSVLogger

    return L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=-1,
        callbacks=list(callbacks),
        logger=CSVLogger(tmp_path, name=name),
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def fit(tmp_path, *extra_callbacks, ckpt_path=None, name="run"):
    from progrow.adapters.lightning import ProgressiveCallback

    growth = ProgressiveCallback(pg.ProgressiveScheduler(config()))
    torch.manual_seed(0)  # the same initial weights in every fit
    module = make_module(growth)
    t = trainer(tmp_path, growth, *extra_callbacks, name=name)
    t.fit(module, loader(), ckpt_path=ckpt_path)
    return t, module, growth


@needs_lightning
def test_trainer_grows_through_the_stages(tmp_path):
    t, module, growth = fit(tmp_path)
    steps = module.steps
    assert growth.bound == (module.G, module.D, module.ema.module)
    assert growth.scheduler.done and growth.scheduler.nimg == growth.scheduler.total_nimg == 100
    # every step ran at the scheduler's state: wrappers bound, reals at the state's resolution and batch size
    for s in steps:
        state = pg.GrowthState(s["resolution"], alpha=s["alpha"])
        assert s["g_state"] == state == s["d_state"] == s["ema_state"]
        batch = 8 if s["resolution"] < 16 else 4
        assert s["reals"][0] <= batch and s["reals"][1:] == (3, s["resolution"], s["resolution"])
    assert [s["nimg"] for s in steps] == [0, 8, 16, 20, 28, 36, 40, 48, 56, 60, 64, 68, 72, 76, 80, 84, 88, 92, 96]
    seen = [(s["resolution"], "fade" if s["alpha"] < 1 else "stable") for s in steps]
    assert sorted(set(seen)) == [(4, "stable"), (8, "fade"), (8, "stable"), (16, "fade"), (16, "stable")]
    assert module.phases == [(4, "stable"), (8, "fade"), (8, "stable"), (16, "fade"), (16, "stable")]
    # the optimizers were reset at each new stage and follow the schedule's learning rate
    first_of_stage = {s["nimg"] for s in steps if s["nimg"] in (20, 60)}
    assert first_of_stage == {20, 60}
    for s in steps:
        assert (s["adam_state"] == 0) == (s["nimg"] in (0, 20, 60)), s
        assert s["lr"] == (1e-3 if s["resolution"] == 16 else 2e-3)
    # resolution and alpha were logged every step
    rows = list(csv.DictReader(open(t.logger.log_dir + "/metrics.csv")))
    logged = [(float(r["growth/resolution"]), float(r["growth/alpha"])) for r in rows if r.get("growth/resolution")]
    assert len(logged) == len(steps)
    for (res, alpha), s in zip(logged, steps, strict=True):
        assert res == s["resolution"] and alpha == pytest.approx(s["alpha"], abs=1e-7)  # logged as float32


@needs_lightning
def test_resume_mid_fade_continues_as_an_unbroken_fit(tmp_path):
    import lightning.pytorch as L

    class StopAt(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if ProgressiveCallbackType.of(trainer).scheduler.nimg >= 68:
                trainer.should_stop = True

    from progrow.adapters.lightning import ProgressiveCallback as ProgressiveCallbackType

    _, unbroken, _ = fit(tmp_path, name="unbroken")
    first, first_module, first_growth = fit(tmp_path, StopAt(), name="first")
    assert first_growth.scheduler.nimg == 68 and 0 < first_growth.scheduler.state.alpha < 1  # mid-fade into 16²
    ckpt = tmp_path / "mid-fade.ckpt"
    first.save_checkpoint(ckpt)
    assert torch.load(ckpt, weights_only=False)["callbacks"]["ProgressiveCallback"]["scheduler"]["nimg"] == 68

    _, resumed, growth = fit(tmp_path, ckpt_path=str(ckpt), name="resumed")
    assert resumed.steps[0]["nimg"] == 68 and resumed.steps[0]["resolution"] == 16
    assert resumed.steps[0]["alpha"] == pytest.approx(0.4) and resumed.steps[0]["g_state"].alpha == pytest.approx(0.4)
    assert resumed.steps[0]["adam_state"] > 0  # optimizer moments restored, not reset by the jump
    assert [s["nimg"] for s in first_module.steps + resumed.steps] == [s["nimg"] for s in unbroken.steps]
    assert growth.scheduler.done
    for (name, a), (_, b) in zip(unbroken.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert resumed.ema.num_updates == unbroken.ema.num_updates  # the EMA travelled in the checkpoint
    for (name, a), (_, b) in zip(unbroken.ema.module.state_dict().items(), resumed.ema.module.state_dict().items(), strict=True):
        assert torch.equal(a, b), f"ema.{name}"


@needs_lightning
def test_a_module_without_wrappers_or_with_small_batches_is_explained(tmp_path):
    import lightning.pytorch as L

    from progrow.adapters.lightning import ProgressiveCallback

    class Plain(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(2, 2)

        def training_step(self, batch, batch_idx):
            return self.net(batch).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    growth = ProgressiveCallback(pg.ProgressiveScheduler(config()))
    with pytest.raises(ValueError, match="found no ProgressiveGenerator / ProgressiveDiscriminator among Plain's"):
        trainer(tmp_path, growth).fit(Plain(), DataLoader(torch.randn(8, 2), batch_size=4))
    assert growth.max_batch_size == 8
    with pytest.raises(
        ValueError,
        match=r"asks for 8 images \[N, C, H, W\] at 4², got \[3, 3, 16, 16\]; give the "
        r"DataLoader batch_size ≥ 8",
    ):
        growth.prepare_reals(torch.randn(3, 3, 16, 16))
    with pytest.raises(TypeError, match="expected a ProgressiveScheduler, got ScheduleConfig"):
        ProgressiveCallback(config())


def test_import_without_lightning_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.delitem(sys.modules, "progrow.adapters.lightning", raising=False)
    with pytest.raises(ImportError, match=r"pip install progrow-gan\[lightning\]"):
        importlib.import_module("progrow.adapters.lightning")


@needs_lightning
def test_data_parallel_share_of_each_minibatch():
    from types import SimpleNamespace

    from progrow.adapters.lightning import ProgressiveCallback

    growth = ProgressiveCallback(pg.ProgressiveScheduler(config().replace(batch_multiple=2)), log=False)
    module = make_module(growth)
    fake_trainer = SimpleNamespace(world_size=2, optimizers=[], datamodule=None, should_stop=False)
    growth.on_fit_start(fake_trainer, module)
    assert growth.max_batch_size == 4
    growth.on_train_batch_start(fake_trainer, module, None, 0)
    assert growth.prepare_reals(torch.randn(8, 3, 16, 16)).shape == (4, 3, 4, 4)  # this rank's half of 8
    growth.on_train_batch_end(fake_trainer, module, None, None, 0)
    assert growth.scheduler.nimg == 8  # both ranks' images
    growth.teardown(fake_trainer, module, "fit")
    odd = ProgressiveCallback(pg.ProgressiveScheduler(config()))
    with pytest.raises(ValueError, match=r"2 processes share each minibatch, but the schedule's batch_multiple is 1"):
        odd.on_fit_start(fake_trainer, module)


@needs_lightning
def test_a_checkpoint_without_the_ema_is_refused_by_name(tmp_path):
    from progrow.adapters.lightning import ProgressiveCallback

    growth = ProgressiveCallback(pg.ProgressiveScheduler(config()))
    module = make_module(growth)
    checkpoint: dict = {}
    growth.on_save_checkpoint(None, module, checkpoint)
    assert set(checkpoint["progrow_ema"]) == {"ema"}
    with pytest.raises(ValueError, match=r"no state for the EMA attribute\(s\) ema of TinyGAN"):
        growth.on_load_checkpoint(None, module, {})
