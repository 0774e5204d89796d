"""The benchmarks' shared small ProGAN config, and a hand-written plain PyTorch ProGAN of it, trained the straightforward way.

The baseline of benchmarks/train_step.py: its own equalized conv / linear, pixel norm, minibatch stddev,
toRGB / fromRGB and fade; the fakes of the D step made with the generator graph recorded (then detached),
the G step backpropagating into D's weights too, default Adam and the textbook EMA loop.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from progrow.adapters.progan.networks import feature_maps

LATENT, FMAP_BASE, FMAP_MAX, BATCH, TOP = 128, 2048, 128, 16, 64
GP, DRIFT, LR, BETAS, EPS, EMA_BETA, ALPHA = 10.0, 1e-3, 1e-3, (0.0, 0.99), 1e-8, 0.999, 0.5


def nf(r: int) -> int:
    return feature_maps(r, fmap_base=FMAP_BASE, fmap_max=FMAP_MAX)


# --------------------------------------------------------------------------------------------- plain
class EqConv2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, gain: float = math.sqrt(2)) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain / math.sqrt(c_in * k * k)
        self.pad = k // 2

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)


class EqLinear(nn.Module):
    def __init__(self, c_in: int, c_out: int, gain: float = math.sqrt(2)) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain / math.sqrt(c_in)

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias)


def pixel_norm(x):
    return x / torch.sqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def minibatch_stddev(x, group: int = 4):
    n, c, h, w = x.shape
    g = min(group, n)
    y = x.reshape(g, -1, c, h, w)  # sample n in group n mod M, as the official code
    y = torch.sqrt((y - y.mean(dim=0)).pow(2).mean(dim=0) + 1e-8)  # [M, C, H, W]
    y = y.mean(dim=[1, 2, 3]).repeat(g)  # [N]
    return torch.cat([x, y.view(n, 1, 1, 1).expand(n, 1, h, w)], dim=1)


class PlainGenerator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.res = [2**k for k in range(2, int(math.log2(TOP)) + 1)]
        self.dense = EqLinear(LATENT, nf(4) * 16, gain=math.sqrt(2) / 4)
        self.conv4 = EqConv2d(nf(4), nf(4), 3)
        self.convs = nn.ModuleList(
            nn.ModuleList([EqConv2d(nf(r // 2), nf(r), 3), EqConv2d(nf(r), nf(r), 3)]) for r in self.res[1:]
        )
        self.to_rgb = nn.ModuleList(EqConv2d(nf(r), 3, 1, gain=1.0) for r in self.res)

    def forward(self, z, resolution: int, alpha: float):
        x = self.dense(pixel_norm(z)).view(-1, nf(4), 4, 4)
        x = pixel_norm(F.leaky_relu(x, 0.2))
        x = pixel_norm(F.leaky_relu(self.conv4(x), 0.2))
        stage = int(math.log2(resolution)) - 2
        prev = x
        for conv1, conv2 in self.convs[:stage]:
            prev = x
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = pixel_norm(F.leaky_relu(conv1(x), 0.2))
            x = pixel_norm(F.leaky_relu(conv2(x), 0.2))
        image = self.to_rgb[stage](x)
        if alpha < 1.0:
            old = F.interpolate(self.to_rgb[stage - 1](prev), scale_factor=2, mode="nearest")
            image = alpha * image + (1 - alpha) * old
        return image


class PlainDiscriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.res = [2**k for k in range(2, int(math.log2(TOP)) + 1)]
        self.from_rgb = nn.ModuleList(EqConv2d(3, nf(r), 1) for r in self.res)
        self.convs = nn.ModuleList(
            nn.ModuleList([EqConv2d(nf(r), nf(r), 3), EqConv2d(nf(r), nf(r // 2), 3)]) for r in self.res[1:]
        )
        self.conv4 = EqConv2d(nf(4) + 1, nf(4), 3)
        self.fc1 = EqLinear(nf(4) * 16, nf(2))
        self.fc2 = EqLinear(nf(2), 1, gain=1.0)

    def block(self, stage: int, x):
        conv1, conv2 = self.convs[stage - 1]
        x = F.leaky_relu(conv1(x), 0.2)
        return F.avg_pool2d(F.leaky_relu(conv2(x), 0.2), 2)

    def forward(self, images, resolution: int, alpha: float):
        stage = int(math.log2(resolution)) - 2
        x = F.leaky_relu(self.from_rgb[stage](images), 0.2)
        if alpha < 1.0:
            x = self.block(stage, x)
            stage -= 1
            old = F.leaky_relu(self.from_rgb[stage](F.avg_pool2d(images, 2)), 0.2)
            x = alpha * x + (1 - alpha) * old
        for s in range(stage, 0, -1):
            x = self.block(s, x)
        x = F.leaky_relu(self.conv4(minibatch_stddev(x)), 0.2)
        x = F.leaky_relu(self.fc1(x.flatten(1)), 0.2)
        return self.fc2(x)


class PlainLoop:
    """The plain ProGAN, trained the straightforward way (G graph kept in the D step, D weight grads in the G step)."""

    def __init__(self, resolution: int, alpha: float, *, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.G, self.D = PlainGenerator(), PlainDiscriminator()
        self.G_ema = copy.deepcopy(self.G)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=LR, betas=BETAS, eps=EPS)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=LR, betas=BETAS, eps=EPS)
        self.res, self.alpha = resolution, alpha

    def step(self, reals: torch.Tensor) -> None:
        res, alpha = self.res, self.alpha
        if alpha < 1.0:
            reals = alpha * reals + (1 - alpha) * F.interpolate(F.avg_pool2d(reals, 2), scale_factor=2, mode="nearest")
        # D step
        fakes = self.G(torch.randn(BATCH, LATENT), res, alpha)
        real_scores = self.D(reals, res, alpha)
        fake_scores = self.D(fakes.detach(), res, alpha)
        eps = torch.rand(BATCH, 1, 1, 1)
        mixed = (eps * reals + (1 - eps) * fakes.detach()).requires_grad_(True)
        mixed_scores = self.D(mixed, res, alpha)
        grad = torch.autograd.grad(mixed_scores, mixed, grad_outputs=torch.ones_like(mixed_scores), create_graph=True)[0]
        gp = ((grad.view(BATCH, -1).norm(2, dim=1) - 1) ** 2).mean()
        d_loss = fake_scores.mean() - real_scores.mean() + GP * gp + DRIFT * (real_scores**2).mean()
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()
        # G step
        fakes = self.G(torch.randn(BATCH, LATENT), res, alpha)
        g_loss = -self.D(fakes, res, alpha).mean()
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        # EMA
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                p_ema.copy_(EMA_BETA * p_ema + (1 - EMA_BETA) * p)

    def num_params(self) -> tuple[int, int]:
        return sum(p.numel() for p in self.G.parameters()), sum(p.numel() for p in self.D.parameters())
