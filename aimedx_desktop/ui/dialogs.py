"""Every modal question the window asks, behind one object that tests replace.

The window never opens a QMessageBox or QFileDialog itself: it calls these methods, so a test
can answer them without a modal event loop (and never hang on one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from aimedx_desktop import RESEARCH_USE_STATEMENT
from aimedx_desktop.ui.jobs import ExportRequest

NETWORK_STATEMENT = (
    "The app opens no network connection unless you configure a DICOM node (File → DICOM nodes…) "
    "and start an action that uses it: send, verify, search or retrieve."
)
FIRST_START_NOTICE = (
    "AI-MEDX Desktop runs fully offline: your scans never leave this computer and the app "
    f"sends no telemetry. {NETWORK_STATEMENT}\n\n"
    "It is for research and teaching use only. Synthetic images are produced by a neural "
    "network; they may look plausible and still be wrong. They are not for diagnosis."
)
ABOUT_TEXT = (
    "Offline MR↔CT synthesis with a CycleGAN.\n\n"
    "Privacy: everything runs on this computer. No telemetry, no uploads. "
    f"{NETWORK_STATEMENT}\n\n{RESEARCH_USE_STATEMENT}\n\n"
    "Bundled samples: a head CT from the dcm_qa_ct validation set (BSD 2-Clause) and a T2 brain MR from "
    "VolumeRenderingData (MIT); their licence texts lie beside them in the samples folder. The models' "
    "licences and training data are in their model cards (Model → Show model card)."
)
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
"""DICOM files may have any name; these are the usual suffixes ("All files" offers the rest)."""


def _reader_suffixes() -> dict[str, tuple[str, ...]]:
    """The suffixes the readers open, by kind. engine.io loads pydicom and nibabel (half a
    second), so it is imported when first asked, not while the window starts."""
    from aimedx_desktop.engine.io.nifti import NIFTI_SUFFIXES
    from aimedx_desktop.engine.io.raster import RASTER_SUFFIXES

    return {"DICOM": DICOM_SUFFIXES, "NIfTI": NIFTI_SUFFIXES, "Images": RASTER_SUFFIXES}


def scan_suffixes() -> tuple[str, ...]:
    return tuple(s for suffixes in _reader_suffixes().values() for s in suffixes)


def _patterns(suffixes: tuple[str, ...]) -> str:
    """Both cases: name filters are case-sensitive on some platforms."""
    return " ".join(f"*{s} *{s.upper()}" for s in suffixes)


def file_filter() -> str:
    """The open dialog's filter: every scan, each kind, and all files (DICOM may lack a suffix)."""
    kinds = [f"{kind} ({_patterns(suffixes)})" for kind, suffixes in _reader_suffixes().items()]
    return ";;".join([f"Scans ({_patterns(scan_suffixes())})", *kinds, "All files, e.g. DICOM without a suffix (*)"])


def export_folder_problem(text: str) -> str | None:
    """Why `text` cannot be the export folder (empty, relative), or None when it can."""
    if not text.strip():
        return "Choose the folder to export to."
    if not Path(text.strip()).expanduser().is_absolute():
        return f"Give the full path of the folder, not {text.strip()!r}."
    return None


class Dialogs:
    """The real, modal dialogs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.parent = parent

    def error(self, title: str, text: str) -> None:
        QMessageBox.critical(self.parent, title, text)

    def info(self, title: str, text: str) -> None:
        QMessageBox.information(self.parent, title, text)

    def text(self, title: str, text: str) -> None:
        """Long or preformatted text (model card, shortcuts) in a read-only box."""
        dialog = QDialog(self.parent)
        dialog.setWindowTitle(title)
        box = QPlainTextEdit(text)
        box.setReadOnly(True)
        box.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dialog.reject)
        layout = QVBoxLayout(dialog)
        layout.addWidget(box)
        layout.addWidget(buttons)
        dialog.resize(640, 480)
        dialog.exec()

    def first_start_notice(self) -> bool:
        box = QMessageBox(self.parent)
        box.setWindowTitle("Welcome to AI-MEDX Desktop")
        box.setIcon(QMessageBox.Icon.Information)
        box.setText(FIRST_START_NOTICE)
        accept = box.addButton("I understand", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
        box.exec()
        return box.clickedButton() is accept

    def choose_series(self, series: list[Any]) -> str | None:
        """The SeriesInstanceUID the user picks, or None."""
        labels = [f"{number}. {_series_label(s)}" for number, s in enumerate(series, 1)]  # unique: repeats look alike
        choice, ok = QInputDialog.getItem(
            self.parent, "Choose a series", "This folder holds several series:", labels, 0, False
        )
        return series[labels.index(choice)].uid if ok else None

    def confirm(self, title: str, text: str) -> bool:
        """A yes/no question whose default answer is No (nothing is lost by a stray Enter)."""
        answer = QMessageBox.question(
            self.parent, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def confirm_overwrite(self, paths: list[Path]) -> bool:
        shown = "\n".join(str(p) for p in paths[:5]) + ("\n…" if len(paths) > 5 else "")
        answer = QMessageBox.question(
            self.parent, "Replace files?", f"{len(paths)} file(s) already exist and would be replaced:\n{shown}"
        )
        return answer == QMessageBox.StandardButton.Yes

    def open_file(self, start: str) -> Path | None:
        name, _ = QFileDialog.getOpenFileName(self.parent, "Open scan", start, file_filter())
        return Path(name) if name else None

    def open_folder(self, start: str, title: str = "Open DICOM folder") -> Path | None:
        name = QFileDialog.getExistingDirectory(self.parent, title, start)
        return Path(name) if name else None

    def export_options(
        self, fmt: str, window: tuple[float, float] | None, start: str, has_uncertainty: bool = False
    ) -> ExportRequest | None:
        dialog = _ExportDialog(fmt, window, start, self.parent, has_uncertainty)
        return dialog.request() if dialog.exec() == QDialog.DialogCode.Accepted else None


def _series_label(series: Any) -> str:
    count = getattr(series, "n_slices", "?")
    description = getattr(series, "description", "") or "(no description)"
    return f"{getattr(series, 'modality', '?')} — {description} — {count} slice(s)"


class _ExportDialog(QDialog):
    """Folder, PNG bit depth or DICOM de-identification, and the uncertainty map when there is one."""

    def __init__(
        self, fmt: str, window: tuple[float, float] | None, start: str, parent: QWidget | None, has_uncertainty: bool = False
    ) -> None:
        super().__init__(parent)
        self.fmt = fmt
        self.window = window
        self.setWindowTitle(f"Export synthetic as {fmt.upper()}")
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.folder = QLineEdit(start)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(QLabel("Folder:"))
        row.addWidget(self.folder)
        row.addWidget(browse)
        layout.addLayout(row)
        self.as_displayed = QRadioButton("8-bit, as displayed (current window/level)")
        self.full_range = QRadioButton("16-bit, full range")
        self.deidentify = QCheckBox("De-identify (remove patient identity)")
        if fmt == "png":
            group = QButtonGroup(self)
            for button in (self.as_displayed, self.full_range):
                group.addButton(button)
                layout.addWidget(button)
            self.as_displayed.setChecked(True)
        else:
            layout.addWidget(self.deidentify)
        self.uncertainty = QCheckBox(
            "Also export the uncertainty map" + (" (16-bit PNG)" if fmt == "png" else " (a second series)")
        )
        self.has_uncertainty = has_uncertainty
        self.uncertainty.setChecked(has_uncertainty)
        self.uncertainty.setVisible(has_uncertainty)
        layout.addWidget(self.uncertainty)
        layout.addWidget(QLabel("File names and DICOM headers mark the images as synthetic."))
        self.problem = QLabel("")
        self.problem.setStyleSheet("color: #b00000;")
        self.problem.setVisible(False)
        layout.addWidget(self.problem)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "Export folder", self.folder.text())
        if name:
            self.folder.setText(name)

    def accept(self) -> None:
        """Stay open, saying why, while the folder is empty or relative (not the working directory)."""
        problem = export_folder_problem(self.folder.text())
        self.problem.setText(problem or "")
        self.problem.setVisible(problem is not None)
        if problem is None:
            super().accept()

    def request(self) -> ExportRequest:
        eight_bit = self.fmt != "png" or self.as_displayed.isChecked()
        return ExportRequest(
            fmt=self.fmt,
            out_dir=Path(self.folder.text().strip()).expanduser(),
            bits=8 if eight_bit else 16,
            window=self.window if eight_bit else None,
            deidentify=self.deidentify.isChecked(),
            uncertainty=self.has_uncertainty and self.uncertainty.isChecked(),
        )
