"""`progrow` on the command line: `progrow dataset | train | plan | generate | interpolate …`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]


def _dataset(argv: Sequence[str]) -> int:
    from progrow.data.cli import main as run

    return run(list(argv), prog="progrow dataset")


def _train(argv: Sequence[str]) -> int:
    from .progan.train import main as run

    return run(list(argv), prog="progrow train")


def _plan(argv: Sequence[str]) -> int:
    from .progan.plan_cli import main as run

    return run(list(argv), prog="progrow plan")


def _generate(argv: Sequence[str]) -> int:
    from .progan.generate import generate_main

    return generate_main(list(argv))


def _interpolate(argv: Sequence[str]) -> int:
    from .progan.generate import interpolate_main

    return interpolate_main(list(argv))


def _metrics(argv: Sequence[str]) -> int:
    from .progan.metrics_cli import metrics_main

    return metrics_main(list(argv))


def _fid(argv: Sequence[str]) -> int:
    from .progan.metrics_cli import fid_main

    return fid_main(list(argv))


COMMANDS: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "dataset": (_dataset, "build a multi-resolution dataset cache from images, a zip, or the synthetic set"),
    "train": (_train, "train the reference ProGAN (same options as python -m progrow.adapters.progan.train)"),
    "plan": (_plan, "the largest minibatch per resolution for a memory budget (progrow plan --preset paper-1024 --memory 80GiB)"),
    "generate": (_generate, "write images from a trained generator"),
    "interpolate": (_interpolate, "a latent interpolation strip and GIF"),
    "metrics": (_metrics, "FID / KID / IS / SWD / MS-SSIM of a trained generator against a dataset"),
    "fid": (_fid, "FID of a trained generator against a dataset (the same as progrow metrics --metrics fid)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """`progrow COMMAND …` (also `python -m progrow …`): the command's exit code; `--version` prints the version."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        from progrow import __version__

        print(f"progrow {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = ["usage: progrow [--version] COMMAND [options]   (progrow COMMAND --help for its options)", "", "commands:"]
        lines += [f"  {name:<12} {text}" for name, (_, text) in COMMANDS.items()]
        print("\n".join(lines), file=sys.stdout if not argv or argv[0] in ("-h", "--help") else sys.stderr)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    run, _ = COMMANDS[argv[0]]
    return run(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
