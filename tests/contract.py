"""The contract every adapter passes: a base class of tests that each adapter's test class inherits.

```python
class TestMyAdapter(AdapterContract):
    resolutions = (4, 8, 16)                      # the stages to check, ascending
    def make_generator(self): return MyGenerator()        # a fresh protocol generator (not wrapped)
    def make_discriminator(self): return MyDiscriminator()
    def latent(self, n): return torch.randn(n, 16)
```

The tests wrap the networks in `ProgressiveGenerator` / `ProgressiveDiscriminator` and check: protocol
conformance, output shapes at every stage and phase, alpha = 0 continuity at every fade bit for bit (G
against the previous stage upsampled, D against the previous stage on downsampled images; both in eval
mode so BatchNorm is deterministic), a state-dict round trip, one optimizer step at every stage that
touches only the active parameters, and a forward under CPU bf16 autocast.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from itertools import pairwise

import torch
from torch import Tensor, nn

import progrow as pg


class AdapterContract:
    """Base class of the adapter contract tests; subclasses provide the networks (see the module docstring)."""

    resolutions: tuple[int, ...] = ()  # stages to check, ascending, each twice the one before
    img_channels: int = 3
    batch: int = 4  # images per test batch

    # ----------------------------------------------------------------------------- what subclasses give
    def make_generator(self) -> nn.Module:
        """A fresh generator written to (or adapted to) the protocol, not yet wrapped."""
        raise NotImplementedError

    def make_discriminator(self) -> nn.Module:
        """A fresh discriminator written to (or adapted to) the protocol, not yet wrapped."""
        raise NotImplementedError

    def latent(self, n: int) -> Tensor:
        """Latents for `n` images, as the generator takes them."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ helpers
    def wrap_generator(self, net: nn.Module | None = None) -> pg.ProgressiveGenerator:
        """`ProgressiveGenerator` around `net` (default: a fresh one)."""
        return pg.ProgressiveGenerator(net if net is not None else self.make_generator(), img_channels=self.img_channels)

    def wrap_discriminator(self, net: nn.Module | None = None) -> pg.ProgressiveDiscriminator:
        """`ProgressiveDiscriminator` around `net` (default: a fresh one)."""
        return pg.ProgressiveDiscriminator(net if net is not None else self.make_discriminator(), img_channels=self.img_channels)

    def states(self) -> Iterator[pg.GrowthState]:
        """The lowest stage (stable), then every later stage mid-fade and stable."""
        res = self.resolutions
        yield pg.GrowthState(res[0])
        for r in res[1:]:
            yield pg.GrowthState(r, alpha=0.5)
            yield pg.GrowthState(r)

    def images(self, r: int) -> Tensor:
        """A batch of random images `[batch, img_channels, r, r]`."""
        return torch.randn(self.batch, self.img_channels, r, r)

    # --------------------------------------------------------------------------------------------- tests
    def test_protocol_conformance(self) -> None:
        g, d = self.make_generator(), self.make_discriminator()
        assert isinstance(g, nn.Module) and isinstance(d, nn.Module)
        assert isinstance(g, pg.GrowableGenerator) and isinstance(d, pg.GrowableDiscriminator)
        g_res, d_res = pg.check_generator(g), pg.check_discriminator(d)
        assert set(self.resolutions) <= set(g_res) and set(self.resolutions) <= set(d_res), (g_res, d_res)
        z = self.latent(self.batch)
        for r in self.resolutions:
            assert isinstance(g.channels(r), int) and g.channels(r) > 0
            assert isinstance(d.channels(r), int) and d.channels(r) > 0
            yielded = [(res, tuple(h.shape)) for res, h in g.features(z, until=r)]
            assert yielded == [(s, (self.batch, g.channels(s), s, s)) for s in g_res if s <= r], f"features(until={r})"
        lowest = d_res[0]
        for r in d_res[1:]:
            block = d.block(r)
            assert isinstance(block, nn.Module)
            out = block(torch.randn(self.batch, d.channels(r), r, r))
            assert out.shape == (self.batch, d.channels(r // 2), r // 2, r // 2), f"block({r})"
        scores = d.head(torch.randn(self.batch, d.channels(lowest), lowest, lowest))
        assert scores.shape in ((self.batch,), (self.batch, 1)), f"head gives {list(scores.shape)}"
        self.wrap_generator(g), self.wrap_discriminator(d)  # the wrappers' own checks pass

    def test_output_shapes_at_every_stage_and_phase(self) -> None:
        G, D = self.wrap_generator(), self.wrap_discriminator()
        seen = []
        for s in self.states():
            images = G(self.latent(self.batch), s)
            assert images.shape == (self.batch, self.img_channels, s.resolution, s.resolution), s
            scores = D(images, s)
            assert scores.shape in ((self.batch,), (self.batch, 1)), (s, list(scores.shape))
            assert torch.isfinite(images).all() and torch.isfinite(scores).all(), s
            seen.append((s.resolution, s.phase))
        assert len(seen) == 2 * len(self.resolutions) - 1

    def test_generator_alpha_zero_is_previous_stage_upsampled_bit_for_bit(self) -> None:
        G = self.wrap_generator().eval()
        z = self.latent(self.batch)
        with torch.no_grad():
            for r in self.resolutions[1:]:
                faded = G(z, pg.GrowthState(r, alpha=0.0))
                previous = G(z, pg.GrowthState(r // 2))
                assert torch.equal(faded, pg.upsample2x(previous)), f"fade into {r}: alpha = 0 differs from {r // 2} upsampled"

    def test_discriminator_alpha_zero_is_previous_stage_on_downsampled_bit_for_bit(self) -> None:
        D = self.wrap_discriminator().eval()
        with torch.no_grad():
            for r in self.resolutions[1:]:
                x = self.images(r)
                faded = D(x, pg.GrowthState(r, alpha=0.0))
                previous = D(pg.downsample2x(x), pg.GrowthState(r // 2))
                assert torch.equal(faded, previous), f"fade into {r}: alpha = 0 differs from {r // 2} on downsampled images"

    def test_state_dict_round_trip(self) -> None:
        z = self.latent(self.batch)
        top = self.resolutions[-1]
        for wrap, make_input in ((self.wrap_generator, lambda r: z), (self.wrap_discriminator, self.images)):
            a, b = wrap().eval(), wrap().eval()
            buffer = io.BytesIO()
            torch.save(a.state_dict(), buffer)
            buffer.seek(0)
            state = torch.load(buffer, weights_only=True)
            assert set(state) == set(b.state_dict())
            x = make_input(top)
            s = pg.GrowthState(top, alpha=0.3)
            with torch.no_grad():
                assert not torch.equal(a(x, s), b(x, s)), "two fresh networks should differ"
                b.load_state_dict(state)
                for st in self.states():
                    x = make_input(st.resolution)
                    assert torch.equal(a(x, st), b(x, st)), f"{type(a).__name__} differs after loading, at {st}"

    def test_one_step_at_every_stage_touches_only_the_active_parameters(self) -> None:
        for s in self.states():
            r, prev = s.resolution, s.resolution // 2
            G, D = self.wrap_generator(), self.wrap_discriminator()
            rgb = {f"to_rgb.{r}."} | ({f"to_rgb.{prev}."} if s.is_fading else set())
            expected_g = _params_with_prefixes(G, rgb) | {f"net.{n}" for n in self._used_by_features(G.net, r)}
            rgb = {f"from_rgb.{r}."} | ({f"from_rgb.{prev}."} if s.is_fading else set())
            expected_d = _params_with_prefixes(D, rgb) | {f"net.{n}" for n in self._used_by_blocks(D.net, r)}
            self._check_one_step(G, G(self.latent(self.batch), s).float().square().mean(), expected_g, f"to_rgb.{r}.", s)
            self._check_one_step(D, D(self.images(r), s).float().mean(), expected_d, f"from_rgb.{r}.", s)
        # every stage brings parameters of its own, so the check above had inactive ones to find
        G, D = self.wrap_generator(), self.wrap_discriminator()
        used_g = [self._used_by_features(G.net, r) for r in self.resolutions]
        used_d = [self._used_by_blocks(D.net, r) for r in self.resolutions]
        for lower, higher in pairwise(used_g):
            assert lower < higher, "generator: a later stage uses no parameters of its own (are inactive blocks run?)"
        for lower, higher in pairwise(used_d):
            assert lower < higher

    def test_forward_under_cpu_bf16_autocast(self) -> None:
        G, D = self.wrap_generator(), self.wrap_discriminator()
        top = self.resolutions[-1]
        for s in (pg.GrowthState(top, alpha=0.3), pg.GrowthState(top)):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                images = G(self.latent(self.batch), s)
                scores = D(images, s)
            assert images.shape == (self.batch, self.img_channels, top, top)
            assert torch.isfinite(images.float()).all() and torch.isfinite(scores.float()).all()

    # ------------------------------------------------------------------------------------ references
    @staticmethod
    def _check_one_step(module: nn.Module, loss: Tensor, expected: set[str], new: str, s: pg.GrowthState) -> None:
        """Backward `loss` and take one Adam step: gradients reach exactly `expected`; nothing else moves."""
        name = type(module).__name__
        before = {n: p.detach().clone() for n, p in module.named_parameters()}
        opt = torch.optim.Adam(module.parameters(), lr=1e-2)
        loss.backward()
        touched = {n for n, p in module.named_parameters() if p.grad is not None}
        unexpected, missing = sorted(touched - expected), sorted(expected - touched)
        assert touched == expected, f"{name} at {s}: unexpected gradients {unexpected}, missing {missing}"
        opt.step()
        for n, p in module.named_parameters():
            if n not in expected:
                assert torch.equal(p, before[n]), f"{name} at {s}: inactive {n} changed"
        assert any(not torch.equal(p, before[n]) for n, p in module.named_parameters() if n.startswith(new)), f"{name} at {s}"

    def _used_by_features(self, net: nn.Module, r: int) -> set[str]:
        """Parameters of a protocol generator that `features(z, until=r)` uses (the stage's active ones)."""
        net.zero_grad(set_to_none=True)
        total = sum(h.float().sum() for _, h in net.features(self.latent(self.batch), until=r))
        total.backward()
        used = {n for n, p in net.named_parameters() if p.grad is not None}
        net.zero_grad(set_to_none=True)
        return used

    def _used_by_blocks(self, net: nn.Module, r: int) -> set[str]:
        """Parameters of a protocol discriminator that blocks r … lowest·2 and the head use."""
        net.zero_grad(set_to_none=True)
        h = torch.randn(self.batch, net.channels(r), r, r)
        res = r
        while res > net.resolutions[0]:
            h = net.block(res)(h)
            res //= 2
        net.head(h).float().sum().backward()
        used = {n for n, p in net.named_parameters() if p.grad is not None}
        net.zero_grad(set_to_none=True)
        return used


def _params_with_prefixes(module: nn.Module, prefixes: set[str]) -> set[str]:
    return {n for n, _ in module.named_parameters() if n.startswith(tuple(prefixes))}
