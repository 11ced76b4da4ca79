"""`aimedx`: the GUI with no arguments, or convert / train / evaluate / bench / info, and the
DICOM network commands send / echo / listen / fetch (net_cli.py).

Every command calls the same engine functions the GUI calls. Errors a user can cause end in
one line `error: …` on stderr and exit status 1 (usage errors: argparse's message, exit status
2); anything else is a bug, reported as `error: internal error, details in LOG` with the
traceback in the log (error_log.py). Ctrl-C exits 130, a terminating signal 128 + its number.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

from aimedx_desktop import RESEARCH_USE_STATEMENT, __version__
from aimedx_desktop.engine.allocator import retain_freed_memory
from aimedx_desktop.error_log import log_internal_error, log_start_refusal, where_saved
from aimedx_desktop.termination import Terminated, on_termination, raise_terminated

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CANCELLED = 130


def stopped_status(stop: KeyboardInterrupt) -> int:
    """The exit status of a command stopped by Ctrl-C (130) or by terminating signal N (128 + N)."""
    return stop.exit_status if isinstance(stop, Terminated) else EXIT_CANCELLED


class ProgressLine:
    """A one-line progress bar with rate and ETA on stderr, redrawn in place on a terminal."""

    def __init__(self, label: str, stream=sys.stderr) -> None:
        self.label = label
        self.stream = stream
        self.started = time.perf_counter()
        self.interactive = stream.isatty()
        self._last_percent = -1

    def __call__(self, done: int, total: int, detail: str = "") -> None:
        percent = int(100 * done / max(1, total))
        if not self.interactive and percent == self._last_percent and done != total:
            return
        self._last_percent = percent
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (total - done) if done else 0.0
        bar = "#" * (percent // 5) + "." * (20 - percent // 5)
        text = f"{self.label} [{bar}] {done}/{total} {percent:3d}% eta {eta:5.0f}s {detail}".rstrip()
        if self.interactive:
            self.stream.write("\r" + text + ("\n" if done >= total else ""))
        elif done >= total or percent % 10 == 0:
            self.stream.write(text + "\n")
        self.stream.flush()


def finite_number(text: str) -> float:
    """An argparse type: a number, but not inf or nan (which float() accepts)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="model bundle folder (default: the bundled default model)")
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda[:N]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aimedx",
        description=f"AI-MEDX Desktop {__version__}: offline MR↔CT synthesis. {RESEARCH_USE_STATEMENT}",
    )
    parser.add_argument("--version", action="version", version=f"aimedx {__version__}")
    parser.add_argument(
        "--self-test", action="store_true", help="check this installation offscreen (model, sample, PNG/DICOM export) and exit"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    convert = commands.add_parser("convert", help="translate a scan into the other modality and save it")
    convert.add_argument("input", type=Path, help="PNG/JPEG file, DICOM file or folder, or NIfTI volume")
    convert.add_argument("--to", choices=["ct", "mr"], help="target modality (default: the other one)")
    convert.add_argument("--out", type=Path, required=True, help="output folder")
    convert.add_argument("--format", choices=["png", "dicom"], default="png")
    convert.add_argument("--input-modality", choices=["ct", "mr"], help="modality of the input when it does not say")
    convert.add_argument("--series", help="SeriesInstanceUID to read when a folder holds several series")
    convert.add_argument("--bits", type=int, choices=[8, 16], default=8, help="PNG: 8-bit windowed or 16-bit full range")
    convert.add_argument("--window", nargs=2, type=finite_number, metavar=("CENTER", "WIDTH"), help="display window for PNG and DICOM")
    convert.add_argument("--deidentify", action="store_true", help="DICOM: PS3.15 basic de-identification")
    convert.add_argument("--overwrite", action="store_true", help="replace existing output files")
    convert.add_argument("--uncertainty", action="store_true",
                         help="also write the model's uncertainty map as a series of its own (DICOM, or 16-bit PNG)")
    convert.add_argument("--send", metavar="AET@HOST:PORT", help="DICOM: then send the new series to this node")
    _add_model_option(convert)
    from aimedx_desktop.net_cli import add_network_commands, add_node_options

    add_node_options(convert)

    train = commands.add_parser("train", help="train a CycleGAN on unpaired CT and MR scans")
    from aimedx_desktop.training_cli import add_train_arguments

    add_train_arguments(train)

    evaluate = commands.add_parser("evaluate", help="score a model on paired CT/MR scans (MAE, PSNR, SSIM)")
    evaluate.add_argument("--ct", nargs="+", type=Path, required=True, help="CT files or folders")
    evaluate.add_argument("--mr", nargs="+", type=Path, required=True, help="MR files or folders, paired by file name")
    evaluate.add_argument("--include", nargs="*", default=[], help="only file names matching these patterns")
    evaluate.add_argument("--json", type=Path, help="also write the results as JSON here")
    evaluate.add_argument("--record", action="store_true", help="record the metrics in the --model's card")
    evaluate.add_argument("--calibrate", action="store_true",
                          help="fit the --model's uncertainty calibration on these pairs (patients it was not trained on)")
    _add_model_option(evaluate)

    bench = commands.add_parser("bench", help="ms per 256x256 slice: the default model vs the reference ResNet-9")
    bench.add_argument("--slices", type=int, default=16)
    bench.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    _add_model_option(bench)

    info = commands.add_parser("info", help="version, device and bundled models")
    info.add_argument("--model", type=Path, help="show this bundle's model card")
    add_network_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    retain_freed_memory()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (len(argv) == 1 and not argv[0].startswith("-") and argv[0] not in _COMMANDS):
        return _open_gui(argv)
    if argv == ["--self-test"]:
        # Before the parser, which imports the training modules (and torchvision): the self-test
        # needs only what conversion and the GUI need.
        from aimedx_desktop.selftest import main as self_test

        return self_test()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    if args.self_test:
        parser.error("--self-test takes no other arguments")
    with on_termination(raise_terminated):
        return _run(_COMMANDS[args.command], args)


def _run(handler, args: argparse.Namespace) -> int:
    """The command's exit status; a user's error is one line, a bug one line and a log entry."""
    from aimedx_desktop.engine.cancel import Cancelled
    from aimedx_desktop.engine.errors import USER_ERRORS, first_line

    try:
        return handler(args)
    except KeyboardInterrupt as stop:  # Ctrl-C, or a terminating signal (Terminated)
        print(f"\nstopped by {stop}" if isinstance(stop, Terminated) else "\ncancelled", file=sys.stderr)
        return stopped_status(stop)
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except USER_ERRORS as error:
        print(f"error: {first_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:  # a bug: the user gets one line, the log the traceback
        path = log_internal_error(error, f"aimedx {args.command}")
        print(f"error: internal error, {where_saved(path)}", file=sys.stderr)
        return EXIT_ERROR


def _open_gui(argv: list[str]) -> int:
    from aimedx_desktop.desktop_check import problem, signal_problem

    # Before Qt, which would abort with a misleading message; before the window, which a broken
    # PySide6 would crash with the user's work in it.
    refusal = problem() or signal_problem()
    if refusal is not None:
        print(refusal, file=sys.stderr)
        log_start_refusal(refusal)  # started from a desktop menu, nobody sees stderr
        return EXIT_ERROR
    try:
        from aimedx_desktop.ui.app import run_app
    except ImportError as error:
        print(f"error: the desktop interface is not available ({error})", file=sys.stderr)
        return EXIT_ERROR
    return run_app(argv)


def load_model(path: Path | None):
    """The bundle at `path`, or the bundled default model."""
    from aimedx_desktop.engine.bundle import default_bundle_path, load_bundle

    return load_bundle(path or default_bundle_path())


def _convert(args: argparse.Namespace) -> int:
    from aimedx_desktop.convert_cli import run_convert

    return run_convert(args)


def _evaluate(args: argparse.Namespace) -> int:
    from aimedx_desktop.engine.datasets import expand_inputs, paired_slices
    from aimedx_desktop.engine.bundle import save_bundle
    from aimedx_desktop.engine.evaluation import calibrate_uncertainty, check_calibratable, evaluate, record_in_card
    from aimedx_desktop.engine.errors import UserError
    from aimedx_desktop.engine.io.atomic import write_text
    from aimedx_desktop.engine.report import format_table

    if (args.record or args.calibrate) and args.model is None:
        raise UserError("--record and --calibrate change a model card: name the model with --model")
    if args.json is not None and args.json.is_dir():  # before the evaluation, not after it
        raise UserError(f"--json {args.json}: that is a folder; name a file to write")
    bundle = load_model(args.model)
    if args.calibrate:
        check_calibratable(bundle)  # before the evaluation, not after it
    ct_paths = expand_inputs(args.ct, include=args.include)
    mr_paths = expand_inputs(args.mr, include=args.include)
    pairs = paired_slices(ct_paths, mr_paths, bundle.contract)
    result = evaluate(bundle, pairs, device=args.device, progress=ProgressLine("evaluating"))
    result["model"] = {"name": bundle.name, "version": bundle.version, "path": str(bundle.path)}
    print(format_table(result))
    if args.json:
        write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    command = shlex.join(["aimedx", *args.argv])
    if args.calibrate:
        scales = calibrate_uncertainty(bundle, result, command, len(pairs))
        save_bundle(bundle, bundle.path)
        print("calibrated the uncertainty (scale " + ", ".join(f"{d} {s:.4g}" for d, s in scales.items()) + ")")
        if args.record:  # the card must hold the coverage of the calibration it holds, not of the one before
            result = evaluate(bundle, pairs, device=args.device, progress=ProgressLine("re-scoring"))
    if args.record:
        record_in_card(bundle, result, command)
        print(f"recorded the metrics in {bundle.path}/model_card.json")
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    from aimedx_desktop.engine.benchmark import run_benchmark

    bundle = load_model(args.model)
    print(run_benchmark(bundle, slices=args.slices, device=args.device, threads=args.threads))
    return EXIT_OK


def _info(args: argparse.Namespace) -> int:
    import torch

    from aimedx_desktop.engine.bundle import BundleError, bundled_models, load_bundle

    print(f"AI-MEDX Desktop {__version__}")
    print(RESEARCH_USE_STATEMENT)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU inference)"
    print(f"torch {torch.__version__}; GPU: {gpu}; CPU threads: {torch.get_num_threads()}")
    models = [args.model] if args.model else bundled_models()
    if not models:
        print("bundled models: none")
    for path in models:
        try:
            print(f"\nmodel {path}:\n{load_bundle(path).describe()}")
        except BundleError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_ERROR
    return EXIT_OK


def _train(args: argparse.Namespace) -> int:
    from aimedx_desktop.training_cli import run_training

    return run_training(args)


def _network(run_name: str):
    """The handler of a network command: net_cli's `run_name`, its errors as one line."""

    def handler(args: argparse.Namespace) -> int:
        from aimedx_desktop import net_cli

        return getattr(net_cli, run_name)(args)

    return handler


_COMMANDS = {
    "convert": _convert,
    "train": _train,
    "evaluate": _evaluate,
    "bench": _bench,
    "info": _info,
    "send": _network("run_send"),
    "echo": _network("run_echo"),
    "listen": _network("run_listen"),
    "fetch": _network("run_fetch"),
}
