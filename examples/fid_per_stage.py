"""FID (and SWD) at the end of every growth stage, in your own training loop.

At each stage end the EMA generator is scored at that stage's resolution against the real images
box-filtered to the same resolution (the dataset cache's level), as the paper does. Real statistics are
cached, so only the generated side is extracted again at a repeated evaluation.

    python examples/fid_per_stage.py --inception-weights pt_inception-2015-12-05-6726825d.pth
(without --inception-weights, torch-fidelity downloads InceptionV3 on first use)
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

import progrow as pg
from progrow.adapters.progan import ProGANDiscriminator, ProGANGenerator

Z_DIM = 32
NETS = dict(resolution=16, fmap_base=128, fmap_max=32)  # the reference ProGAN, small: 32 → 16 feature maps


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kimg", type=float, default=1.0, help="thousands of images per phase (default: 1.0)")
    parser.add_argument("--samples", type=int, default=1000, help="generated images per evaluation (default: 1000)")
    parser.add_argument("--inception-weights", default=None, help="local InceptionV3 weights (default: download)")
    parser.add_argument("--data", default=None, help="dataset cache folder (default: 512 synthetic images, built in a temp dir)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    data = Path(args.data) if args.data else pg.build_cache("synthetic:0:512", Path(tempfile.mkdtemp()) / "cache", resolution=16)
    dataset = pg.MultiResDataset(data)
    sampler = pg.ImageSampler(dataset, seed=0, mirror=True)

    config = pg.ScheduleConfig(
        start_resolution=4, final_resolution=16, fade_kimg=args.kimg, stable_kimg=args.kimg, batch_size=16, lr=2e-3
    )
    scheduler = pg.ProgressiveScheduler(config)
    G = pg.ProgressiveGenerator(ProGANGenerator(latent_dim=Z_DIM, **NETS))
    D = pg.ProgressiveDiscriminator(ProGANDiscriminator(**NETS))
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=(0.0, 0.99), eps=1e-8)
    ema = pg.EMA(G, beta=0.99)
    pg.bind(scheduler, G, D, ema.module, opt_g, opt_d)  # no state arguments needed below

    results = []
    while not scheduler.done:
        state = scheduler.state
        images, _ = sampler.next_batch(state.resolution, state.batch_size)
        reals = pg.fade_reals(pg.to_float(images), state)
        with torch.no_grad():
            fakes = G(torch.randn(state.batch_size, Z_DIM))
        d_loss = pg.wgan_gp_d_loss(D, reals, fakes).loss
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        D.requires_grad_(False)
        g_loss = pg.wgan_g_loss(D(G(torch.randn(state.batch_size, Z_DIM)))).loss
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        D.requires_grad_(True)
        ema.update(G)
        new = scheduler.advance(state.batch_size)

        if new.stage != state.stage or scheduler.done:  # a stage just ended: score it at its resolution
            scores = pg.evaluate(
                ["fid", "swd"],
                ema.module,
                state,
                dataset,
                num_samples=args.samples,
                weights_path=args.inception_weights,
                latent_dim=Z_DIM,
            )
            results.append({"kimg": new.kimg, "resolution": state.resolution, "fid": scores["fid"], "swd": scores["swd"]})
            print(
                f"stage {state.stage} ({state.resolution}²) ended at {new.kimg:.2f} kimg: "
                f"FID {scores['fid']:.2f}, SWD {scores['swd']:.2f}"
            )
    print("results:", json.dumps(results))
    return results


if __name__ == "__main__":
    main()
