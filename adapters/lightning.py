"""A Lightning `Callback` that drives progrow's `ProgressiveScheduler` inside a `LightningModule` (extra `lightning`).

```python
growth = ProgressiveCallback(pg.ProgressiveScheduler(config))
trainer = lightning.Trainer(callbacks=[growth], max_epochs=-1)   # stops when the schedule is done
trainer.fit(MyGAN(growth), dataloader)                           # Trainer.fit(ckpt_path=...) resumes mid-fade
```

The module trains with manual optimization and calls its wrappers without a state (`self.G(z)`); in
`training_step` it reads `growth.state` and passes its real images through `growth.prepare_reals(batch)`.
Tested with Lightning 2.6.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn
from torch.optim import Optimizer

try:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback
except ImportError as exc:
    raise ImportError(
        "progrow.adapters.lightning needs Lightning 2: pip install progrow-gan[lightning] (or pip install lightning)"
    ) from exc

from progrow.binding import bind
from progrow.blend import fade_reals, resize_to
from progrow.ema import EMA
from progrow.optim import reset_optimizer
from progrow.optim import set_lr as apply_lr
from progrow.progressive import ProgressiveDiscriminator, ProgressiveGenerator
from progrow.scheduler import ProgressiveScheduler
from progrow.state import GrowthState

__all__ = ["ProgressiveCallback"]

_EMA_KEY = "progrow_ema"  # where the module's EMAs go in a Lightning checkpoint
_HOOK = "on_growth_phase"  # called on the LightningModule and the DataModule, where defined, with the new state


class ProgressiveCallback(Callback):
    """Keeps growth in step with training: stage, alpha, minibatch size and learning rate from images shown.

    At the start of `fit` it binds every `ProgressiveGenerator` / `ProgressiveDiscriminator` among the
    module's submodules, the shadow of every `progrow.EMA` held as a module attribute, and the `extra`
    targets to the scheduler, so they run at the current state without being passed one. After each
    training batch it advances the scheduler by the images that batch showed (what `prepare_reals` kept,
    else the batch's length), times the number of processes. Optimizers get the state's learning rate
    (`set_lr`) and are cleared when the schedule's `reset_optimizers` policy says so (`reset_optimizers`).
    At the start of `fit` and of every phase, `on_growth_phase(state)` is called on the module and the
    datamodule that define it (e.g. to switch a dataset's resolution). Resolution, alpha, kimg and stage
    are logged as `growth/…` each step (`log`); the scheduler's position and every such EMA (its shadow
    weights and update count, which are not part of the module's `state_dict`) are saved in Lightning's
    checkpoints, so `Trainer.fit(ckpt_path=...)` resumes mid-fade. With `stop_when_done`, training stops
    once the schedule is done.
    """

    def __init__(
        self,
        scheduler: ProgressiveScheduler,
        *,
        extra: Sequence[Any] = (),
        set_lr: bool = True,
        reset_optimizers: bool = True,
        log: bool = True,
        prog_bar: bool = False,
        stop_when_done: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(scheduler, ProgressiveScheduler):
            raise TypeError(f"ProgressiveCallback: expected a ProgressiveScheduler, got {type(scheduler).__name__}")
        self.scheduler = scheduler
        self.extra = tuple(extra)
        self.set_lr = set_lr
        self.reset_optimizers = reset_optimizers
        self.log = log
        self.prog_bar = prog_bar
        self.stop_when_done = stop_when_done
        self.bound: tuple[Any, ...] = ()  # what the last fit bound: wrappers and EMA shadows
        self._optimizers: list[Optimizer] = []
        self._unbind: list[Any] = []
        self._world_size = 1
        self._step_state: GrowthState | None = None
        self._step_images: int | None = None

    # ----------------------------------------------------------------------------------- for the module
    @classmethod
    def of(cls, trainer: pl.Trainer) -> ProgressiveCallback:
        """The trainer's `ProgressiveCallback` (for modules that do not keep a reference to it)."""
        found = [c for c in trainer.callbacks if isinstance(c, cls)]  # type: ignore[attr-defined]
        if len(found) != 1:
            raise RuntimeError(
                f"ProgressiveCallback.of: expected one ProgressiveCallback in the trainer's callbacks, found {len(found)}"
            )
        return found[0]

    @property
    def state(self) -> GrowthState:
        """The growth state to train the current batch at."""
        return self.scheduler.state

    @property
    def max_batch_size(self) -> int:
        """The largest minibatch of the schedule (per process): size the DataLoader's batches at least this."""
        config = self.scheduler.config
        return max(config.batch_size_at(r) for r in config.resolutions) // self._world_size

    def prepare_reals(self, images: Tensor) -> Tensor:
        """Reals for this step: the state's minibatch, resized to its resolution and faded, `[B, C, R, R]`.

        Takes the first `state.batch_size` images (this process's share under data parallelism) of a
        batch of square power-of-two images of any size (box-filtered down / copied up), then blends them
        as `progrow.fade_reals` does during a fade. The scheduler then counts these images as shown.
        """
        state = self.scheduler.state
        n = self._per_process(state.batch_size)
        if images.dim() != 4 or images.shape[0] < n:
            raise ValueError(
                f"ProgressiveCallback.prepare_reals: the schedule asks for {n} images [N, C, H, W] at "
                f"{state.resolution}², got {list(images.shape)}; give the DataLoader batch_size ≥ "
                f"{self.max_batch_size} (the schedule's largest) and drop_last=True"
            )
        self._step_images = n
        return fade_reals(resize_to(images[:n], state.resolution), state)

    # ------------------------------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Bind the wrappers and optimizers to the scheduler and announce the current phase."""
        self._release()
        self._world_size = max(1, int(trainer.world_size))
        multiple = self.scheduler.config.batch_multiple
        if self._world_size > 1 and multiple % self._world_size:
            raise ValueError(
                f"ProgressiveCallback: {self._world_size} processes share each minibatch, but the schedule's "
                f"batch_multiple is {multiple}; set ScheduleConfig(batch_multiple={self._world_size})"
            )
        targets = self._growth_targets(pl_module)
        if not targets:
            raise ValueError(
                "ProgressiveCallback: found no ProgressiveGenerator / ProgressiveDiscriminator among "
                f"{type(pl_module).__name__}'s submodules; wrap the networks (pg.ProgressiveGenerator(net)) "
                "and assign them as attributes, or pass them as extra="
            )
        self.bound = tuple(targets)
        self._optimizers = [opt for opt in trainer.optimizers if isinstance(opt, Optimizer)]
        self._unbind = [bind(self.scheduler, *targets), self.scheduler.add_listener(self._optimizer_listener)]
        self._announce(trainer, pl_module, self.scheduler.state)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Apply the state's learning rate again (a resumed fit has just restored the optimizers); stop if done."""
        self._optimizer_listener(None, self.scheduler.state)
        if self.stop_when_done and self.scheduler.done:
            trainer.should_stop = True

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        """Remember the state this batch trains at."""
        self._step_state = self.scheduler.state
        self._step_images = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Log the state the batch trained at, advance the scheduler, announce a new phase, stop when done."""
        state = self._step_state if self._step_state is not None else self.scheduler.state
        n = self._step_images if self._step_images is not None else _batch_length(batch)
        if n is None:
            n = self._per_process(state.batch_size)
        if self.log:
            pl_module.log_dict(
                {"growth/resolution": float(state.resolution), "growth/alpha": state.alpha,
                 "growth/kimg": state.kimg, "growth/stage": float(state.stage)},
                on_step=True, on_epoch=False, prog_bar=self.prog_bar, batch_size=n,
            )  # fmt: skip
        new = self.scheduler.advance(n * self._world_size)
        if new.stage != state.stage or new.phase != state.phase:
            self._announce(trainer, pl_module, new)
        if self.stop_when_done and self.scheduler.done:
            trainer.should_stop = True

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Unbind from the scheduler at the end of `fit`."""
        self._release()

    # ----------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The scheduler's position and config, stored in Lightning's checkpoint."""
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the scheduler's position (a checkpoint of a different schedule is refused)."""
        self.scheduler.load_state_dict(state_dict["scheduler"])

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Store every `progrow.EMA` held as a module attribute under `checkpoint["progrow_ema"][name]`."""
        emas = _emas(pl_module)
        if emas:
            checkpoint[_EMA_KEY] = {name: ema.state_dict() for name, ema in emas.items()}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Restore the EMAs stored by `on_save_checkpoint`; an EMA the checkpoint lacks is an error naming it."""
        saved = checkpoint.get(_EMA_KEY, {})
        emas = _emas(pl_module)
        missing = sorted(set(emas) - set(saved))
        if missing:
            raise ValueError(
                f"ProgressiveCallback: the checkpoint holds no state for the EMA attribute(s) {', '.join(missing)} of "
                f"{type(pl_module).__name__} (it was saved without them), so their shadow weights cannot be restored; "
                "resume from a checkpoint saved with this callback"
            )
        for name, ema in emas.items():
            ema.load_state_dict(saved[name])

    # -------------------------------------------------------------------------------------- internals
    def _growth_targets(self, pl_module: pl.LightningModule) -> list[Any]:
        targets: list[Any] = [m for m in pl_module.modules() if isinstance(m, (ProgressiveGenerator, ProgressiveDiscriminator))]
        for ema in _emas(pl_module).values():
            if isinstance(ema.module, nn.Module) and callable(getattr(ema.module, "set_state", None)):
                targets.append(ema.module)
        seen: set[int] = set()
        unique = []
        for t in [*targets, *self.extra]:
            if id(t) not in seen:
                seen.add(id(t))
                unique.append(t)
        return unique

    def _optimizer_listener(self, prev: GrowthState | None, new: GrowthState) -> None:
        reset = self.reset_optimizers and prev is not None and self.scheduler.optimizer_reset_due(prev, new)
        for opt in self._optimizers:
            if reset:
                reset_optimizer(opt)
            if self.set_lr and new.lr is not None:
                apply_lr(opt, new.lr)

    def _announce(self, trainer: pl.Trainer, pl_module: pl.LightningModule, state: GrowthState) -> None:
        for owner in (pl_module, getattr(trainer, "datamodule", None)):
            hook = getattr(owner, _HOOK, None)
            if callable(hook):
                hook(state)

    def _per_process(self, batch_size: int | None) -> int:
        if batch_size is None:
            raise ValueError("ProgressiveCallback: the scheduler's state has no batch size")
        return max(1, batch_size // self._world_size)

    def _release(self) -> None:
        for unbind in self._unbind:
            unbind()
        self._unbind = []
        self._optimizers = []


def _batch_length(batch: Any) -> int | None:
    """Images in a batch: the length of its first tensor (a tensor, or one inside a tuple, list or dict)."""
    if isinstance(batch, Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    items = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, (list, tuple)) else ()
    for item in items:
        n = _batch_length(item)
        if n is not None:
            return n
    return None


def _emas(pl_module: Any) -> dict[str, EMA]:
    """The `progrow.EMA` objects held as plain attributes of a module, by attribute name."""
    return {name: value for name, value in vars(pl_module).items() if isinstance(value, EMA)}
