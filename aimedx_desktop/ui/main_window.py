"""The main window: menus, toolbar, the source and synthetic panes, status bar and progress.

Long work goes to `Worker`; the window only starts jobs and applies their outcome. A job's
outcome is applied when the worker has finished, so a cancelled or failed job leaves the window
as it was (the partially filled synthetic pane is put back to what it showed before).

Opening can be cancelled although the readers cannot be interrupted: the read runs to its end
in the background and its result is dropped (its CancelToken is checked when it ends); until then the window stays busy.
The window does not close while a job's thread runs: it asks the job to stop and closes itself
once the thread has finished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QLabel,
    QMainWindow,
    QProgressBar,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from aimedx_desktop import __version__
from aimedx_desktop.engine.scan import UNCERTAINTY, Modality, Scan
from aimedx_desktop.ui import jobs
from aimedx_desktop.ui.dialogs import ABOUT_TEXT, Dialogs
from aimedx_desktop.ui.network import NetworkUi
from aimedx_desktop.ui.settings import AppSettings
from aimedx_desktop.ui.viewer import SliceViewer
from aimedx_desktop.ui.window_level import CT_PRESETS, Preset, preset_for
from aimedx_desktop.engine.cancel import CancelToken
from aimedx_desktop.ui.worker import Worker

NO_PRESET = "Preset…"
CUSTOM = "Custom"
"""The preset picker's first entry: nothing shown yet, or a window that is no preset and not Auto."""
NO_MODEL_TEXT = "No model installed: conversion is unavailable until one is (Model → Import bundle…)"
DIRECTIONS: tuple[tuple[str, Modality | None], ...] = (("Auto", None), ("CT → MR", Modality.CT), ("MR → CT", Modality.MR))
NAVIGATION_KEYS: tuple[tuple[str, tuple[str, ...], Callable[[int, int], int]], ...] = (
    ("Next slice", ("PgDown", "Down", "Right"), lambda index, count: index + 1),
    ("Previous slice", ("PgUp", "Up", "Left"), lambda index, count: index - 1),
    ("First slice", ("Home",), lambda index, count: 0),
    ("Last slice", ("End",), lambda index, count: count - 1),
)
"""(menu text, keys, new slice index from (index, count)); set_index clamps."""
CLOSE_WAIT_MS = 500
"""How long closing blocks for a running job to stop before it defers the close instead."""
NOTES_STYLE = "color: #5a4500; background: #fff4c2; padding: 2px 6px;"
MOUSE_HELP = (
    "Left drag: window/level (right = wider, up = higher centre)\n"
    "Middle drag: pan    Right drag or Ctrl+wheel: zoom    Wheel: slice"
)


@dataclass
class _Job:
    """What to do when the running job ends."""

    on_result: Callable[[Any], None]
    error_title: str
    subject: str
    on_abort: Callable[[], None] = lambda: None
    cancelled_text: Callable[[], str] = lambda: "Cancelled"
    activity: str = ""
    """What quitting would cancel ("the conversion", ...), or "" when cancelling loses nothing."""
    lands_outside: bool = False
    """Its work lands outside the app (files, a PACS): once it returned it happened (Worker.start)."""


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings, dialogs: Dialogs | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.dialogs = dialogs or Dialogs(self)
        self.setWindowTitle(f"AI-MEDX Desktop {__version__}")
        self.setAcceptDrops(True)
        self.source_scan: Scan | None = None
        self.synthetic_scan: Scan | None = None
        self.models: list[jobs.ModelEntry] = []
        self.engine_ready = False
        self.engine_problem: str | None = None
        """Why the conversion engine (torch, the models) did not start; the app still views scans."""
        self.device_text = "…"
        self.translators = jobs.TranslatorCache()
        self.worker = Worker(self)
        self._startup = Worker(self)
        self._job: _Job | None = None
        self._outcome: tuple[str, Any] = ("none", None)
        self._close_pending = False
        self._close_confirmed = False
        self.synthetic_unsaved = False
        """A synthetic image is shown that has been neither exported nor sent: Quit and Open ask first."""

        self.source_viewer = SliceViewer("Source")
        self.synthetic_viewer = SliceViewer("Synthetic", synthetic=True)
        self.viewers = (self.source_viewer, self.synthetic_viewer)
        self._active = self.source_viewer
        self._cursor: tuple[SliceViewer, float, float] | None = None  # where the mouse rests: (pane, row, col)
        self._window_pane = self.source_viewer  # whose window the toolbar's preset picker shows
        splitter = QSplitter(Qt.Orientation.Horizontal)
        for viewer in self.viewers:
            splitter.addWidget(viewer)
            viewer.sliceChanged.connect(lambda index, v=viewer: self._slice_changed(v, index))
            viewer.cursorMoved.connect(lambda row, col, v=viewer: self._cursor_moved(v, row, col))
            viewer.windowChanged.connect(lambda _window, v=viewer: self._window_changed(v))
        self.notes_label = QLabel("")
        self.notes_label.setWordWrap(True)
        self.notes_label.setStyleSheet(NOTES_STYLE)
        self.notes_label.setVisible(False)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.notes_label)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)

        self._build_status_bar()
        self._build_actions()
        self.net = NetworkUi(self)
        self._build_menus()
        self._build_toolbar()
        self._connect_worker()
        self.link_action.setChecked(settings.linked)
        self.overlay_action.setChecked(settings.overlays)
        self._apply_link(settings.linked)
        self._apply_overlays(settings.overlays)
        self._update_state()
        geometry = settings.store.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 760)

    # --- construction -------------------------------------------------------------------
    def _action(self, text: str, slot: Callable[[], Any], shortcut: str | QKeySequence | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.open_action = self._action("&Open file…", self.ask_open_file, QKeySequence.StandardKey.Open)
        self.open_folder_action = self._action("Open DICOM &folder…", self.ask_open_folder, "Ctrl+Shift+O")
        self.export_png_action = self._action("Export synthetic as &PNG…", lambda: self.export("png"), "Ctrl+E")
        self.export_dicom_action = self._action("Export synthetic as &DICOM…", lambda: self.export("dicom"), "Ctrl+Shift+E")
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.convert_action = self._action("Convert", self.convert, "Ctrl+Return")
        self.cancel_action = self._action("Cancel", self.cancel, "Escape")
        self.preset_actions = [
            self._action(f"{p.name}  {p.window.centre:g}/{p.window.width:g}", lambda p=p: self.apply_preset(p), p.key)
            for p in CT_PRESETS
        ]
        self.reset_window_action = self._action("Reset window (auto)", self.reset_windows, "0")
        self.reset_view_action = self._action("Reset view", self.reset_view, "R")
        self.link_action = self._action("Link panes", lambda: self._apply_link(self.link_action.isChecked()), "L")
        self.link_action.setCheckable(True)
        self.overlay_action = self._action("Show overlays", lambda: self._apply_overlays(self.overlay_action.isChecked()), "O")
        self.overlay_action.setCheckable(True)
        self.uncertainty_action = self._action(
            "Uncertainty overlay", lambda: self.synthetic_viewer.set_map_shown(self.uncertainty_action.isChecked()), "U"
        )
        self.uncertainty_action.setCheckable(True)
        self.uncertainty_action.setToolTip("Colour where the model is unsure (the synthetic pane; display only)")
        self.navigation_actions = []
        for text, keys, target in NAVIGATION_KEYS:
            action = self._action(text, lambda t=target: self.navigate(t))
            action.setShortcuts([QKeySequence(k) for k in keys])
            self.navigation_actions.append(action)
        self.import_model_action = self._action("Import bundle…", self.ask_import_model)
        self.model_card_action = self._action("Show model card", self.show_model_card)
        self.shortcuts_action = self._action("Keyboard shortcuts", self.show_shortcuts, QKeySequence.StandardKey.HelpContents)
        self.about_action = self._action("About AI-MEDX Desktop", self.show_about)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addActions([self.open_action, self.open_folder_action])
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addActions([self.export_png_action, self.export_dicom_action])
        file_menu.addSeparator()
        file_menu.addActions([self.net.send_action, self.net.nodes_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        view = bar.addMenu("&View")
        presets = view.addMenu("Window/level presets (CT)")
        presets.addActions(self.preset_actions)
        view.addAction(self.reset_window_action)
        view.addAction(self.reset_view_action)
        view.addSeparator()
        view.addActions([self.link_action, self.overlay_action, self.uncertainty_action, self.net.inbox_action])
        slices = view.addMenu("Slices")
        slices.addActions(self.navigation_actions)

        self.model_menu = bar.addMenu("&Model")
        self.model_group = QActionGroup(self)
        self.model_group.setExclusive(True)
        self._fill_model_menu()

        help_menu = bar.addMenu("&Help")
        help_menu.addActions([self.shortcuts_action, self.about_action])

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Main")
        toolbar.setObjectName("main_toolbar")
        toolbar.setMovable(False)
        self.addToolBar(toolbar)
        toolbar.addWidget(QLabel(" Direction: "))
        self.direction_box = QComboBox()
        self.direction_box.addItems([label for label, _ in DIRECTIONS])
        self.direction_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.direction_box.setToolTip("Auto follows the source's modality; choose one for PNG/JPEG/NIfTI input")
        self.direction_box.currentIndexChanged.connect(lambda _i: self._update_state())
        toolbar.addWidget(self.direction_box)
        toolbar.addSeparator()
        toolbar.addAction(self.convert_action)
        toolbar.addAction(self.cancel_action)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Window: "))
        self.preset_box = QComboBox()
        self.preset_box.addItem(NO_PRESET)
        self.preset_box.addItems([f"{p.key}  {p.name} {p.window.centre:g}/{p.window.width:g}" for p in CT_PRESETS])
        self.preset_box.addItem("0  Auto / reset")
        self.preset_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.preset_box.activated.connect(self._preset_chosen)
        toolbar.addWidget(self.preset_box)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.cursor_label = QLabel("")
        self.value_label = QLabel("")
        self.window_label = QLabel("")
        self.device_label = QLabel("Device: …")
        self.model_label = QLabel("Model: …")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(220)
        self.progress_bar.setVisible(False)
        # All permanent: a status message must not hide the values under the cursor.
        for widget in (self.cursor_label, self.value_label, self.window_label, self.progress_bar, self.model_label, self.device_label):
            status.addPermanentWidget(widget)

    def _connect_worker(self) -> None:
        self.worker.progress.connect(self._progress)
        self.worker.slice_ready.connect(self.synthetic_viewer.fill_slice)
        self.worker.slice_ready.connect(lambda *_slice: self._refresh_readout())
        self.worker.result.connect(lambda value: self._set_outcome("ok", value))
        self.worker.error.connect(lambda message: self._set_outcome("error", message))
        self.worker.cancelled.connect(lambda: self._set_outcome("cancelled", None))
        self.worker.finished.connect(self._job_finished)
        self._startup.result.connect(self._engine_loaded)
        self._startup.error.connect(lambda message: self._engine_failed(message))
        self._startup.finished.connect(self._close_if_pending)

    # --- start-up -----------------------------------------------------------------------
    def load_engine(self) -> None:
        """Load torch, find the models and the device off the UI thread (torch takes seconds)."""
        imported = self.settings.imported_models
        self._startup.start(lambda _ctx: (jobs.discover_models(imported), jobs.device_description()))

    def _engine_loaded(self, value: tuple[list[jobs.ModelEntry], str]) -> None:
        self.models, self.device_text = value
        self.engine_ready = True
        self.device_label.setText(f"Device: {self.device_text}")
        self._fill_model_menu()
        self._update_state()

    def _engine_failed(self, message: str) -> None:
        self.engine_problem = message
        self.device_label.setText("Device: unavailable")
        self._fill_model_menu()
        self._update_state()
        self.dialogs.error("The conversion engine did not start", message)

    # --- jobs ---------------------------------------------------------------------------
    def run_job(
        self,
        function: Callable[[Any], Any],
        on_result: Callable[[Any], None],
        error_title: str,
        subject: str,
        cancel: Any = None,
        on_abort: Callable[[], None] = lambda: None,
        cancelled_text: Callable[[], str] = lambda: "Cancelled",
        activity: str = "",
        lands_outside: bool = False,
    ) -> bool:
        """Run `function(context)` on the worker; on_result(value) when it succeeds, else on_abort()
        and an error dialog (error_title, subject and the message) or the cancelled text. Quit asks
        first while a job with an `activity` runs."""
        job = _Job(on_result, error_title, subject, on_abort, cancelled_text, activity, lands_outside)
        return self._run(function, job, cancel)

    def _run(self, function: Callable[[Any], Any], job: _Job, cancel: Any = None) -> bool:
        if self.worker.busy:
            self.statusBar().showMessage("Busy: wait for the current job or cancel it", 4000)
            return False
        self._job = job
        self._outcome = ("none", None)
        self.progress_bar.setValue(0)
        self.progress_bar.setMaximum(0)
        self.progress_bar.setVisible(True)
        self.worker.start(function, cancel, job.lands_outside)
        self._update_state()
        return True

    def _set_outcome(self, kind: str, value: Any) -> None:
        self._outcome = (kind, value)

    def _progress(self, done: int, total: int) -> None:
        self.progress_bar.setMaximum(max(total, 1))
        self.progress_bar.setValue(done)
        self.progress_bar.setFormat(f"{done} / {total}")

    def _job_finished(self) -> None:
        job, self._job = self._job, None
        self.progress_bar.setVisible(False)
        self._update_state()
        self._update_window_label()
        if job is None or self._close_if_pending():
            return
        kind, value = self._outcome
        if kind == "ok":
            job.on_result(value)
            return
        job.on_abort()
        if kind == "error":
            self.dialogs.error(job.error_title, f"{job.subject}\n\n{value}")
        elif kind == "cancelled":
            self.statusBar().showMessage(job.cancelled_text(), 8000)
        self._update_state()

    def cancel(self) -> None:
        if self.worker.busy and self.worker.cancellable:
            self.statusBar().showMessage("Cancelling…")
            self.worker.cancel()

    # --- opening ------------------------------------------------------------------------
    def ask_open_file(self) -> None:
        path = self.dialogs.open_file(self.settings.last_dir)
        if path is not None:
            self.open_path(path)

    def ask_open_folder(self) -> None:
        path = self.dialogs.open_folder(self.settings.last_dir)
        if path is not None:
            self.open_path(path)

    def open_path(self, path: Path, series_uid: str | None = None, remember: bool = True) -> bool:
        """Read `path` in the worker; on success it replaces the source and clears the synthetic,
        and (unless not `remember`: the bundled sample) goes into Recent and the last folder.

        Cancel drops the result when the read ends (the worker checks its CancelToken when the read ends); the window stays as it was.
        """
        path = Path(path).expanduser().absolute()  # remembered in Recent and as the last folder
        if series_uid is None and not self.worker.busy and not self._may_discard_synthetic(f"Open {path.name}"):
            return False
        job = _Job(lambda value: self._opened(path, value, remember), "Could not open the scan", str(path))
        started = self._run(lambda _ctx: jobs.open_path(path, series_uid=series_uid), job, CancelToken())
        if started:
            self.statusBar().showMessage(f"Opening {path}…")
        return started

    def _opened(self, path: Path, value: Scan | list[Any], remember: bool = True) -> None:
        if isinstance(value, list):
            uid = self.dialogs.choose_series(value)
            if uid is not None:
                self.open_path(path, series_uid=uid, remember=remember)
            return
        self.source_scan = value
        self.synthetic_scan = None
        self.synthetic_unsaved = False
        self.source_viewer.set_scan(value)
        self.synthetic_viewer.set_scan(None)
        if remember:
            self.settings.add_recent(path)
            self.settings.last_dir = str(path.parent)
        self.setWindowTitle(f"AI-MEDX Desktop — {path.name}")
        self.direction_box.setCurrentIndex(0)
        self.statusBar().showMessage(f"Opened {path.name}: {value.modality.value}, {value.n_slices} slice(s)", 8000)
        self._show_notes(value.warnings)
        self._update_window_label()
        self._update_state()
        self._refresh_readout()  # the mouse may rest over the pane the new scan fills

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for name in self.settings.recent_files:
            action = self.recent_menu.addAction(name)
            action.triggered.connect(lambda _checked=False, n=name: self.open_path(Path(n)))
        if self.settings.recent_files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self.settings.clear_recent)
        else:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        target = _drop_target(paths)
        if target is None:
            self.statusBar().showMessage("Drop one file or folder, or files of one folder (a series)", 8000)
            return
        # After the drop returns: open_path may ask a question, and a modal dialog inside a
        # drop would hold the program the file came from until it is answered.
        QTimer.singleShot(0, lambda: self.open_path(target))

    # --- models -------------------------------------------------------------------------
    @property
    def model(self) -> jobs.ModelEntry | None:
        """The selected usable model: the remembered one, else the first usable."""
        usable = [m for m in self.models if m.card is not None]
        chosen = [m for m in usable if str(m.path) == self.settings.model]
        return (chosen or usable or [None])[0]

    def _fill_model_menu(self) -> None:
        self.model_menu.clear()
        for action in self.model_group.actions():
            self.model_group.removeAction(action)
        current = self.model
        if self.engine_problem is not None:
            self.model_menu.addAction("(conversion engine unavailable)").setEnabled(False)
        elif not self.engine_ready:
            self.model_menu.addAction("(loading…)").setEnabled(False)
        elif not self.models:
            self.model_menu.addAction("(no model installed)").setEnabled(False)
        for entry in self.models:
            action = self.model_menu.addAction(entry.label)
            action.setCheckable(True)
            action.setEnabled(entry.card is not None)
            action.setToolTip(entry.problem or str(entry.path))
            action.setChecked(entry is current)
            action.triggered.connect(lambda _checked=False, e=entry: self.select_model(e.path))
            self.model_group.addAction(action)
        self.model_menu.addSeparator()
        self.model_menu.addActions([self.import_model_action, self.model_card_action])
        waiting = "Model: unavailable" if self.engine_problem is not None else "Model: …"
        self.model_label.setText(f"Model: {current.label}" if current else ("Model: none" if self.engine_ready else waiting))

    def select_model(self, path: Path) -> None:
        self.settings.model = str(path)
        self._fill_model_menu()
        self._update_state()

    def ask_import_model(self) -> None:
        path = self.dialogs.open_folder(self.settings.last_dir, "Import model bundle folder")
        if path is not None:
            self.import_model(path)

    def import_model(self, path: Path) -> bool:
        """Check the bundle's card, remember the bundle and select it."""
        from aimedx_desktop.engine.bundle import BundleError, read_card

        try:
            card = read_card(path)
        except BundleError as error:
            self.dialogs.error("Not a model bundle", f"{path}\n\n{error}")
            return False
        self.settings.add_imported_model(path)
        self.models = [m for m in self.models if m.path.resolve() != path.resolve()] + [jobs.ModelEntry(path, card)]
        self.select_model(path)
        return True

    def show_model_card(self) -> None:
        entry = self.model
        if entry is None:
            self.dialogs.info("Model card", self._no_conversion_text() or NO_MODEL_TEXT)
            return
        self.dialogs.text(f"Model card — {entry.label}", entry.card_text())

    # --- converting and exporting -------------------------------------------------------
    def source_modality(self) -> Modality | None:
        """The modality the source is converted from: the override, else what was read."""
        override = DIRECTIONS[self.direction_box.currentIndex()][1]
        if override is not None:
            return override
        return None if self.source_scan is None else self.source_scan.modality

    def convert(self) -> bool:
        if self.worker.busy:
            self.statusBar().showMessage("Busy: wait for the current job or cancel it", 4000)
            return False
        model, scan, source = self.model, self.source_scan, self.source_modality()
        if model is None or scan is None or source is None:
            if scan is not None and self.engine_ready:
                self.dialogs.info("No model", NO_MODEL_TEXT)
            return False

        previous, previous_window = self.synthetic_scan, self.synthetic_viewer.window
        self.synthetic_viewer.index = self.source_viewer.index
        self.synthetic_viewer.begin_partial(scan, source.other)

        def restore() -> None:  # begin_partial replaced the pane's window: put the user's back
            self.synthetic_viewer.set_scan(previous, keep_view=True, keep_window=True)
            self.synthetic_viewer.set_window(previous_window)

        cache, path = self.translators, model.path
        job = _Job(self._converted, "Conversion failed", f"{scan.description or 'scan'} with {model.label}", restore,
                   activity="the conversion")
        token = CancelToken()
        started = self._run(
            lambda ctx: jobs.convert(cache, path, scan, source, ctx.progress, ctx.cancel, ctx.slice_ready), job, token
        )
        if started:
            self.statusBar().showMessage(f"Converting {source.value} → {source.other.value} on {self.device_text}…")
        return started

    def _converted(self, synthetic: Scan) -> None:
        self.synthetic_scan = synthetic
        self.synthetic_unsaved = True
        viewer = self.synthetic_viewer
        chosen = viewer.window != viewer.auto_window  # set by the user while the slices came in
        viewer.set_scan(synthetic, keep_view=True, keep_window=True)
        if synthetic.modality is not Modality.CT and not chosen:  # the auto window of the whole volume
            viewer.reset_window()
        self._refresh_readout()
        self.statusBar().showMessage(f"Converted {synthetic.n_slices} slice(s): {synthetic.provenance.describe()}", 8000)
        self._show_notes(synthetic.warnings)
        self._update_state()

    def export(self, fmt: str) -> bool:
        scan = self.synthetic_scan
        if scan is None or self.worker.busy:
            return False
        window = self.synthetic_viewer.window
        has_map = UNCERTAINTY in scan.maps
        request = self.dialogs.export_options(fmt, (window.centre, window.width), self.settings.last_dir, has_map)
        if request is None:
            return False
        from aimedx_desktop.engine.errors import USER_ERRORS
        from aimedx_desktop.engine.io.output import check_output, existing_targets

        try:  # at once, not after the user waited for the job: a file, read-only, the source folder…
            check_output(scan, request.out_dir, request.fmt, True, request.bits, request.uncertainty)
        except USER_ERRORS as error:
            self.dialogs.error("Export failed", f"{request.out_dir}\n\n{error}")
            return False
        existing = existing_targets(scan, request.out_dir, request.fmt, request.uncertainty)
        if existing and not self.dialogs.confirm_overwrite(existing):
            return False
        overwrite = bool(existing)
        job = _Job(lambda paths: self._exported(request, paths), "Export failed", str(request.out_dir),
                   activity=f"the export to {request.out_dir}", lands_outside=True)
        return self._run(lambda ctx: jobs.export(scan, request, overwrite, ctx.progress, ctx.cancel), job, CancelToken())

    def _exported(self, request: jobs.ExportRequest, paths: list[Path]) -> None:
        self.synthetic_unsaved = False
        self.settings.last_dir = str(request.out_dir)
        self.statusBar().showMessage(f"Wrote {len(paths)} {request.fmt.upper()} file(s) to {request.out_dir}", 8000)

    # --- view ---------------------------------------------------------------------------
    def navigate(self, target: Callable[[int, int], int]) -> None:
        """Move the pane under the mouse (and, when linked, the other) to target(index, count)."""
        viewer = self._active if self._active.scan is not None else self.source_viewer
        viewer.set_index(target(viewer.index, viewer.n_slices))

    def _slice_changed(self, viewer: SliceViewer, index: int) -> None:
        if self.link_action.isChecked():
            for other in self.viewers:
                if other is not viewer and other.scan is not None:
                    other.set_index(index)
        self._refresh_readout()

    def _refresh_readout(self) -> None:
        """The readout again where the mouse rests: the wheel, a key or a converted slice changed
        the image under it without a mouse move."""
        if self._cursor is not None:
            self._cursor_moved(*self._cursor)

    def apply_preset(self, preset: Preset) -> None:
        """CT presets apply to the panes that show CT in HU."""
        panes = [v for v in self.viewers if v.shows_hu]
        for viewer in panes:
            viewer.set_window(preset.window)
        if not panes:
            self.statusBar().showMessage("CT presets apply to CT in HU; press 0 for the automatic window", 4000)
        self._sync_preset_box()

    def reset_windows(self) -> None:
        for viewer in self.viewers:
            viewer.reset_window()
        self._sync_preset_box()

    def _preset_chosen(self, index: int) -> None:
        if 1 <= index <= len(CT_PRESETS):
            self.apply_preset(CT_PRESETS[index - 1])
        elif index == len(CT_PRESETS) + 1:
            self.reset_windows()
        self._sync_preset_box()

    def _window_changed(self, viewer: SliceViewer) -> None:
        self._window_pane = viewer
        self._update_window_label()

    def _sync_preset_box(self) -> None:
        """Show the window of the pane changed last: its CT preset, Auto, or Custom (after a drag,
        typed values); "Preset…" while no pane shows a scan."""
        pane = self._window_pane if self._window_pane.scan is not None else self.source_viewer
        preset = preset_for(pane.window) if pane.shows_hu else None
        if preset is not None:
            index = 1 + CT_PRESETS.index(preset)
        elif pane.scan is not None and pane.window == pane.auto_window:
            index = len(CT_PRESETS) + 1
        else:
            index = 0
        self.preset_box.setItemText(0, CUSTOM if pane.scan is not None else NO_PRESET)
        self.preset_box.setCurrentIndex(index)

    def reset_view(self) -> None:
        for viewer in self.viewers:
            viewer.reset_view()

    def _apply_link(self, linked: bool) -> None:
        self.settings.linked = linked
        self.synthetic_viewer.link_to(self.source_viewer if linked else None)
        if linked and self.source_viewer.scan is not None and self.synthetic_viewer.scan is not None:
            self.synthetic_viewer.set_index(self.source_viewer.index)

    def _apply_overlays(self, visible: bool) -> None:
        self.settings.overlays = visible
        for viewer in self.viewers:
            viewer.set_overlays_visible(visible)

    def _cursor_moved(self, viewer: SliceViewer, row: float, col: float) -> None:
        self._active = viewer
        self._cursor = (viewer, row, col)
        for other in self.viewers:
            if other is viewer or self.link_action.isChecked():
                other.set_crosshair(row, col)
            else:
                other.set_crosshair(-1, -1)
        if not viewer.pixel_inside(row, col):
            self.cursor_label.setText("")
            self.value_label.setText("")
            return
        row_mm, col_mm = viewer.scan.geometry.pixel_spacing
        self.cursor_label.setText(f"x {int(col)}, y {int(row)} px ({col * col_mm:.1f}, {row * row_mm:.1f} mm)")
        values = [f"{v.title.lower()}: {v.format_value(v.value_at(row, col))}" for v in self.viewers if v.scan is not None]
        sigma = self.synthetic_viewer.map_value_at(row, col)
        if sigma is not None:
            values[-1] += f" ± {sigma:.0f} {self.synthetic_viewer.map_overlay.units}"
        self.value_label.setText("   ".join(values))

    def _show_notes(self, warnings: tuple[str, ...]) -> None:
        """The scan's warnings (guessed modality, gantry tilt, CT calibration…) above the panes."""
        self.notes_label.setText("⚠ " + " · ".join(warnings) if warnings else "")
        self.notes_label.setVisible(bool(warnings))

    def _update_window_label(self) -> None:
        parts = [f"{v.title.lower()} {v.window.label()}" for v in self.viewers if v.scan is not None]
        self.window_label.setText("W/L " + " · ".join(parts) if parts else "")
        self._sync_preset_box()

    def _update_state(self) -> None:
        busy = self.worker.busy
        has_model = self.model is not None
        for action in (self.open_action, self.open_folder_action):
            action.setEnabled(not busy)
        # Not while the engine starts: the models it finds would replace one imported meanwhile.
        self.import_model_action.setEnabled(not busy and self.engine_ready)
        self.model_menu.setEnabled(not busy)
        self.direction_box.setEnabled(not busy)  # a result must match the direction shown
        self.recent_menu.setEnabled(not busy)
        self.convert_action.setEnabled(not busy and has_model and self.source_scan is not None)
        self.convert_action.setToolTip(self._no_conversion_text() or "Convert the source")
        self.cancel_action.setEnabled(busy and self.worker.cancellable)
        for action in (self.export_png_action, self.export_dicom_action):
            action.setEnabled(not busy and self.synthetic_scan is not None)
        self.uncertainty_action.setEnabled(self.synthetic_viewer.has_map)
        self.net.update_state(busy)
        source = self.source_modality()
        auto = "Auto" if self.source_scan is None else f"Auto ({self.source_scan.modality.value} → {self.source_scan.modality.other.value})"
        self.direction_box.setItemText(0, auto)
        if self.synthetic_viewer.scan is None and (self.engine_ready or self.engine_problem is not None):
            reason = self._no_conversion_text()
            self.synthetic_viewer.placeholder.setText(reason.replace(": ", ":\n", 1) if reason else "No synthetic image yet")
        self.convert_action.setText(f"Convert {source.value} → {source.other.value}" if source else "Convert")

    def _no_conversion_text(self) -> str | None:
        """Why Convert cannot run once the engine has started or failed, or None when it can."""
        if self.engine_problem is not None:
            return f"The conversion engine did not start: {self.engine_problem.splitlines()[0]}"
        if not self.engine_ready:
            return "The conversion engine is still starting…"
        return None if self.model is not None else NO_MODEL_TEXT

    # --- help ---------------------------------------------------------------------------
    def show_shortcuts(self) -> None:
        shown = [a for a in self.actions() if not a.shortcut().isEmpty() and a not in self.navigation_actions]
        lines = [f"{a.shortcut().toString():<18} {a.text().replace('&', '')}" for a in shown]
        lines += ["", *[f"{', '.join(keys):<18} {text}" for text, keys, _ in NAVIGATION_KEYS], "", MOUSE_HELP]
        self.dialogs.text("Keyboard shortcuts", "\n".join(dict.fromkeys(lines)))

    def show_about(self) -> None:
        self.dialogs.info("About AI-MEDX Desktop", f"AI-MEDX Desktop {__version__}\n\n{ABOUT_TEXT}")

    # --- closing ------------------------------------------------------------------------
    def close_without_asking(self) -> bool:
        """Close as Quit does, but without asking about a running job or an unsaved synthetic
        image: for a terminating signal (the system is going down) and for scripts.

        Every dialog open at that moment is closed (a question answers No); when one is Quit's own
        question, Qt refuses this second close, and closeEvent goes on closing once it returns."""
        self._close_confirmed = True
        closed: set[int] = set()  # a dialog that refuses to close must not stop the loop forever
        while (dialog := QApplication.activeModalWidget()) is not None and id(dialog) not in closed:
            closed.add(id(dialog))
            dialog.close()  # an error box that opened on top of Quit's question, then the question
        return self.close()

    def _unsaved_synthetic(self) -> str | None:
        """'The synthetic CT (n slice(s)) has been neither exported nor sent', or None when nothing is unsaved."""
        scan = self.synthetic_scan
        if not self.synthetic_unsaved or scan is None:
            return None
        return f"The synthetic {scan.modality.value} ({scan.n_slices} slice(s)) has been neither exported nor sent"

    def _may_discard_synthetic(self, action: str) -> bool:
        """True when nothing unsaved would be lost, or the user agrees to lose it for `action`."""
        unsaved = self._unsaved_synthetic()
        return unsaved is None or self.dialogs.confirm("Discard the synthetic image?", f"{unsaved}.\n\n{action} and discard it?")

    def _may_quit(self) -> bool:
        """True when quitting loses nothing, or the user agrees to what it would lose."""
        job, unsaved = self._job, self._unsaved_synthetic()
        losses = []
        if self.worker.busy and job is not None and job.activity:
            losses.append(f"{job.activity[:1].upper()}{job.activity[1:]} is still running and will be cancelled.")
        if unsaved is not None:
            losses.append(f"{unsaved} and will be lost.")
        return not losses or self.dialogs.confirm("Quit AI-MEDX Desktop?", "\n".join(losses) + "\n\nQuit anyway?")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Close once no job thread runs: destroying a running QThread aborts the process. A user's
        Quit first asks before it cancels a conversion, export or transfer, or drops an unsaved
        synthetic image."""
        if not (self._close_confirmed or self._close_pending):
            # A terminating signal during the question sets _close_confirmed: it closes whatever the answer.
            if not self._may_quit() and not self._close_confirmed:
                event.ignore()
                return
            self._close_confirmed = True
        for worker in (self.worker, self._startup):
            worker.cancel()
        if not all(worker.wait(CLOSE_WAIT_MS) for worker in (self.worker, self._startup)):
            event.ignore()
            self._close_pending = True
            cancelling = all(worker.cancellable for worker in (self.worker, self._startup) if worker.busy)
            doing = "Cancelling the current job…" if cancelling else "Waiting for the current job to finish…"
            self.statusBar().showMessage(f"{doing} the window closes when it has stopped")
            return
        self.settings.store.setValue("geometry", self.saveGeometry())
        self.settings.store.sync()
        super().closeEvent(event)

    def _close_if_pending(self) -> bool:
        """After a job ends: close now if a close was deferred for it (and nothing else runs)."""
        if self._close_pending and not (self.worker.busy or self._startup.busy):
            QTimer.singleShot(0, self.close)
            return True
        return self._close_pending


def _drop_target(paths: list[Path]) -> Path | None:
    """What a drop opens: the one file or folder dropped, or the folder of several DICOM files of
    one folder (the slices of a series, picked in a file manager); None otherwise (two NIfTI
    volumes or photos: their folder may hold anything)."""
    if len(paths) == 1:
        return paths[0]
    from aimedx_desktop.engine.io.dicom import is_dicom_image_file

    folders = {path.parent for path in paths}
    return folders.pop() if len(folders) == 1 and all(is_dicom_image_file(path) for path in paths) else None
