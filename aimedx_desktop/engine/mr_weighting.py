"""Which weighting an MR scan carries, as far as its DICOM header or its file name tells.

The bundled models learn from T2-weighted brain slices; a T1-weighted or FLAIR input gives a
synthetic CT tens of HU away from the T2 one of the same head, with nothing in the image to say
so. This names the weighting when the evidence is clear, and says nothing when it is not.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aimedx_desktop.engine.scan import Modality, Scan

T1, FLAIR, PD = "T1-weighted", "FLAIR", "proton-density-weighted"
NAME_WEIGHTINGS = {
    "t1": T1, "t1w": T1, "mprage": T1, "spgr": T1, "flair": FLAIR, "pd": PD, "pdw": PD,
    "dwi": "diffusion-weighted", "adc": "an ADC map", "swi": "susceptibility-weighted",
}
"""File-name words (between separators, lower case) and what they say the scan is."""
T2_WORDS = frozenset({"t2", "t2w"})


def weighting_note(scan: Scan) -> str | None:
    """A warning when an MR scan looks other than T2-weighted, saying why; None otherwise."""
    if scan.modality is not Modality.MR or scan.provenance.synthetic:
        return None
    found = _from_header(scan.dicom_headers[0]) if scan.dicom_headers else None
    found = found or _from_names(scan.provenance.source_paths)
    if found is None:
        return None
    weighting, evidence = found
    return (f"this MR seems to be {weighting} ({evidence}); the models learn from T2-weighted slices "
            "(see the model card's MR sequences), so the synthetic image may be less faithful")


def _from_header(header: Any) -> tuple[str, str] | None:
    """(weighting, evidence) from echo, repetition and inversion times, in ms."""
    if header is None:
        return None
    echo, repetition, inversion = (_ms(header.get(keyword)) for keyword in ("EchoTime", "RepetitionTime", "InversionTime"))
    if inversion is not None and echo is not None:
        if inversion >= 1500 and echo >= 60:
            return FLAIR, f"TI {inversion:g} ms, TE {echo:g} ms"
        if inversion < 1500 and echo < 30:  # inversion-prepared T1: MPRAGE, T1-FLAIR
            return T1, f"TI {inversion:g} ms, TE {echo:g} ms"
        return None
    if echo is None or repetition is None:
        return None
    if repetition < 1000 and echo < 15:  # spin echo or spoiled gradient echo; a T2* gradient echo has a longer TE
        return T1, f"TR {repetition:g} ms, TE {echo:g} ms"
    if repetition >= 1500 and 10 <= echo < 40:
        return PD, f"TR {repetition:g} ms, TE {echo:g} ms"
    return None


def _from_names(paths: tuple[str, ...]) -> tuple[str, str] | None:
    """From the first file's name: its words, without BIDS key-value parts ('ses-t1' is a session);
    a name that also says T2 says nothing."""
    for path in paths[:1]:
        parts = [part for part in re.split(r"[_.\s]+", Path(path).name.lower()) if "-" not in part]
        words = [word for part in parts for word in re.split(r"[^a-z0-9]+", part)]
        if T2_WORDS & set(words):
            return None
        for word in words:
            if word in NAME_WEIGHTINGS:
                return NAME_WEIGHTINGS[word], f"its file name says {word!r}"
    return None


def _ms(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
