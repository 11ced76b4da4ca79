"""The `aimedx train` command: options derived from TrainConfig, a progress line, resume, Ctrl-C.

Every option is declared once, as a TrainConfig field (engine/training.py `option`); this module
turns those fields into argparse options and decides from their `resumable` flag what `--resume`
may change, so an option added there is on the command line and guarded on resume at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import typing
from pathlib import Path

from aimedx_desktop.cli import stopped_status
from aimedx_desktop.engine.errors import UserError
from aimedx_desktop.engine.io.errors import os_error_reason
from aimedx_desktop.engine.training import CHECKPOINT_NAME, EpochReport, TrainConfig, load_run, option_flag, train

_NOT_OPTIONS = {"out", "resume", "argv"}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field. Defaults are left out of the namespace (SUPPRESS), so
    the options a user actually gave are exactly the attributes present."""
    hints = typing.get_type_hints(TrainConfig)
    for item in dataclasses.fields(TrainConfig):
        meta = item.metadata
        if not meta.get("cli", True):
            continue
        kind = hints[item.name]
        default = item.default if item.default is not dataclasses.MISSING else item.default_factory()  # type: ignore[misc]
        unset = default is False or default in ("", [])  # not `in (…, False)`: 0 == False, and 0 is a default to show
        help_text = meta["help"] + ("" if unset else f" (default: {_shown(default)})")
        options: dict[str, typing.Any] = {"help": help_text, "default": argparse.SUPPRESS}
        if kind is bool:
            options["action"] = "store_true"
        elif typing.get_origin(kind) is list:
            options.update(nargs="+" if item.name in ("ct", "mr", "val_ct", "val_mr") else "*")
        elif typing.get_origin(kind) is tuple:
            element = typing.get_args(kind)[0]
            options.update(nargs=len(typing.get_args(kind)), type=element, metavar=meta["metavar"])
        else:
            options.update(type=kind, choices=meta["choices"])
        if item.name == "out":
            options["required"] = True
        parser.add_argument(option_flag(item.name), **options)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")


def _shown(value: typing.Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def _given(args: argparse.Namespace) -> dict[str, typing.Any]:
    """The TrainConfig options present on the command line."""
    names = {item.name for item in dataclasses.fields(TrainConfig) if item.metadata["cli"]}
    return {name: value for name, value in vars(args).items() if name in names}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    given = _given(args)
    if not given.get("ct") or not given.get("mr"):
        raise UserError("a new run needs --ct and --mr inputs")
    return TrainConfig(**given, command=shlex.join(["aimedx", *args.argv]))


def resumed_config(args: argparse.Namespace) -> TrainConfig:
    """The saved run's config with the options that may change on resume."""
    given = _given(args)
    resumable = {item.name for item in dataclasses.fields(TrainConfig) if item.metadata["resumable"]}
    fixed = sorted(set(given) - resumable)
    if fixed:
        allowed = ", ".join(option_flag(name) for name in sorted(resumable - _NOT_OPTIONS))
        raise UserError(f"--resume continues the saved run; {', '.join(map(option_flag, fixed))} cannot change (only {allowed} can)")
    config = load_run(args.out, {**given, "out": str(args.out)})
    return dataclasses.replace(config, command=f"{config.command}; resumed: {shlex.join(['aimedx', *args.argv])}")


def print_progress(report: EpochReport) -> None:
    """Redraw one line on a terminal; in a log, a line every tenth of an epoch."""
    remaining = (report.iterations - report.iteration) + (report.total_epochs - report.epoch) * report.iterations
    eta = remaining * report.seconds_per_iteration
    losses = " ".join(f"{k}={v:.3f}" for k, v in report.losses.items())
    line = (f"epoch {report.epoch}/{report.total_epochs} it {report.iteration}/{report.iterations} "
            f"{report.seconds_per_iteration:.2f}s/it eta {eta / 60:.0f} min {losses}")
    last = report.iteration == report.iterations
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line + ("\n" if last else ""))
    elif last or report.iteration % max(1, report.iterations // 10) == 0:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


def run_training(args: argparse.Namespace) -> int:
    if args.resume:
        config = resumed_config(args)
        print(f"resuming {args.out}", file=sys.stderr)
    else:
        config = config_from_args(args)
        if (Path(config.out) / CHECKPOINT_NAME).exists():
            raise UserError(f"{config.out} already holds a run; use --resume or another --out")
    try:
        bundle = train(config, resume=args.resume, progress=print_progress)
    except KeyboardInterrupt as stop:  # Ctrl-C, or a terminating signal (Terminated)
        if (Path(config.out) / CHECKPOINT_NAME).exists():
            print(f"\ninterrupted: the checkpoint of the last finished epoch is in {config.out}; "
                  f"continue with: aimedx train --out {config.out} --resume", file=sys.stderr)
        else:
            print("\ninterrupted before the first epoch finished: nothing to resume yet; "
                  "the same command starts the run again", file=sys.stderr)
        return stopped_status(stop)
    except OSError as error:  # writing the run folder: disk full, no permission, ...
        raise UserError(f"cannot write {error.filename or config.out}: {os_error_reason(error)}") from None
    if bundle is not None:
        print(f"wrote model bundle {bundle.path}")
    return 0


__all__ = ["add_train_arguments", "config_from_args", "resumed_config", "run_training"]
