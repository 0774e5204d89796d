"""Run by `torchrun` in tests/test_progan_distributed.py: trains with the script's own pieces, then saves this rank's state."""

import os
import sys
from pathlib import Path

import torch

from progrow.adapters.progan import train as T


def main() -> None:
    out, extra = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(1)
    dist = T.init_distributed("cpu")
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / f"pid{dist.rank}").write_text(str(os.getpid()))
    run = T.run_training(T.resolve_options(T.build_parser().parse_args(["--out", out, "--device", "cpu", *extra]), dist))
    torch.save(
        {
            "G": run.G.state_dict(),
            "D": run.D.state_dict(),
            "G_ema": run.ema.module.state_dict(),
            "nimg": run.scheduler.nimg,
            "world_size": dist.world_size,
            "stopped_by": run.stopped_by or 0,
            "opt_g": run.opt_g.state_dict(),
            "opt_d": run.opt_d.state_dict(),
            "sampler": run.sampler.state_dict(),
        },
        f"{out}/rank{dist.rank}.pt",
    )


if __name__ == "__main__":
    main()
