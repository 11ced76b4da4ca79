"""`aimedx`: the GUI with no arguments, or convert / train / evaluate / bench / info, and the
DICOM network commands send / echo / listen / fetch (net_cli.py).

Every command calls the same engine functions the GUI calls. Errors a user can cause end in
one line `error: …` on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aimedx_desktop import RESEARCH_USE_STATEMENT, __version__

if TYPE_CHECKING:
    from aimedx_desktop.engine.scan import Scan

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CANCELLED = 130


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
    convert.add_argument("--window", nargs=2, type=float, metavar=("CENTER", "WIDTH"), help="display window for PNG and DICOM")
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
    handler = _COMMANDS[args.command]
    from aimedx_desktop.engine.cancel import Cancelled

    try:
        return handler(args)
    except KeyboardInterrupt:
        print("\ncancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


def _open_gui(argv: list[str]) -> int:
    try:
        from aimedx_desktop.ui.app import run_app
    except ImportError as error:
        print(f"error: the desktop interface is not available ({error})", file=sys.stderr)
        return EXIT_ERROR
    return run_app(argv)


def _load_model(path: Path | None):
    from aimedx_desktop.engine.bundle import default_bundle_path, load_bundle

    return load_bundle(path or default_bundle_path())


def _convert(args: argparse.Namespace) -> int:
    from aimedx_desktop.engine.intensity import prepare_source
    from aimedx_desktop.engine.io import read_scan
    from aimedx_desktop.engine.io.export import export_scan
    from aimedx_desktop.engine.scan import Modality
    from aimedx_desktop.engine.translator import Translator

    with _as_user_errors():
        node = _send_target(args)
        bundle = _load_model(args.model)
        scan = read_scan(args.input, modality=args.input_modality, series_uid=args.series)
        target = Modality.parse(args.to) if args.to else scan.modality.other
        if scan.modality is target and not args.input_modality and scan.provenance.source_format != "dicom":
            # PNG/JPEG/NIfTI carry no modality and the reader only guessed it: --to decides.
            note = f"input modality not stated: taken as {target.other.value} because --to {target.value.lower()}"
            scan = dataclasses.replace(scan, modality=target.other, warnings=scan.warnings + (note,))
        scan = prepare_source(scan, bundle.contract)
        for warning in scan.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if args.uncertainty and not bundle.has_uncertainty:
            raise UserError(f"--uncertainty: the model {bundle.name} {bundle.version} gives no uncertainty map")
        _refuse_existing_outputs(dataclasses.replace(scan, modality=target), args)
        translator = Translator(bundle, device=args.device)
        print(
            f"{scan.modality.value} → {target.value}: {scan.n_slices} slice(s) of {args.input} "
            f"with {bundle.name} {bundle.version} on {translator.device}",
            file=sys.stderr,
        )
        synthetic = translator.translate(scan, target, progress=ProgressLine("converting"))
        written = export_scan(
            synthetic,
            args.out,
            fmt=args.format,
            window=tuple(args.window) if args.window else None,
            bits=args.bits,
            deidentify=args.deidentify,
            overwrite=args.overwrite,
            progress=ProgressLine("writing   "),
            uncertainty=args.uncertainty,
        )
    print(f"wrote {len(written)} {args.format.upper()} file(s) to {args.out}")
    if node is None:
        return EXIT_OK
    from aimedx_desktop.engine.net.send import collect_files
    from aimedx_desktop.net_cli import send_and_report

    with _as_user_errors():
        return send_and_report(collect_files(written), node, args.calling_aet, args.timeout)


def _send_target(args: argparse.Namespace):
    """The node of `convert --send`, checked before the slow conversion; None without --send."""
    if args.send is None:
        return None
    if args.format != "dicom":
        raise UserError("--send sends a DICOM series: add --format dicom")
    from aimedx_desktop.engine.net.nodes import parse_node

    return parse_node(args.send)


def _refuse_existing_outputs(target_like: "Scan", args: argparse.Namespace) -> None:
    """Fail before the slow translation, not after it, when outputs exist and --overwrite is absent."""
    from aimedx_desktop.engine.io.export import existing_targets

    existing = existing_targets(target_like, args.out, args.format, args.uncertainty)
    if existing and not args.overwrite:
        raise UserError(f"{len(existing)} output file(s) exist already, e.g. {existing[0]}; pass --overwrite to replace them")


def _evaluate(args: argparse.Namespace) -> int:
    from aimedx_desktop.engine.datasets import expand_inputs, paired_slices
    from aimedx_desktop.engine.bundle import save_bundle
    from aimedx_desktop.engine.evaluation import calibrate_uncertainty, evaluate, record_in_card
    from aimedx_desktop.engine.report import format_table

    if (args.record or args.calibrate) and args.model is None:
        raise UserError("--record and --calibrate change a model card: name the model with --model")
    with _as_user_errors():
        bundle = _load_model(args.model)
        ct_paths = expand_inputs(args.ct, include=args.include)
        mr_paths = expand_inputs(args.mr, include=args.include)
        pairs = paired_slices(ct_paths, mr_paths, bundle.contract)
        result = evaluate(bundle, pairs, device=args.device, progress=ProgressLine("evaluating"))
        result["model"] = {"name": bundle.name, "version": bundle.version, "path": str(bundle.path)}
        print(format_table(result))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
            print(f"wrote {args.json}")
        command = shlex.join(["aimedx", *args.argv])
        if args.calibrate:
            scales = calibrate_uncertainty(bundle, result, f"{len(pairs)} slice pairs: {command}")
            save_bundle(bundle, bundle.path)
            print("calibrated the uncertainty (scale " + ", ".join(f"{d} {s:.4g}" for d, s in scales.items()) + ")")
        if args.record:
            record_in_card(bundle, result, command)
            print(f"recorded the metrics in {bundle.path}/model_card.json")
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    from aimedx_desktop.engine.benchmark import run_benchmark

    with _as_user_errors():
        bundle = _load_model(args.model)
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

    with _as_user_errors():
        return run_training(args)


class _as_user_errors:
    """Turn the engine's user-facing exceptions into UserError (one line, no traceback)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        from aimedx_desktop.engine.errors import USER_ERRORS

        if error is not None and isinstance(error, USER_ERRORS):
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(message) from None
        return False


def _network(run_name: str):
    """The handler of a network command: net_cli's `run_name`, its errors as one line."""

    def handler(args: argparse.Namespace) -> int:
        from aimedx_desktop import net_cli

        with _as_user_errors():
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
