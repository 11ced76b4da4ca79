"""The main window under pytest-qt (offscreen): open, convert, cancel, view, export, settings."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent

from aimedx_desktop.engine.scan import Modality, Provenance
from aimedx_desktop.ui import app as ui_app
from aimedx_desktop.ui import dialogs as ui_dialogs
from aimedx_desktop.ui import jobs
from aimedx_desktop.ui import main_window as ui_main_window
from aimedx_desktop.ui.jobs import ExportRequest
from aimedx_desktop.ui.settings import AppSettings
from aimedx_desktop.ui.window_level import CT_PRESETS, Window

BONE = CT_PRESETS[3].window

TIMEOUT_MS = 20_000


class FakeDialogs:
    """Answers every question without a modal loop and records what was asked."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.infos: list[tuple[str, str]] = []
        self.texts: list[tuple[str, str]] = []
        self.accept_notice = True
        self.notices = 0
        self.folder: Path | None = None
        self.file: Path | None = None
        self.series_choice = None
        self.series_offered: list = []
        self.export_request: ExportRequest | None = None
        self.overwrite_answer = True
        self.overwrite_asked: list[list[Path]] = []
        self.confirm_answer = True
        self.confirmations: list[tuple[str, str]] = []

    def error(self, title: str, text: str) -> None:
        self.errors.append((title, text))

    def info(self, title: str, text: str) -> None:
        self.infos.append((title, text))

    def text(self, title: str, text: str) -> None:
        self.texts.append((title, text))

    def first_start_notice(self) -> bool:
        self.notices += 1
        return self.accept_notice

    def choose_series(self, series):
        self.series_offered = series
        return self.series_choice

    def confirm(self, title, text):
        self.confirmations.append((title, text))
        return self.confirm_answer

    def confirm_overwrite(self, paths):
        self.overwrite_asked.append(paths)
        return self.overwrite_answer

    def open_file(self, start):
        return self.file

    def open_folder(self, start, title=""):
        return self.folder

    def export_options(self, fmt, window, start, has_uncertainty=False):
        self.export_offered_uncertainty = has_uncertainty
        return self.export_request


def settings_at(path: Path) -> AppSettings:
    return AppSettings(QSettings(str(path), QSettings.Format.IniFormat))


@pytest.fixture
def dialogs() -> FakeDialogs:
    return FakeDialogs()


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch, dialogs):
    """A window with no bundled models or samples (an empty resources folder)."""
    monkeypatch.setenv("AIMEDX_RESOURCES", str(tmp_path / "resources"))
    win = ui_app.create_window(settings_at(tmp_path / "settings.ini"), dialogs)
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: win.engine_ready, timeout=TIMEOUT_MS)
    return win


def with_imported_model(window, dialogs, bundle_dir: Path):
    """The window after Model → Import bundle… of `bundle_dir`."""
    dialogs.folder = bundle_dir
    window.ask_import_model()
    assert window.model is not None and window.model.path == bundle_dir
    return window


@pytest.fixture
def with_tiny_model(window, dialogs, tiny_bundle_dir):
    return with_imported_model(window, dialogs, tiny_bundle_dir)


def wait_idle(qtbot, win) -> None:
    qtbot.waitUntil(lambda: not win.worker.busy and win._job is None, timeout=TIMEOUT_MS)


def open_in_memory(qtbot, win, monkeypatch, scan, name="phantom.dcm") -> None:
    """Open `scan` through the real open path, with the reader replaced."""
    monkeypatch.setattr(jobs, "open_path", lambda path, series_uid=None: scan)
    assert win.open_path(Path(name))
    wait_idle(qtbot, win)
    assert win.source_scan is scan


def convert(qtbot, win) -> None:
    assert win.convert()
    wait_idle(qtbot, win)


def slow_open(monkeypatch, scan) -> tuple[threading.Event, threading.Event]:
    """Replace the reader by one that returns `scan` once released: (started, release)."""
    started, release = threading.Event(), threading.Event()

    def blocked_open(path, series_uid=None):
        started.set()
        release.wait(10)
        return scan

    monkeypatch.setattr(jobs, "open_path", blocked_open)
    return started, release


def gate_convert(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """Make conversions wait after their first batch until released: (first_batch, resume)."""
    first_batch, resume = threading.Event(), threading.Event()
    real_convert = jobs.convert

    def gated_convert(cache, path, scan, source, progress, cancel, on_slice):
        def gated_progress(done, total):
            progress(done, total)
            first_batch.set()
            resume.wait(10)

        return real_convert(cache, path, scan, source, gated_progress, cancel, on_slice)

    monkeypatch.setattr(jobs, "convert", gated_convert)
    return first_batch, resume


def test_starts_without_a_model_and_says_so(window):
    assert window.model is None
    assert not window.convert_action.isEnabled()
    assert "none" in window.model_label.text().lower()
    assert "no model" in window.synthetic_viewer.placeholder.text().lower()
    assert window.device_label.text().startswith("Device: ")


def test_an_engine_that_does_not_start_is_said_everywhere_and_views_still_work(
    qtbot, tmp_path, monkeypatch, dialogs, ct_scan, log_home
):
    def broken() -> str:
        raise RuntimeError("libtorch_cpu.so: cannot open shared object file")

    monkeypatch.setattr(jobs, "device_description", broken)
    monkeypatch.setenv("AIMEDX_RESOURCES", str(tmp_path / "resources"))
    win = ui_app.create_window(settings_at(tmp_path / "settings.ini"), dialogs)
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: win.engine_problem is not None, timeout=TIMEOUT_MS)
    [(title, text)] = dialogs.errors
    assert title == "The conversion engine did not start" and text.startswith("Something went wrong")
    assert "libtorch_cpu.so" in (log_home / "aimedx.log").read_text()
    assert win.model_label.text() == "Model: unavailable" and not win.import_model_action.isEnabled()
    assert [a.text() for a in win.model_menu.actions()][0] == "(conversion engine unavailable)"
    assert win.synthetic_viewer.placeholder.text().startswith("The conversion engine did not start:\n")
    open_in_memory(qtbot, win, monkeypatch, ct_scan)  # viewing needs no engine
    assert not win.convert_action.isEnabled() and "did not start" in win.convert_action.toolTip()


def _gated_engine(monkeypatch, fails: bool) -> threading.Event:
    """Hold the engine's start-up until the returned event is set; then it starts, or fails."""
    release = threading.Event()
    real = jobs.device_description

    def gated() -> str:
        release.wait(10)
        if fails:
            raise RuntimeError("CUDA driver initialisation failed")
        return real()

    monkeypatch.setattr(jobs, "device_description", gated)
    return release


@pytest.mark.parametrize("fails", [False, True])
def test_no_model_is_imported_while_the_engine_starts(qtbot, tmp_path, monkeypatch, dialogs, fails, log_home):
    """What the start-up finds would replace a model imported meanwhile (or leave Convert on after a failure)."""
    release = _gated_engine(monkeypatch, fails)
    monkeypatch.setenv("AIMEDX_RESOURCES", str(tmp_path / "resources"))
    win = ui_app.create_window(settings_at(tmp_path / "settings.ini"), dialogs)
    qtbot.addWidget(win)
    try:
        assert not win.import_model_action.isEnabled()
        win.show_model_card()
        assert dialogs.infos[-1] == ("Model card", "The conversion engine is still starting…")
    finally:
        release.set()  # a start-up thread still running when the window goes would abort the tests
    qtbot.waitUntil(lambda: win.engine_ready or win.engine_problem is not None, timeout=TIMEOUT_MS)
    assert win.import_model_action.isEnabled() is not fails
    win.show_model_card()
    expected = "The conversion engine did not start: Something went wrong" if fails else ui_main_window.NO_MODEL_TEXT
    assert dialogs.infos[-1][1].startswith(expected)


def test_closing_while_the_engine_starts_says_it_waits_rather_than_cancels(qtbot, tmp_path, monkeypatch, dialogs):
    release = _gated_engine(monkeypatch, fails=False)
    monkeypatch.setenv("AIMEDX_RESOURCES", str(tmp_path / "resources"))
    win = ui_app.create_window(settings_at(tmp_path / "settings.ini"), dialogs)
    qtbot.addWidget(win)
    win.show()
    try:
        assert not win.close()
        assert win.statusBar().currentMessage().startswith("Waiting for the current job to finish…")
    finally:
        release.set()
    qtbot.waitUntil(lambda: not win.isVisible(), timeout=TIMEOUT_MS)


def test_first_start_notice_is_remembered_once_accepted(window, dialogs):
    assert ui_app.start(window, initial=None)
    assert dialogs.notices == 1 and window.settings.notice_accepted
    assert ui_app.start(window, initial=None)
    assert dialogs.notices == 1


def test_declining_the_notice_stops_the_start(window, dialogs):
    dialogs.accept_notice = False
    assert not ui_app.start(window, initial=None)
    assert not window.settings.notice_accepted


def test_convert_fills_the_synthetic_pane_and_labels_it(qtbot, with_tiny_model, monkeypatch, ct_scan):
    win = with_tiny_model
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    assert win.convert_action.isEnabled() and "CT → MR" in win.convert_action.text()
    convert(qtbot, win)
    synthetic = win.synthetic_scan
    assert synthetic is not None and synthetic.modality is Modality.MR and synthetic.is_synthetic
    assert synthetic.shape == ct_scan.shape
    assert win.synthetic_viewer.scan is synthetic
    assert win.synthetic_viewer.badge.isVisible() and "NOT FOR DIAGNOSIS" in win.synthetic_viewer.badge.text()
    assert win.export_png_action.isEnabled()
    assert not win.dialogs.errors


def test_cancel_midway_leaves_the_window_as_it_was(qtbot, with_tiny_model, monkeypatch, ct_scan):
    win = with_tiny_model
    big = dataclasses.replace(ct_scan, voxels=np.repeat(ct_scan.voxels, 4, axis=0), geometry=dataclasses.replace(ct_scan.geometry, positions=None))
    open_in_memory(qtbot, win, monkeypatch, big)
    first_batch, resume = gate_convert(monkeypatch)
    assert win.convert()
    qtbot.waitUntil(first_batch.is_set, timeout=TIMEOUT_MS)
    # results show before the whole volume is done
    qtbot.waitUntil(lambda: win.synthetic_viewer._ready is not None and win.synthetic_viewer._ready.any(), timeout=TIMEOUT_MS)
    partial = win.synthetic_viewer.scan
    assert win.cancel_action.isEnabled() and not win.convert()  # one conversion at a time
    assert win.synthetic_viewer.scan is partial
    win.cancel()
    resume.set()
    wait_idle(qtbot, win)
    assert win.synthetic_scan is None and win.synthetic_viewer.scan is None
    assert win.source_scan is big and not win.dialogs.errors
    assert win.convert_action.isEnabled() and not win.cancel_action.isEnabled()


def test_cancelling_a_reconversion_keeps_the_synthetic_window(qtbot, with_tiny_model, monkeypatch, ct_scan):
    win = with_tiny_model
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    convert(qtbot, win)
    first = win.synthetic_scan
    win.synthetic_viewer.set_window(Window(300, 600))
    first_batch, resume = gate_convert(monkeypatch)
    assert win.convert()
    qtbot.waitUntil(first_batch.is_set, timeout=TIMEOUT_MS)
    assert win.synthetic_viewer.window != Window(300, 600)  # the partial result has its own
    win.cancel()
    resume.set()
    wait_idle(qtbot, win)
    assert win.synthetic_scan is first and win.synthetic_viewer.scan is first
    assert win.synthetic_viewer.window == Window(300, 600)
    assert tuple(win.synthetic_viewer.image.levels) == pytest.approx((0.0, 600.0))


def test_cancelling_an_open_keeps_the_previous_scan(qtbot, window, monkeypatch, dialogs, ct_scan):
    open_in_memory(qtbot, window, monkeypatch, ct_scan)
    title = window.windowTitle()
    started, release = slow_open(monkeypatch, dataclasses.replace(ct_scan, description="other"))
    assert window.open_path(Path("huge_folder"))
    qtbot.waitUntil(started.is_set, timeout=TIMEOUT_MS)
    assert window.cancel_action.isEnabled()
    window.cancel_action.trigger()
    release.set()
    wait_idle(qtbot, window)
    assert window.source_scan is ct_scan and window.source_viewer.scan is ct_scan
    # remembered by its full path: a relative one would point elsewhere once the app starts in another folder
    assert window.windowTitle() == title and window.settings.recent_files == [str(Path("phantom.dcm").absolute())]
    assert window.statusBar().currentMessage() == "Cancelled" and not dialogs.errors
    assert not window.cancel_action.isEnabled() and window.open_action.isEnabled()


def test_closing_during_a_long_open_waits_for_the_read(qtbot, window, monkeypatch, ct_scan):
    monkeypatch.setattr(ui_main_window, "CLOSE_WAIT_MS", 20)
    started, release = slow_open(monkeypatch, ct_scan)
    assert window.open_path(Path("huge_folder"))
    qtbot.waitUntil(started.is_set, timeout=TIMEOUT_MS)
    assert not window.close()  # refused while the reader thread runs: no QThread destroyed running
    assert window.isVisible() and "cancelling the current job" in window.statusBar().currentMessage().lower()
    release.set()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=TIMEOUT_MS)
    assert not window.worker.busy and window.source_scan is None  # the late result was dropped


def test_scan_warnings_are_shown_without_a_dialog(qtbot, window, monkeypatch, dialogs, ct_scan):
    assert window.notes_label.isHidden()
    tilted = dataclasses.replace(ct_scan, warnings=("gantry tilt of 12° is not corrected",))
    open_in_memory(qtbot, window, monkeypatch, tilted)
    assert not window.notes_label.isHidden() and "gantry tilt" in window.notes_label.text()
    open_in_memory(qtbot, window, monkeypatch, ct_scan)
    assert window.notes_label.isHidden() and not dialogs.infos and not dialogs.errors


def test_8bit_ct_image_is_calibrated_after_the_direction_override(qtbot, with_tiny_model, monkeypatch, ct_scan):
    win = with_tiny_model
    gray = np.clip((ct_scan.voxels + 1000) / 2000 * 255, 0, 255).round()
    image = dataclasses.replace(ct_scan, voxels=gray, modality=Modality.MR, provenance=Provenance(("x.png",), "png"))
    open_in_memory(qtbot, win, monkeypatch, image, name="x.png")  # read as MR (a guess)
    win.direction_box.setCurrentIndex(1)  # the user says: CT → MR
    convert(qtbot, win)
    assert win.synthetic_scan.modality is Modality.MR and not win.dialogs.errors
    assert "calibrated to HU" in win.notes_label.text()


def test_export_dialog_refuses_an_empty_or_relative_folder(qtbot, tmp_path):
    dialog = ui_dialogs._ExportDialog("png", (40.0, 80.0), "", None)
    qtbot.addWidget(dialog)
    for text in ("", "   ", "relative/out"):
        dialog.folder.setText(text)
        dialog.accept()
        assert dialog.result() != dialog.DialogCode.Accepted and not dialog.problem.isHidden()
    assert "folder" in dialog.problem.text().lower()
    dialog.folder.setText(str(tmp_path))
    dialog.accept()
    assert dialog.result() == dialog.DialogCode.Accepted and dialog.request().out_dir == tmp_path


def test_open_dialog_filter_covers_every_reader():
    from aimedx_desktop.engine.io.nifti import NIFTI_SUFFIXES
    from aimedx_desktop.engine.io.raster import RASTER_SUFFIXES

    filters = ui_dialogs.file_filter().split(";;")
    for suffix in (*RASTER_SUFFIXES, *NIFTI_SUFFIXES, ".dcm", ".tif", ".bmp", ".IMA"):
        assert f"*{suffix}" in filters[0]
    assert filters[-1].endswith("(*)")  # DICOM files without a suffix


def test_presets_and_drag_change_the_levels_not_the_data(qtbot, window, monkeypatch, ct_scan):
    open_in_memory(qtbot, window, monkeypatch, ct_scan)
    viewer = window.source_viewer
    before = ct_scan.voxels.copy()
    assert viewer.window == Window(40, 80)
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_4)
    assert viewer.window == BONE
    assert tuple(viewer.image.levels) == pytest.approx(BONE.levels)
    assert "C 400 / W 1800" in window.window_label.text()

    start = QPointF(100, 100)
    for position, is_start, is_finish in ((QPointF(120, 100), True, False), (QPointF(150, 80), False, True)):
        event = SimpleNamespace(
            button=lambda: Qt.MouseButton.LeftButton,
            isStart=lambda s=is_start: s,
            isFinish=lambda f=is_finish: f,
            screenPos=lambda p=position: p,
            buttonDownScreenPos=lambda: start,
            accept=lambda: None,
        )
        viewer.view_box.mouseDragEvent(event)
    assert viewer.window.width > 1800 and viewer.window.centre > 400
    viewer.centre_box.setFocus()
    viewer.centre_box.lineEdit().selectAll()
    qtbot.keyClicks(viewer.centre_box, "55")  # digits typed in a field are not preset keys
    qtbot.keyClick(viewer.centre_box, Qt.Key.Key_Return)
    assert viewer.window.centre == 55.0 and viewer.window.width > 1800
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_0)
    assert viewer.window == Window(40, 80)
    np.testing.assert_array_equal(viewer.scan.voxels, before)
    np.testing.assert_array_equal(ct_scan.voxels, before)


def test_the_preset_picker_shows_the_active_window(qtbot, window, monkeypatch, ct_scan):
    box = window.preset_box
    assert box.currentText() == "Preset…"
    open_in_memory(qtbot, window, monkeypatch, ct_scan)
    assert box.currentText() == "1  Brain 40/80"  # CT opens on the brain window
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_4)
    assert box.currentText() == "4  Bone 400/1800"
    window.source_viewer.set_window(Window(123, 456))  # as a drag or the C/W fields do
    assert box.currentText() == "Custom"
    box.activated.emit(6)  # the toolbar's own choice: Lung
    assert window.source_viewer.window == CT_PRESETS[5].window and box.currentText() == "6  Lung -600/1500"
    qtbot.keyClick(window, Qt.Key.Key_0)
    assert box.currentText() == "1  Brain 40/80"  # the automatic window of CT in HU is the brain window


def test_the_preset_picker_says_auto_for_the_automatic_window_of_mr(qtbot, window, monkeypatch, ct_scan):
    mr = dataclasses.replace(ct_scan, modality=Modality.MR)
    open_in_memory(qtbot, window, monkeypatch, mr)
    assert window.preset_box.currentText() == "0  Auto / reset"
    window.source_viewer.set_window(Window(10, 20))
    assert window.preset_box.currentText() == "Custom"
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_0)
    assert window.preset_box.currentText() == "0  Auto / reset"


def test_keyboard_slice_navigation(qtbot, window, monkeypatch, ct_scan):
    open_in_memory(qtbot, window, monkeypatch, ct_scan)
    viewer = window.source_viewer
    window.activateWindow()
    assert viewer.index == 2 and viewer.slice_label.text() == "3 / 5"
    qtbot.keyClick(window, Qt.Key.Key_PageDown)
    assert viewer.index == 3
    qtbot.keyClick(window, Qt.Key.Key_Up)
    assert viewer.index == 2
    qtbot.keyClick(window, Qt.Key.Key_End)
    assert viewer.index == 4 and viewer.slider.value() == 4
    qtbot.keyClick(window, Qt.Key.Key_Home)
    assert viewer.index == 0 and viewer.slice_label.text() == "1 / 5"
    wheel_down = SimpleNamespace(modifiers=lambda: Qt.KeyboardModifier.NoModifier, delta=lambda: -120, accept=lambda: None)
    viewer.view_box.wheelEvent(wheel_down)
    assert viewer.index == 1
    viewer.slider.setValue(3)
    assert viewer.index == 3 and viewer.slice_label.text() == "4 / 5"


def test_linked_panes_follow_each_other_and_unlink(qtbot, with_tiny_model, monkeypatch, ct_scan):
    win = with_tiny_model
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    convert(qtbot, win)
    source, synthetic = win.source_viewer, win.synthetic_viewer
    source.set_index(1)
    assert synthetic.index == 1
    synthetic.step(2)
    assert source.index == 3
    source.view_box.setRange(xRange=(5, 20), yRange=(5, 20), padding=0)
    np.testing.assert_allclose(synthetic.view_box.viewRange(), source.view_box.viewRange(), atol=1e-6)
    source.cursorMoved.emit(10.0, 12.0)
    assert synthetic.h_line.isVisible() and synthetic.v_line.pos().x() == pytest.approx(12.5 * 1.0)
    assert "HU" in win.value_label.text() and "synthetic" in win.value_label.text()
    win.link_action.trigger()
    assert not win.link_action.isChecked() and not win.settings.linked
    source.set_index(0)
    assert synthetic.index == 3


def test_dropping_a_file_opens_it(qtbot, window, monkeypatch, ct_scan, tmp_path):
    opened = []

    def fake_open(path, series_uid=None):
        opened.append(path)
        return ct_scan

    monkeypatch.setattr(jobs, "open_path", fake_open)
    dropped = tmp_path / "dropped.dcm"
    dropped.write_bytes(b"")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dropped))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: bool(opened), timeout=TIMEOUT_MS)  # opened after the drop returns
    wait_idle(qtbot, window)
    assert opened == [dropped] and window.source_scan is ct_scan
    assert window.settings.recent_files[0] == str(dropped)


def _drop(window, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    window.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier))


def test_dropping_the_files_of_a_series_opens_their_folder(qtbot, window, monkeypatch, ct_scan, tmp_path, bundled_samples):
    """Picked in a file manager, a series' files came as 29 paths, and only the first was opened."""
    opened = []
    monkeypatch.setattr(jobs, "open_path", lambda path, series_uid=None: opened.append(path) or ct_scan)
    series = tmp_path / "series"
    series.mkdir()
    for source in sorted((bundled_samples / "head_ct_ge").glob("*.dcm"))[:3]:
        shutil.copy(source, series / source.name)
    _drop(window, sorted(series.iterdir()))
    qtbot.waitUntil(lambda: bool(opened), timeout=TIMEOUT_MS)
    wait_idle(qtbot, window)
    assert opened == [series]
    photos = [tmp_path / "a.png", tmp_path / "b.png"]  # their folder may hold anything
    for photo in photos:
        photo.write_bytes(b"")
    _drop(window, photos)
    assert window.statusBar().currentMessage().startswith("Drop one file or folder") and opened == [series]


def test_a_folder_with_several_series_asks_which(qtbot, window, monkeypatch, dialogs, ct_scan):
    series = [SimpleNamespace(uid="1.2.3", description="axial", modality="CT"), SimpleNamespace(uid="4.5.6", description="scout", modality="CT")]
    calls = []

    def fake_open(path, series_uid=None):
        calls.append(series_uid)
        return ct_scan if series_uid else series

    monkeypatch.setattr(jobs, "open_path", fake_open)
    dialogs.series_choice = "4.5.6"
    window.open_path(Path("folder"))
    qtbot.waitUntil(lambda: window.source_scan is ct_scan, timeout=TIMEOUT_MS)
    assert calls == [None, "4.5.6"] and dialogs.series_offered == series


def test_export_actions_call_the_engine_writer(qtbot, with_tiny_model, monkeypatch, ct_scan, dialogs, tmp_path):
    import aimedx_desktop.engine.io.export as export_module
    import aimedx_desktop.engine.io.output as output_module

    win = with_tiny_model
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    convert(qtbot, win)
    out = tmp_path / "out"
    calls = []

    def fake_export(scan, out_dir, **options):
        calls.append((scan, Path(out_dir), options))
        return output_module.planned_paths(scan, out_dir, options["fmt"])

    monkeypatch.setattr(export_module, "export_scan", fake_export)
    win.synthetic_viewer.set_window(Window(300, 600))
    dialogs.export_request = ExportRequest("png", out, bits=8, window=(300.0, 600.0))
    assert win.export("png")
    wait_idle(qtbot, win)
    scan, out_dir, options = calls[0]
    assert scan is win.synthetic_scan and out_dir == out
    assert options["window"] == (300.0, 600.0) and options["bits"] == 8 and not options["overwrite"]

    out.mkdir()
    existing = output_module.planned_paths(scan, out, "dicom")[0]
    existing.write_bytes(b"old")
    dialogs.export_request = ExportRequest("dicom", out, deidentify=True)
    dialogs.overwrite_answer = False
    assert not win.export("dicom")
    assert dialogs.overwrite_asked == [[existing]] and len(calls) == 1
    dialogs.overwrite_answer = True
    assert win.export("dicom")
    wait_idle(qtbot, win)
    assert calls[1][2]["fmt"] == "dicom" and calls[1][2]["deidentify"] and calls[1][2]["overwrite"]
    assert not dialogs.errors


def test_settings_persist_across_windows(qtbot, tmp_path, monkeypatch, dialogs):
    monkeypatch.setenv("AIMEDX_RESOURCES", str(tmp_path / "resources"))
    path = tmp_path / "persist.ini"
    first = ui_app.create_window(settings_at(path), dialogs)
    qtbot.addWidget(first)
    first.link_action.trigger()
    first.overlay_action.trigger()
    first.settings.add_recent(tmp_path / "a.dcm")
    first.settings.notice_accepted = True
    first.close()
    second = ui_app.create_window(settings_at(path), dialogs)
    qtbot.addWidget(second)
    assert not second.link_action.isChecked() and not second.overlay_action.isChecked()
    assert second.settings.recent_files == [str(tmp_path / "a.dcm")] and second.settings.notice_accepted
    assert not second.source_viewer.corner["top_left"].isVisible()
    second._fill_recent_menu()
    assert str(tmp_path / "a.dcm") in [a.text() for a in second.recent_menu.actions()]


def test_help_and_model_card(qtbot, with_tiny_model, dialogs):
    with_tiny_model.show_model_card()
    title, text = dialogs.texts[-1]
    assert "tiny-test" in title and '"intensity"' in text
    with_tiny_model.show_about()
    assert "offline" in dialogs.infos[-1][1].lower() and "not for diagnosis" in dialogs.infos[-1][1].lower()
    with_tiny_model.show_shortcuts()
    assert "PgDown" in dialogs.texts[-1][1]


# --- with the real readers and data (a broken engine import fails these, never skips them) ---
def test_opens_and_converts_a_real_dicom_file(qtbot, with_tiny_model, bundled_samples):
    win = with_tiny_model
    path = bundled_samples / "head_ct_ge" / "05.dcm"
    win.open_path(path)
    wait_idle(qtbot, win)
    assert not win.dialogs.errors, win.dialogs.errors
    scan = win.source_scan
    assert scan is not None and scan.modality is Modality.CT and scan.shape[1:] == (512, 512)
    assert "HU" in win.source_viewer.format_value(0.0)
    convert(qtbot, win)
    assert win.synthetic_scan is not None and win.synthetic_scan.modality is Modality.MR


def test_a_corrupt_file_shows_the_error_dialog(qtbot, window, dialogs, tmp_path):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"DICM" + bytes(range(256)) * 4)
    window.open_path(bad)
    wait_idle(qtbot, window)
    assert len(dialogs.errors) == 1
    title, text = dialogs.errors[0]
    assert str(bad) in text and "Traceback" not in text
    assert window.source_scan is None


def test_the_bundled_sample_opens_at_start(qtbot, window, bundled_samples, tmp_path, monkeypatch):
    samples = tmp_path / "resources" / "samples"
    samples.mkdir(parents=True)
    shutil.copy(bundled_samples / "head_ct_ge" / "01.dcm", samples / "01.dcm")
    window.settings.last_dir = str(tmp_path / "my scans")
    assert ui_app.start(window, initial=None)
    wait_idle(qtbot, window)
    assert window.source_scan is not None and not window.dialogs.errors
    # opened at every start: it must not take the user's last folder and Recent list
    assert window.settings.last_dir == str(tmp_path / "my scans") and window.settings.recent_files == []


def test_the_application_carries_the_app_icon(qapp, monkeypatch):
    from aimedx_desktop.resources import resources_dir

    monkeypatch.delenv("AIMEDX_RESOURCES", raising=False)
    assert (resources_dir() / "icons" / "aimedx.png").is_file()
    assert not ui_app.application().windowIcon().isNull()


# --- faults: real bugs are logged, signals close cleanly, outputs are checked at once -------


def test_a_bug_in_a_job_is_logged_and_said_in_a_dialog(qtbot, window, monkeypatch, dialogs, log_home):
    def buggy_open(path, series_uid=None):
        return {}["no such key"]

    monkeypatch.setattr(jobs, "open_path", buggy_open)
    assert window.open_path(Path("scan.dcm"))
    wait_idle(qtbot, window)
    log = log_home / "aimedx.log"
    assert dialogs.errors == [
        ("Could not open the scan", f"{Path('scan.dcm').absolute()}\n\nSomething went wrong — details were saved to {log}")
    ]
    assert "KeyError: 'no such key'" in log.read_text() and "buggy_open" in log.read_text()


def test_a_user_error_in_a_job_is_not_logged(qtbot, window, dialogs, tmp_path, log_home):
    window.open_path(tmp_path / "missing.dcm")
    wait_idle(qtbot, window)
    assert dialogs.errors[0][1].endswith("missing.dcm: no such file or folder") and not log_home.exists()


def test_a_bug_in_the_ui_thread_is_logged_and_said_in_a_dialog(window, dialogs, monkeypatch, log_home):
    import sys

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    ui_app.report_bugs_in(window)
    try:
        window.navigate(None)  # a bug: None is not a function
    except TypeError as error:
        sys.excepthook(type(error), error, error.__traceback__)
    log = log_home / "aimedx.log"
    assert dialogs.errors == [("Something went wrong", f"Something went wrong — details were saved to {log}")]
    assert "TypeError" in log.read_text() and "in navigate" in log.read_text()


def test_a_file_given_at_the_first_start_opens_once_the_real_notice_is_accepted(qtbot, window, bundled_samples):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    window.dialogs = ui_dialogs.Dialogs(window)  # the real, modal notice
    accepted = []

    def accept_the_notice() -> None:
        boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
        if not boxes:
            QTimer.singleShot(50, accept_the_notice)
            return
        accepted.append(boxes[0].text())
        next(b for b in boxes[0].buttons() if b.text() == "I understand").click()

    QTimer.singleShot(0, accept_the_notice)
    path = bundled_samples / "head_mr" / "t2_brain_stroke.nii.gz"
    assert ui_app.start(window, initial=path)
    wait_idle(qtbot, window)
    assert accepted and "offline" in accepted[0] and window.settings.notice_accepted
    assert window.source_scan is not None and window.source_scan.provenance.source_paths == (str(path),)


def test_an_unusable_export_folder_is_refused_before_the_job(qtbot, with_tiny_model, monkeypatch, ct_scan, dialogs, tmp_path):
    win = with_tiny_model
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    convert(qtbot, win)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    dialogs.export_request = ExportRequest("png", blocker)
    assert not win.export("png") and not win.worker.busy
    assert dialogs.errors == [("Export failed", f"{blocker}\n\ncannot write to {blocker}: it is a file, not a folder")]


def test_a_terminating_signal_during_an_export_closes_the_window_without_staged_files(
    qtbot, with_tiny_model, monkeypatch, ct_scan, dialogs, tmp_path
):
    import os
    import signal

    win = with_tiny_model
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    convert(qtbot, win)
    staged, resume = threading.Event(), threading.Event()
    real_export = jobs.export

    def gated_export(scan, request, overwrite, progress, cancel):
        def gated_progress(done, total):
            progress(done, total)
            if done == 2:
                staged.set()
                resume.wait(10)

        return real_export(scan, request, overwrite, gated_progress, cancel)

    monkeypatch.setattr(jobs, "export", gated_export)
    monkeypatch.setattr(ui_main_window, "CLOSE_WAIT_MS", 20)
    out = tmp_path / "out"
    dialogs.export_request = ExportRequest("dicom", out)
    assert win.export("dicom")
    qtbot.waitUntil(staged.is_set, timeout=TIMEOUT_MS)
    assert len(list(out.glob(".synthetic_*.partial"))) == 2
    with ui_app.close_on_termination(win):
        os.kill(os.getpid(), signal.SIGTERM)
        qtbot.waitUntil(lambda: win._close_pending, timeout=TIMEOUT_MS)  # asked to close: the job is cancelled
        resume.set()
        qtbot.waitUntil(lambda: not win.isVisible(), timeout=TIMEOUT_MS)
    assert list(out.iterdir()) == [] and not dialogs.errors
    assert dialogs.confirmations == []  # the system is going down: nothing to ask


def test_ctrl_c_in_the_terminal_closes_the_window_and_is_recorded_for_the_exit_status(qtbot, window):
    """Python's own Ctrl-C raised KeyboardInterrupt in a slot: a traceback, and the app went on."""
    import os
    import signal

    window.show()
    received: list[int] = []
    with ui_app.close_on_termination(window, received):
        os.kill(os.getpid(), signal.SIGINT)
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=TIMEOUT_MS)
    assert received == [signal.SIGINT]


def test_quit_and_open_ask_before_an_unsaved_synthetic_image_is_lost(qtbot, with_tiny_model, monkeypatch, ct_scan, dialogs, tmp_path):
    win = with_tiny_model
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    win.show()
    convert(qtbot, win)
    assert win.synthetic_unsaved and dialogs.confirmations == []
    dialogs.confirm_answer = False
    assert not win.open_path(Path("other.dcm"))
    assert not win.close() and win.isVisible() and win.synthetic_scan is not None
    [(_, opening), (title, quitting)] = dialogs.confirmations
    assert "has been neither exported nor sent" in opening and opening.endswith("Open other.dcm and discard it?")
    assert title == "Quit AI-MEDX Desktop?" and "has been neither exported nor sent and will be lost" in quitting
    dialogs.export_request = ExportRequest("png", tmp_path / "out")
    assert win.export("png")
    wait_idle(qtbot, win)
    assert not win.synthetic_unsaved
    assert win.close() and len(dialogs.confirmations) == 2  # exported: nothing to ask


def test_quit_during_a_conversion_asks_and_no_keeps_it_running(qtbot, with_tiny_model, monkeypatch, ct_scan, dialogs):
    win = with_tiny_model
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    win.show()
    started, release = threading.Event(), threading.Event()
    real_convert = jobs.convert

    def gated_convert(*args):
        started.set()
        release.wait(10)
        return real_convert(*args)

    monkeypatch.setattr(jobs, "convert", gated_convert)
    assert win.convert()
    qtbot.waitUntil(started.is_set, timeout=TIMEOUT_MS)
    dialogs.confirm_answer = False
    assert not win.close() and win.worker.busy and not win._close_pending
    assert dialogs.confirmations == [
        ("Quit AI-MEDX Desktop?", "The conversion is still running and will be cancelled.\n\nQuit anyway?")
    ]
    release.set()
    wait_idle(qtbot, win)
    assert win.synthetic_scan is not None and win.isVisible()
    assert win.close_without_asking() and len(dialogs.confirmations) == 1


def test_a_cancel_too_late_to_stop_an_export_reports_the_files_it_wrote(qtbot, with_tiny_model, monkeypatch, ct_scan, dialogs, tmp_path):
    win = with_tiny_model
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    convert(qtbot, win)
    real_export = jobs.export

    def cancelled_after_the_last_file(scan, request, overwrite, progress, cancel):
        def late(done, total):
            progress(done, total)
            if done == total:
                cancel.cancel()  # Esc as the last file is written: nothing is left to stop

        return real_export(scan, request, overwrite, late, cancel)

    monkeypatch.setattr(jobs, "export", cancelled_after_the_last_file)
    dialogs.export_request = ExportRequest("png", tmp_path / "out")
    assert win.export("png")
    wait_idle(qtbot, win)
    assert len(list((tmp_path / "out").glob("synthetic_mr_*.png"))) == ct_scan.n_slices
    assert win.statusBar().currentMessage() == f"Wrote {ct_scan.n_slices} PNG file(s) to {tmp_path / 'out'}"
    assert not win.synthetic_unsaved


def test_a_terminating_signal_closes_a_dialog_that_opened_over_quits_question(qtbot, with_tiny_model, monkeypatch, ct_scan):
    """Real message boxes: Quit asks, a transfer fails meanwhile and its error opens on top, then
    the system asks the app to close. Nobody is there to answer either box."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    win = with_tiny_model
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    win.show()
    convert(qtbot, win)  # unsaved: Quit asks
    real = ui_dialogs.Dialogs(win)
    monkeypatch.setattr(win.dialogs, "confirm", real.confirm)
    left_open: list[str] = []

    def answer_what_is_left() -> None:  # only when the signal failed to close them
        while (dialog := QApplication.activeModalWidget()) is not None:
            left_open.append(dialog.windowTitle())
            dialog.close()

    timers = []
    for ms, act in ((200, lambda: real.error("Send failed", "the peer went away")), (600, win.close_without_asking),
                    (5000, answer_what_is_left)):
        timer = QTimer(win)
        timer.setSingleShot(True)
        timer.timeout.connect(act)
        timer.start(ms)
        timers.append(timer)
    win.close()
    qtbot.waitUntil(lambda: not win.isVisible(), timeout=TIMEOUT_MS)
    for timer in timers:
        timer.stop()
    assert left_open == []


def test_a_terminating_signal_while_quit_asks_closes_the_window(qtbot, with_tiny_model, monkeypatch, ct_scan, dialogs):
    win = with_tiny_model
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    win.show()
    convert(qtbot, win)

    def signal_arrives_during_the_question(title, text):
        dialogs.confirmations.append((title, text))
        win.close_without_asking()
        return False  # the question, closed by the signal, answers No

    monkeypatch.setattr(dialogs, "confirm", signal_arrives_during_the_question)
    win.close()
    assert not win.isVisible() and len(dialogs.confirmations) == 1  # the system asked to close: it closed


# --- the panes: readout, window boxes, series choice ----------------------------------------


def test_the_readout_follows_the_slice_under_a_resting_mouse(qtbot, window, monkeypatch, ct_scan):
    """Slice i of the phantom's brain is 35 + i HU."""
    open_in_memory(qtbot, window, monkeypatch, ct_scan)
    source = window.source_viewer
    source.set_index(3)
    source.cursorMoved.emit(24.0, 20.0)
    assert "source: 38 HU" in window.value_label.text()
    source.step(-2)  # the wheel or a key: the mouse stays where it was
    assert "source: 36 HU" in window.value_label.text()
    open_in_memory(qtbot, window, monkeypatch, dataclasses.replace(ct_scan, voxels=ct_scan.voxels + 500.0), name="other.dcm")
    assert f"source: {535 + window.source_viewer.index} HU" in window.value_label.text()  # the new scan's value


def test_while_converting_a_chosen_window_is_kept_and_the_direction_stays(qtbot, with_tiny_model, monkeypatch, ct_scan):
    win = with_tiny_model
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    first_batch, resume = gate_convert(monkeypatch)
    try:
        assert win.convert()
        qtbot.waitUntil(lambda: first_batch.is_set() and win.synthetic_viewer.is_ready(0), timeout=TIMEOUT_MS)
        assert not win.direction_box.isEnabled()  # a result must match the direction shown
        chosen = Window(300.0, 120.0)
        win.synthetic_viewer.set_window(chosen)
    finally:
        resume.set()
    wait_idle(qtbot, win)
    assert win.synthetic_scan is not None and win.synthetic_viewer.window == chosen
    assert win.direction_box.isEnabled()


def test_leaving_the_window_boxes_without_typing_keeps_a_narrow_window(qtbot, window, monkeypatch, ct_scan):
    """MR normalised to 0–0.022: one decimal showed every window as 0.0, and Tab applied that."""
    narrow = dataclasses.replace(ct_scan, modality=Modality.MR, voxels=(ct_scan.voxels + 1000.0) * 1e-5)
    open_in_memory(qtbot, window, monkeypatch, narrow)
    viewer = window.source_viewer
    before = viewer.window
    viewer.centre_box.editingFinished.emit()  # Tab, or a click elsewhere
    viewer.width_box.editingFinished.emit()
    assert viewer.window == before and viewer.width_box.value() == pytest.approx(before.width, rel=1e-2)
    assert viewer.window.label() == f"C {round(before.centre, 4):g} / W {round(before.width, 4):g}"
    viewer.width_box.setValue(round(before.width / 2, 4))
    viewer.width_box.editingFinished.emit()
    assert viewer.window.width == pytest.approx(before.width / 2, rel=1e-2)
    wide = dataclasses.replace(narrow, voxels=(ct_scan.voxels + 1000.0) * 200.0)  # wider than the boxes can show
    open_in_memory(qtbot, window, monkeypatch, wide, name="wide.nii")
    before = viewer.window
    viewer.width_box.editingFinished.emit()
    assert viewer.window == before and before.width > viewer.width_box.maximum()


def test_arrow_keys_in_a_window_box_step_the_value_not_the_slice(qtbot, window, monkeypatch, ct_scan):
    open_in_memory(qtbot, window, monkeypatch, ct_scan)
    window.show()
    viewer = window.source_viewer
    index, width = viewer.index, viewer.window.width
    viewer.width_box.setFocus()
    qtbot.waitUntil(viewer.width_box.hasFocus, timeout=TIMEOUT_MS)
    qtbot.keyClick(viewer.width_box, Qt.Key.Key_Up)
    assert viewer.index == index and viewer.width_box.value() == pytest.approx(width + 1.0)
    assert viewer.window.width == pytest.approx(width + 1.0)  # applied at once, not on some later focus change


def test_two_series_that_look_alike_can_each_be_chosen(qtbot, monkeypatch):
    """Repeat scans carry the same description and size: a choice by label opened the first."""
    alike = [SimpleNamespace(uid=f"1.2.3.{n}", modality="MR", description="T2 AX", n_slices=24) for n in (1, 2)]
    offered: list[str] = []

    def choose_the_second(parent, title, label, items, current, editable):
        offered.extend(items)
        return items[1], True

    monkeypatch.setattr(ui_dialogs.QInputDialog, "getItem", choose_the_second)
    assert ui_dialogs.Dialogs(None).choose_series(alike) == "1.2.3.2"
    assert len(set(offered)) == 2


def test_a_model_saved_again_over_its_folder_is_loaded_again(tmp_path, tiny_bundle_dir, uncertain_bundle_dir):
    """A retrained model re-imported from the same folder: Convert ran the old weights."""
    cache = jobs.TranslatorCache()
    folder = tmp_path / "model"
    shutil.copytree(tiny_bundle_dir, folder)
    assert cache.get(folder).bundle.name == "tiny-test"
    shutil.rmtree(folder)
    shutil.copytree(uncertain_bundle_dir, folder)
    assert cache.get(folder).bundle.name == "tiny-uncertain"


def test_choosing_the_direction_replaces_what_the_reader_guessed(tiny_bundle_dir, ct_scan):
    guessed = dataclasses.replace(ct_scan, modality=Modality.MR, warnings=("modality not stated; assuming MR",))
    result = jobs.convert(jobs.TranslatorCache(), tiny_bundle_dir, guessed, Modality.CT, lambda *_: None, None, lambda *_: None)
    assert result.modality is Modality.MR and not any(w.startswith("modality not stated") for w in result.warnings)
    assert "read as CT, as chosen in the window (the reader had MR)" in result.warnings
