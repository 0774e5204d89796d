"""Every option of every `progrow` command, fed a bad value, ends in exactly one `error:` line naming it (exit 2).

The table is checked against the parsers themselves: an option without a bad-value entry fails
`test_every_option_has_a_bad_value`, so a new option cannot be forgotten.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from progrow.adapters.progan import generate, metrics_cli, plan_cli
from progrow.adapters.progan import train as T
from progrow.data import cli as data_cli

PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "train": lambda: T.build_parser("progrow train"),
    "dataset": lambda: data_cli.build_parser("progrow dataset"),
    "generate": generate.build_generate_parser,
    "interpolate": generate.build_interpolate_parser,
    "metrics": lambda: metrics_cli.build_parser("progrow metrics"),
    "fid": lambda: metrics_cli.build_parser("progrow fid", fid=True),
    "plan": lambda: plan_cli.build_parser("progrow plan"),
}
MAINS: dict[str, Callable[[list[str]], int]] = {
    "train": lambda argv: T.main(argv, prog="progrow train"),
    "dataset": lambda argv: data_cli.main(argv, prog="progrow dataset"),
    "generate": generate.generate_main,
    "interpolate": generate.interpolate_main,
    "metrics": metrics_cli.metrics_main,
    "fid": metrics_cli.fid_main,
    "plan": lambda argv: plan_cli.main(argv, prog="progrow plan"),
}

Case = tuple[Callable[[SimpleNamespace], list[str]], str]  # argv appended to the command's valid base, and the name in the error


def _opt(*parts: str) -> Callable[[SimpleNamespace], list[str]]:
    """Fixed arguments; `{name}` is replaced by the context's path of that name."""
    return lambda c: [p.format(**{k: str(v) for k, v in vars(c).items()}) for p in parts]


BASE: dict[str, Callable[[SimpleNamespace], list[str]]] = {
    "train": _opt(
        "--preset", "cpu-demo", "--data", "synthetic:0:16", "--out", "{new}", "--kimg", "0.016", "--phase-kimg", "0.016"
    ),
    "dataset": _opt(),  # positionals: every case gives the whole command line
    "generate": _opt("--from", "{run}", "--out", "{new}", "--n", "1"),
    "interpolate": _opt("--from", "{run}", "--out", "{new}/walk.png", "--steps", "1"),
    "metrics": _opt("--from", "{run}", "--data", "{cache}", "--metrics", "swd", "--samples", "16"),
    "fid": _opt("--from", "{run}", "--data", "{cache}", "--samples", "16"),
    "plan": _opt("--preset", "cpu-demo", "--memory", "64MiB"),
}
DATASET = ("synthetic:0:4", "{new}", "--resolution", "8")

_FROM = [(_opt("--from", "{missing}"), "--from"), (_opt("--from", "{text}"), "--from"), (_opt("--from", "{folder}"), "--from")]
_WEIGHTS = [
    (_opt("--inception-weights", "{missing}"), "--inception-weights"),
    (_opt("--inception-weights", "{text}"), "--inception-weights"),
    (_opt("--inception-weights", "{folder}"), "--inception-weights"),
]
_SHARED_METRICS = {
    "source": _FROM,
    "data": [
        (_opt("--data", "{missing}"), "--data"),
        (_opt("--data", "{text}"), "--data"),
        (_opt("--data", "{folder}"), "--data"),
    ],
    "resolution": [
        (_opt("--resolution", "3"), "--resolution"),
        (_opt("--resolution", "x"), "--resolution"),
        (_opt("--resolution", "64"), "--resolution"),
    ],
    "samples": [(_opt("--samples", "1"), "--samples"), (_opt("--samples", "many"), "--samples")],
    "inception_weights": _WEIGHTS,
    "device": [(_opt("--device", "tpu"), "--device"), (_opt("--device", "cuda:99"), "--device")],
    "seed": [(_opt("--seed", "-1"), "--seed"), (_opt("--seed", "x"), "--seed")],
    "json": [(_opt("--json", "{folder}"), "--json"), (_opt("--json", "{text}/scores.json"), "--json")],
    "no_reference": [(_opt("--no-reference=1"), "--no-reference")],
}

TABLE: dict[tuple[str, str], list[Case]] = {
    **{
        ("train", dest): cases
        for dest, cases in {
            "preset": [(_opt("--preset", "paper-2048"), "--preset")],
            "data": [
                (_opt("--data", "{missing}"), "--data"),
                (_opt("--data", "{text}"), "--data"),
                (_opt("--data", "{folder}"), "--data"),
                (_opt("--data", "synthetic:x"), "--data"),
            ],
            "crop": [(_opt("--crop", "diagonal"), "--crop")],
            "upscale": [(_opt("--upscale=yes"), "--upscale")],
            "bad_images": [(_opt("--bad-images", "ignore"), "--bad-images")],
            "out": [(_opt("--out", "{text}"), "--out"), (_opt("--out", "{text}/run"), "--out")],
            "kimg": [(_opt("--kimg", "-1"), "--kimg"), (_opt("--kimg", "lots"), "--kimg")],
            "phase_kimg": [(_opt("--phase-kimg", "0"), "--phase-kimg")],
            "warm_start": [(_opt("--warm-start", "discriminator"), "--warm-start")],
            "warm_start_steps": [(_opt("--warm-start-steps", "0"), "--warm-start-steps")],
            "stage_anchor": [
                (_opt("--stage-anchor", "-1"), "--stage-anchor"),
                (_opt("--stage-anchor", "nan"), "--stage-anchor"),
                (_opt("--stage-anchor", "strong"), "--stage-anchor"),
            ],
            "stage_anchor_levels": [(_opt("--stage-anchor-levels", "some"), "--stage-anchor-levels")],
            "resume": [
                (_opt("--resume", "{missing}"), "--resume"),
                (_opt("--resume", "{text}"), "--resume"),
                (_opt("--resume", "{folder}"), "--resume"),
            ],
            "device": [(_opt("--device", "tpu"), "--device"), (_opt("--device", "cuda:99"), "--device")],
            "precision": [(_opt("--precision", "fp8"), "--precision")],
            "channels_last": [(_opt("--channels-last=1"), "--channels-last")],
            "compile": [(_opt("--compile=1"), "--compile")],
            "seed": [(_opt("--seed", "-5"), "--seed"), (_opt("--seed", "x"), "--seed"), (_opt("--seed", str(2**40)), "--seed")],
            "mirror": [(_opt("--mirror=1"), "--mirror")],
            "cond": [(_opt("--cond"), "--cond")],  # the synthetic set has no labels
            "no_growing": [(_opt("--no-growing=1"), "--no-growing")],
            "checkpoint_ticks": [(_opt("--checkpoint-ticks", "0"), "--checkpoint-ticks")],
            "keep_checkpoints": [(_opt("--keep-checkpoints", "0"), "--keep-checkpoints")],
            "stop_signals": [(_opt("--stop-signals", "TERM,NOPE"), "--stop-signals")],
            "max_bad_steps": [(_opt("--max-bad-steps", "0"), "--max-bad-steps")],
            "max_rollbacks": [(_opt("--max-rollbacks", "-1"), "--max-rollbacks")],
            "metrics": [(_opt("--metrics", "fidd"), "--metrics")],
            "metric_samples": [(_opt("--metric-samples", "1"), "--metric-samples")],
            "metric_ticks": [(_opt("--metric-ticks", "-1"), "--metric-ticks")],
            "inception_weights": _WEIGHTS,
            "data_workers": [(_opt("--data-workers", "-1"), "--data-workers")],
            "tick_kimg": [(_opt("--tick-kimg", "0"), "--tick-kimg")],
            "tensorboard": [(_opt("--no-tensorboard=1"), "--no-tensorboard")],
            "batch": [(_opt("--batch", "x"), "--batch"), (_opt("--batch", "3:16"), "--batch"), (_opt("--batch", "0"), "--batch")],
            "batch_memory": [
                (_opt("--batch-memory", "lots"), "--batch-memory"),
                (_opt("--batch-memory", "-80GiB"), "--batch-memory"),
                (_opt("--batch-memory", "80GiB", "--batch", "16"), "--batch-memory"),
                (_opt("--batch-memory", "1KiB"), "--batch-memory"),  # too small for batch 1: names 4² and the bytes
            ],
        }.items()
    },
    **{
        ("dataset", dest): cases
        for dest, cases in {
            "source": [
                (_opt("{missing}", "{new}", "--resolution", "8"), "SOURCE"),
                (_opt("{text}", "{new}", "--resolution", "8"), "SOURCE"),
                (_opt("{folder}", "{new}", "--resolution", "8"), "SOURCE"),
            ],
            "out": [
                (_opt("synthetic:0:4", "{text}", "--resolution", "8"), "OUT"),
                (_opt("synthetic:0:4", "{cache}", "--resolution", "8"), "OUT"),
            ],
            "resolution": [(_opt(*DATASET[:2], "--resolution", "12"), "--resolution"), (_opt(*DATASET[:2]), "--resolution")],
            "min_resolution": [
                (_opt(*DATASET, "--min-resolution", "16"), "--min-resolution"),
                (_opt(*DATASET, "--min-resolution", "3"), "--min-resolution"),
            ],
            "crop": [(_opt(*DATASET, "--crop", "diagonal"), "--crop")],
            "channels": [(_opt(*DATASET, "--channels", "cmyk"), "--channels")],
            "upscale": [(_opt(*DATASET, "--upscale=1"), "--upscale")],
            "bad_images": [(_opt(*DATASET, "--bad-images", "ignore"), "--bad-images")],
            "max_images": [(_opt(*DATASET, "--max-images", "0"), "--max-images")],
        }.items()
    },
    **{
        ("generate", dest): cases
        for dest, cases in {
            "source": _FROM,
            "out": [(_opt("--out", "{text}"), "--out"), (_opt("--out", "{text}/images"), "--out")],
            "n": [(_opt("--n", "0"), "--n"), (_opt("--n", "some"), "--n")],
            "seed": [(_opt("--seed", "-1"), "--seed"), (_opt("--seed", "x"), "--seed")],
            "label": [(_opt("--label", "3"), "--label"), (_opt("--label", "x"), "--label")],  # the generator is unconditional
        }.items()
    },
    **{
        ("interpolate", dest): cases
        for dest, cases in {
            "source": _FROM,
            "seeds": [
                (_opt("--seeds", "a,b"), "--seeds"),
                (_opt("--seeds", "1"), "--seeds"),
                (_opt("--seeds", "1,-2"), "--seeds"),
            ],
            "steps": [(_opt("--steps", "0"), "--steps")],
            "out": [(_opt("--out", "{folder}"), "--out"), (_opt("--out", "{text}/walk.png"), "--out")],
            "label": [(_opt("--label", "3"), "--label")],
        }.items()
    },
    **{
        ("metrics", dest): cases
        for dest, cases in {
            **_SHARED_METRICS,
            "metrics": [(_opt("--metrics", "fidd"), "--metrics"), (_opt("--metrics", ","), "--metrics")],
        }.items()
    },
    **{("fid", dest): cases for dest, cases in _SHARED_METRICS.items()},
    **{
        ("plan", dest): cases
        for dest, cases in {
            "preset": [(_opt("--preset", "paper-2048"), "--preset")],
            "memory": [
                (_opt("--memory", "lots"), "--memory"),
                (_opt("--memory", "-5GB"), "--memory"),
                (_opt("--memory", "0"), "--memory"),
                (_opt("--memory", "1KiB"), "--memory"),  # too small for batch 1
            ],
            "precision": [(_opt("--precision", "fp8"), "--precision")],
            "channels_last": [(_opt("--channels-last=1"), "--channels-last")],
            "nproc": [(_opt("--nproc", "0"), "--nproc"), (_opt("--nproc", "x"), "--nproc")],
            "max_batch": [(_opt("--max-batch", "-1"), "--max-batch"), (_opt("--nproc", "4", "--max-batch", "2"), "--max-batch")],
            "pow2": [(_opt("--pow2", "--nproc", "3"), "--pow2")],
            "margin": [(_opt("--margin", "1.5"), "--margin")],
            "mfu": [(_opt("--mfu", "0"), "--mfu")],
            "peak_tflops": [(_opt("--peak-tflops", "-1"), "--peak-tflops")],
            "json": [(_opt("--json", "{folder}"), "--json"), (_opt("--json", "{text}/plan.json"), "--json")],
        }.items()
    },
}


def _options(command: str) -> list[str]:
    return [a.dest for a in PARSERS[command]()._actions if not isinstance(a, argparse._HelpAction)]


CASES = [
    (command, dest, i) for command in PARSERS for dest in _options(command) for i in range(len(TABLE.get((command, dest), [])))
]


def test_every_option_has_a_bad_value():
    missing = [f"{command} {dest}" for command in PARSERS for dest in _options(command) if not TABLE.get((command, dest))]
    assert not missing, f"options without a bad-value case in TABLE: {', '.join(missing)}"
    stale = [f"{c} {d}" for c, d in TABLE if d not in _options(c)]
    assert not stale, f"TABLE entries for options that no longer exist: {', '.join(stale)}"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """A tiny finished run (export, checkpoint, dataset cache) and the wrong kinds of paths."""
    root = tmp_path_factory.mktemp("cli")
    run = root / "run"
    assert (
        T.main(
            [
                "--preset",
                "cpu-demo",
                "--phase-kimg",
                "0.016",
                "--tick-kimg",
                "0.016",
                "--data",
                "synthetic:0:16",
                "--out",
                str(run),
                "--kimg",
                "0.016",
            ]
        )
        == 0
    )
    text = root / "notes.txt"
    text.write_text("hello, not a checkpoint\n")
    folder = root / "folder"
    folder.mkdir()
    (folder / "readme.md").write_text("no images, no checkpoints, no cache\n")
    return SimpleNamespace(run=run, cache=run / "dataset", text=text, folder=folder, missing=root / "does-not-exist")


@pytest.mark.parametrize("command, dest, index", CASES, ids=[f"{c}-{d}-{i}" for c, d, i in CASES])
def test_a_bad_value_is_one_error_line_naming_the_option(command, dest, index, ctx, tmp_path, capsys):
    build, option = TABLE[(command, dest)][index]
    paths = SimpleNamespace(**vars(ctx), new=tmp_path / "new")
    argv = build(paths) if command == "dataset" else [*BASE[command](paths), *build(paths)]
    capsys.readouterr()
    try:
        code = MAINS[command](argv)
    except SystemExit as exc:  # argparse's own usage error
        code = exc.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, (argv, err)
    assert len(errors) == 1 and option in errors[0], (argv, err)
    assert "Traceback" not in err
    assert not (tmp_path / "new").exists(), "a failed command left its output behind"
    assert not list(ctx.run.parent.glob("*.tmp-*")) and not list(tmp_path.glob("*.tmp-*"))


def test_help_states_each_default_once():
    for name, build in PARSERS.items():
        parser = build()
        text = parser.format_help()
        assert "(default: None)" not in text and "(default: )" not in text, name
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.help:
                rendered = formatter._expand_help(action)
                assert rendered.count("default") <= 1, (name, rendered)
                assert not (action.required and "(default:" in rendered), (name, rendered)
    fid = PARSERS["fid"]().format_help()
    assert "--metrics" not in fid and "FID (Fréchet Inception Distance" in fid


def test_metrics_device_defaults_like_train():
    for name in ("metrics", "fid", "train"):
        (device,) = [a for a in PARSERS[name]()._actions if a.dest == "device"]
        assert device.default is None and device.help == "torch device (default: cuda when available, else cpu)"
