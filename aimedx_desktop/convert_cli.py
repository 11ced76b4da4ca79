"""The `aimedx convert` command: read, check the output, translate, export (and send).

Everything that can be checked is checked before the translation, which takes seconds to
minutes: the node of --send, the model, the input and its modality, the output folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from aimedx_desktop.cli import EXIT_OK, ProgressLine, load_model
from aimedx_desktop.engine.errors import UserError
from aimedx_desktop.engine.scan import Modality, Scan


def run_convert(args: argparse.Namespace) -> int:
    from aimedx_desktop.engine.intensity import prepare_source
    from aimedx_desktop.engine.io import read_scan
    from aimedx_desktop.engine.io.export import check_deidentifiable, export_scan
    from aimedx_desktop.engine.io.output import check_output
    from aimedx_desktop.engine.translator import Translator

    if args.window is not None and not args.window[1] > 0:
        raise UserError(f"--window: the width must be positive, not {args.window[1]:g}")
    node = _send_target(args)
    bundle = load_model(args.model)
    translator = Translator(bundle, device=args.device)
    scan = read_scan(args.input, modality=args.input_modality, series_uid=args.series)
    target = Modality.parse(args.to) if args.to else scan.modality.other
    scan = prepare_source(source_as_target_allows(scan, target, args), bundle.contract)
    for warning in scan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    check_deidentifiable(scan, args.format, args.deidentify)  # before the translation, which takes minutes
    if args.uncertainty and not bundle.has_uncertainty:
        raise UserError(f"--uncertainty: the model {bundle.name} {bundle.version} gives no uncertainty map")
    target_like = dataclasses.replace(scan, modality=target)
    check_output(target_like, args.out, args.format, args.overwrite, args.bits, args.uncertainty)
    print(
        f"{scan.modality.value} → {target.value}: {scan.n_slices} slice(s) of {args.input} "
        f"with {bundle.name} {bundle.version} on {translator.device}",
        file=sys.stderr,
    )
    synthetic = translator.translate(scan, target, progress=ProgressLine("converting"))
    for warning in synthetic.warnings[len(scan.warnings):]:  # what the translation itself adds
        print(f"warning: {warning}", file=sys.stderr)
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

    return send_and_report(collect_files(written), node, args.calling_aet, args.timeout)


def source_as_target_allows(scan: Scan, target: Modality, args: argparse.Namespace) -> Scan:
    """`scan` as the source of a translation to `target`.

    A modality the reader only assumed (no header, nothing in the name) gives way to --to; one
    guessed from the name, or stated by the file or --input-modality, that is already `target`
    stops here with one line.
    """
    from aimedx_desktop.engine.io import ASSUMED_MR, GUESSED_FROM_NAME

    if scan.modality is not target:
        return scan
    name = args.input.name or str(args.input)
    notes = scan.provenance.notes
    if args.input_modality is None and ASSUMED_MR in notes:
        note = f"input modality not stated: taken as {target.other.value} because --to {target.value.lower()}"
        return dataclasses.replace(scan, modality=target.other, warnings=scan.warnings + (note,))
    if args.input_modality is None and GUESSED_FROM_NAME in notes:
        raise UserError(
            f"{name}: its name suggests {scan.modality.value}, but --to {target.value.lower()} asks for "
            f"{target.value} output; say what the input is with --input-modality ct or mr"
        )
    said = f"--input-modality {args.input_modality}" if args.input_modality else "the file"
    raise UserError(f"{name} is {scan.modality.value} ({said} says so): --to {target.value.lower()} has nothing to translate")


def _send_target(args: argparse.Namespace):
    """The node of `convert --send`, checked before the slow conversion; None without --send."""
    if args.send is None:
        return None
    if args.format != "dicom":
        raise UserError("--send sends a DICOM series: add --format dicom")
    from aimedx_desktop.engine.net.nodes import check_aet, parse_node

    check_aet(args.calling_aet, "calling AE title")
    return parse_node(args.send)
