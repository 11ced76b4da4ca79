"""The `aimedx train` command: options ↔ TrainConfig, a progress line, resume and Ctrl-C."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from aimedx_desktop.engine.training import EpochReport, TrainConfig, load_run, train

_DEFAULTS = TrainConfig(ct=[], mr=[], out="")
_RESUMABLE_OVERRIDES = ("epochs", "epochs_decay", "device", "val_ct", "val_mr", "val_include")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    d = _DEFAULTS
    parser.add_argument("--ct", nargs="+", help="CT DICOM folders, NIfTI volumes or PNG/JPEG slices (files or folders)")
    parser.add_argument("--mr", nargs="+", help="MR inputs, as for --ct; unpaired with the CT")
    parser.add_argument("--out", required=True, help="run folder (checkpoint, losses.csv, samples/, bundle/)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--exclude", nargs="*", default=[], help="file-name patterns to hold out, e.g. '16???.png'")
    parser.add_argument("--name", default=d.name, help="model name in the bundle")
    parser.add_argument("--version", dest="model_version", default=d.version, help="model version in the bundle")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="epochs at the initial learning rate")
    parser.add_argument("--epochs-decay", type=int, default=d.epochs_decay, help="epochs of linear decay to 0")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--crop-size", type=int, default=d.crop_size, help="random crop side (≤ image size)")
    parser.add_argument("--image-size", type=int, default=d.image_size, help="model input side")
    parser.add_argument("--ngf", type=int, default=d.ngf, help="generator filters")
    parser.add_argument("--n-blocks", type=int, default=d.n_blocks, help="generator residual blocks")
    parser.add_argument("--ndf", type=int, default=d.ndf, help="discriminator filters")
    parser.add_argument("--lambda-cycle", type=float, default=d.lambda_cycle)
    parser.add_argument("--lambda-identity", type=float, default=d.lambda_identity)
    parser.add_argument("--pool-size", type=int, default=d.pool_size)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--beta1", type=float, default=d.beta1)
    parser.add_argument("--beta2", type=float, default=d.beta2)
    parser.add_argument("--ct-window", nargs=2, type=float, default=[d.ct_lo_hu, d.ct_hi_hu], metavar=("LO_HU", "HI_HU"),
                        help="CT HU window mapped to [-1, 1]; 8-bit CT images are taken to be exports of it")
    parser.add_argument("--mr-percentiles", nargs=2, type=float, default=[d.mr_p_lo, d.mr_p_hi], metavar=("LO", "HI"))
    parser.add_argument("--min-foreground", type=float, default=d.min_foreground, help="skip slices with less foreground")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=d.precision, help="CPU autocast (CUDA always uses AMP)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--device", default=d.device)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--licence", default=d.licence, help="licence statement for the model card")
    parser.add_argument("--init-from", default="", help="start from the four networks of this run folder's checkpoint (fine-tuning)")
    parser.add_argument("--val-ct", nargs="+", default=[], help="paired validation CT, scored at the end into the card")
    parser.add_argument("--val-mr", nargs="+", default=[], help="paired validation MR (same file names as --val-ct)")
    parser.add_argument("--val-include", nargs="*", default=[], help="validation file-name patterns, e.g. '16???.png'")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if not args.ct or not args.mr:
        raise ValueError("a new run needs --ct and --mr inputs")
    return TrainConfig(
        ct=list(args.ct), mr=list(args.mr), out=str(args.out), exclude=list(args.exclude), name=args.name,
        version=args.model_version, epochs=args.epochs, epochs_decay=args.epochs_decay, batch_size=args.batch_size,
        crop_size=args.crop_size, image_size=args.image_size, ngf=args.ngf, n_blocks=args.n_blocks, ndf=args.ndf,
        lambda_cycle=args.lambda_cycle, lambda_identity=args.lambda_identity, pool_size=args.pool_size, lr=args.lr,
        beta1=args.beta1, beta2=args.beta2, ct_lo_hu=args.ct_window[0], ct_hi_hu=args.ct_window[1],
        mr_p_lo=args.mr_percentiles[0], mr_p_hi=args.mr_percentiles[1], min_foreground=args.min_foreground,
        precision=args.precision, channels_last=args.channels_last, device=args.device, seed=args.seed,
        licence=args.licence, init_from=args.init_from, val_ct=list(args.val_ct), val_mr=list(args.val_mr), val_include=list(args.val_include),
        command=shlex.join(["aimedx", *args.argv]),
    )


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


def _options_given(args: argparse.Namespace) -> set[str]:
    """The train options whose value differs from their default."""
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    defaults = vars(parser.parse_args(["--out", str(args.out)]))
    return {name for name, default in defaults.items() if getattr(args, name) != default}


def run_training(args: argparse.Namespace) -> int:
    if args.resume:
        given = _options_given(args)
        fixed = sorted(given - set(_RESUMABLE_OVERRIDES) - {"out", "resume", "argv"})
        if fixed:
            names = ", ".join("--" + name.replace("_", "-") for name in fixed)
            raise ValueError(f"--resume continues the saved run; {names} cannot change (only --epochs, "
                             f"--epochs-decay, --device and --val-* can)")
        overrides = {name: getattr(args, name) for name in given & set(_RESUMABLE_OVERRIDES)}
        config = load_run(args.out, {**overrides, "out": str(args.out)})
        config = dataclasses.replace(config, command=f"{config.command}; resumed: {shlex.join(['aimedx', *args.argv])}")
        print(f"resuming {args.out}", file=sys.stderr)
    else:
        config = config_from_args(args)
        if (Path(config.out) / "checkpoint.pt").exists():
            raise ValueError(f"{config.out} already holds a run; use --resume or another --out")
    try:
        bundle = train(config, resume=args.resume, progress=print_progress)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the checkpoint of the last finished epoch is in {config.out}; "
              f"continue with: aimedx train --out {config.out} --resume", file=sys.stderr)
        return 130
    if bundle is not None:
        print(f"wrote model bundle {bundle.path}")
    return 0


__all__ = ["add_train_arguments", "config_from_args", "run_training"]
