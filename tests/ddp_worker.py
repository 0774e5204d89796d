"""Run by `torchrun` in tests/test_progan_distributed.py: trains, then saves this rank's final state."""

import sys

import torch

from progrow.adapters.progan import train as T


def main() -> None:
    out, extra = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(1)
    args = T.build_parser().parse_args(["--out", out, "--device", "cpu", *extra])
    dist = T.init_distributed("cpu")
    opts = T.resolve_options(args, dist)
    run = T.train(opts, T.open_dataset(opts), None)
    torch.save(
        {"G": run.G.state_dict(), "D": run.D.state_dict(), "G_ema": run.ema.module.state_dict(),
         "nimg": run.scheduler.nimg, "world_size": dist.world_size},
        f"{out}/rank{dist.rank}.pt",
    )


if __name__ == "__main__":
    main()
