"""Where the app finds its bundled sample."""

from __future__ import annotations

from aimedx_desktop.resources import default_sample


def test_the_sample_is_a_ct_series_folder_first(tmp_path):
    (tmp_path / "README.md").write_text("")
    (tmp_path / "scan.nii.gz").write_bytes(b"")
    (tmp_path / "head_mr").mkdir()
    (tmp_path / "head_ct_ge").mkdir()
    assert default_sample(tmp_path) == tmp_path / "head_ct_ge"
    (tmp_path / "head_ct_ge").rmdir()
    assert default_sample(tmp_path) == tmp_path / "head_mr"
    (tmp_path / "head_mr").rmdir()
    assert default_sample(tmp_path) == tmp_path / "scan.nii.gz"


def test_no_sample_is_none(tmp_path):
    (tmp_path / ".hidden").mkdir()
    assert default_sample(tmp_path) is None
    assert default_sample(tmp_path / "absent") is None
