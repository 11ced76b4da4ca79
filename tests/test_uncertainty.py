"""The uncertainty output: declared by the card, returned by the Translator in the target's units,
scored and calibrated by evaluate, exported beside the synthetic series."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from aimedx_desktop.cli import main
from aimedx_desktop.engine import metrics
from aimedx_desktop.engine.bundle import UNCERTAINTY, load_bundle, uncertainty_card
from aimedx_desktop.engine.datasets import paired_slices
from aimedx_desktop.engine.errors import UserError
from aimedx_desktop.engine.evaluation import calibrate_uncertainty, evaluate
from aimedx_desktop.engine.io import read_scan
from aimedx_desktop.engine.io.export import ExportError, export_scan
from aimedx_desktop.engine.scan import Modality
from aimedx_desktop.engine.translator import Translator
from test_export_dicom import assert_valid

def test_spearman_and_auroc_against_hand_computed_values():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert metrics.spearman(x, x**3) == pytest.approx(1.0)
    assert metrics.spearman(x, -x) == pytest.approx(-1.0)
    # ties share their mean rank: ranks (1.5, 1.5, 3) against (1, 2, 3) → r = 0.866
    assert metrics.spearman(np.array([0.0, 0.0, 1.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(np.sqrt(3) / 2)
    assert metrics.auroc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert metrics.auroc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    # one positive (0.5) above one of the two negatives (0.4, 0.6): AUROC 1/2
    assert metrics.auroc(np.array([0.4, 0.5, 0.6]), np.array([0, 1, 0])) == 0.5
    with pytest.raises(ValueError):
        metrics.auroc(np.array([0.1, 0.2]), np.array([1, 1]))


def test_translator_gives_the_map_in_the_target_units_scaled_by_the_calibration(uncertain_bundle_dir, ct_scan):
    bundle = load_bundle(uncertain_bundle_dir)
    for generator in bundle.generators.values():  # a head that always says log b = -2
        last = generator.uncertainty_head[-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.constant_(last.bias, -2.0)
    bundle.card["outputs"][UNCERTAINTY] = uncertainty_card({"mr2ct": 1.5, "ct2mr": 3.0})
    translator = Translator(bundle, device="cpu")
    mr = translator.translate(ct_scan)
    head = ct_scan.voxels > -500  # the phantom's anatomy; the map fades to 0 only well beyond it
    # CT→MR: synthetic MR is written on 0..1000, i.e. 500 units per unit of the model's [-1, 1]
    np.testing.assert_allclose(mr.maps[UNCERTAINTY][head], 3.0 * np.exp(-2.0) * 500.0, rtol=1e-5)
    ct = translator.translate(dataclasses.replace(mr, voxels=np.where(head, 600.0, 0.0)))
    # MR→CT: the contract's window [-40, 150] HU spans 95 HU per model unit
    np.testing.assert_allclose(ct.maps[UNCERTAINTY][head], 1.5 * np.exp(-2.0) * 95.0, rtol=1e-5)
    assert ct.maps[UNCERTAINTY].shape == ct.voxels.shape and ct.maps[UNCERTAINTY].min() >= 0


def test_the_map_is_zero_far_from_the_anatomy(uncertain_bundle_dir, ct_scan):
    from aimedx_desktop.engine.preprocess import near_anatomy

    image = torch.full((1, 64, 64), -1.0)
    image[0, 32, 20] = 0.5
    near = near_anatomy(image, 3)[0]
    assert near.sum() == 49 and near[29:36, 17:24].all()
    scattered = torch.where(torch.rand((2, 64, 48), generator=torch.Generator().manual_seed(0)) > 0.995, 0.5, -1.0)
    square_window = torch.nn.functional.max_pool2d((scattered > -0.9).float()[:, None], 7, 1, 3)[:, 0]
    torch.testing.assert_close(near_anatomy(scattered, 3), square_window, rtol=0, atol=0)
    small_head = ct_scan.voxels.copy()
    small_head[:, :, :] = -1000.0
    small_head[:, 20:24, 18:22] = 40.0  # a 4-pixel anatomy in a 48 x 40 slice of air
    synthetic = Translator(load_bundle(uncertain_bundle_dir), device="cpu").translate(
        dataclasses.replace(ct_scan, voxels=small_head)
    )
    sigma = synthetic.maps[UNCERTAINTY]
    assert (sigma[:, 20:24, 18:22] > 0).all() and (sigma[:, :2, :2] == 0).all()


def test_a_model_without_the_output_gives_no_map(tiny_bundle, ct_scan):
    assert Translator(tiny_bundle, device="cpu").translate(ct_scan).maps == {}
    assert tiny_bundle.uncertainty(Modality.CT) is None


@pytest.mark.parametrize(
    "calibration", [{"scale": {"mr2ct": -1.0}}, {"scale": {"ct2mr": float("nan")}}, {"scale": {"ct2mr": 1e308}},
                    {"scale": 2.0}, {"nominal_coverage": 1.5}]
)
def test_a_card_with_a_broken_calibration_is_refused(uncertain_bundle_dir, tmp_path, calibration):
    import shutil

    from aimedx_desktop.engine.bundle import BundleError

    broken = Path(shutil.copytree(uncertain_bundle_dir, tmp_path / "broken"))
    card = json.loads((broken / "model_card.json").read_text())
    card["outputs"][UNCERTAINTY]["calibration"].update(calibration)
    (broken / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="uncertainty"):
        load_bundle(broken)


def _phantom_pairs(root: Path, n: int = 3) -> tuple[Path, Path]:
    rng = np.random.default_rng(7)
    rows, cols = np.mgrid[:64, :64]
    for side in ("CT", "MR"):
        (root / side).mkdir(parents=True)
    for i in range(n):
        r = np.hypot((rows - 32) / 24, (cols - 32) / 20)
        ct = np.where(r < 0.85, 100, np.where(r < 1.0, 255, 0)) + rng.normal(0, 5, r.shape) * (r < 1)
        mr = np.where(r < 0.85, 150 - 50 * r, np.where(r < 1.0, 20, 0)) + rng.normal(0, 5, r.shape) * (r < 1)
        Image.fromarray(np.clip(ct, 0, 255).astype(np.uint8)).save(root / "CT" / f"{i:05d}.png")
        Image.fromarray(np.clip(mr, 0, 255).astype(np.uint8)).save(root / "MR" / f"{i:05d}.png")
    return root / "CT", root / "MR"


def test_evaluate_scores_the_map_and_calibration_makes_coverage_nominal(uncertain_bundle_dir, tmp_path):
    ct, mr = _phantom_pairs(tmp_path)
    bundle = load_bundle(uncertain_bundle_dir)
    pairs = paired_slices(sorted(ct.iterdir()), sorted(mr.iterdir()), bundle.contract)
    result = evaluate(bundle, pairs, device="cpu")
    for direction in ("mr2ct", "ct2mr"):
        figures = result[direction]["uncertainty"]
        assert -1.0 <= figures["spearman"] <= 1.0 and 0.0 <= figures["auroc_worst10"] <= 1.0
        assert figures["pixels"] > 1000
    calibrate_uncertainty(bundle, result, "the phantom pairs", len(pairs))
    assert bundle.card["outputs"]["uncertainty"]["calibration"]["pairs"] == len(pairs)
    recalibrated = evaluate(bundle, pairs, device="cpu")
    for direction in ("mr2ct", "ct2mr"):
        assert recalibrated[direction]["uncertainty"]["coverage"] == pytest.approx(0.6827, abs=0.01)
        # ranking does not depend on the scale (up to float32 rounding, which can tie neighbours)
        assert recalibrated[direction]["uncertainty"]["spearman"] == pytest.approx(
            result[direction]["uncertainty"]["spearman"], abs=1e-5
        )


def test_calibrate_and_record_store_the_coverage_of_the_new_calibration(uncertain_bundle_dir, tmp_path, capsys):
    ct, mr = _phantom_pairs(tmp_path / "pairs")
    model = tmp_path / "model"
    shutil.copytree(uncertain_bundle_dir, model)
    assert main(["evaluate", "--model", str(model), "--ct", str(ct), "--mr", str(mr), "--calibrate", "--record",
                 "--device", "cpu"]) == 0
    recorded = load_bundle(model).card["metrics"]
    for direction in ("mr2ct", "ct2mr"):
        assert recorded[direction]["uncertainty"]["coverage"] == pytest.approx(0.6827, abs=0.01)


def test_calibrating_a_model_without_the_output_is_refused(tiny_bundle):
    with pytest.raises(UserError, match="no uncertainty output"):
        calibrate_uncertainty(tiny_bundle, {}, "", 0)


def test_dicom_export_writes_a_valid_uncertainty_series_referencing_the_synthetic_one(
    tmp_path, bundled_samples, uncertain_bundle_dir
):
    source = read_scan(bundled_samples / "head_ct_ge")
    synthetic = Translator(load_bundle(uncertain_bundle_dir), device="cpu").translate(source)
    written = export_scan(synthetic, tmp_path / "out", fmt="dicom", uncertainty=True, deidentify=True)
    images = sorted((tmp_path / "out").glob("synthetic_mr_0*.dcm"))
    maps = sorted((tmp_path / "out").glob("synthetic_mr_uncertainty_*.dcm"))
    assert len(images) == len(maps) == source.n_slices and len(written) == 2 * source.n_slices
    assert_valid([maps[0], maps[-1]])
    image, uncertainty = pydicom.dcmread(images[3]), pydicom.dcmread(maps[3])
    assert uncertainty.SeriesDescription.startswith("UNCERTAINTY of SYNTHETIC MR - NOT FOR DIAGNOSIS")
    assert "UNCERTAINTY of the SYNTHETIC MR" in uncertainty.DerivationDescription
    assert uncertainty.SeriesInstanceUID != image.SeriesInstanceUID
    for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        assert uncertainty[keyword].value == image[keyword].value, keyword
    reference = uncertainty.SourceImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == image.SOPInstanceUID  # de-identified consistently
    np.testing.assert_allclose(uncertainty.pixel_array, np.rint(synthetic.maps[UNCERTAINTY][3]), atol=1)


def test_png_export_writes_the_map_as_16_bit_with_units(tmp_path, uncertain_bundle_dir, ct_scan):
    synthetic = Translator(load_bundle(uncertain_bundle_dir), device="cpu").translate(ct_scan)
    export_scan(synthetic, tmp_path, fmt="png", uncertainty=True)
    image = Image.open(tmp_path / "synthetic_mr_uncertainty_0002.png")
    assert image.mode.startswith("I;16") or image.mode == "I"
    assert image.text["Units"] == "arbitrary units" and image.text["Output"].startswith("uncertainty")
    assert image.text["Disclaimer"].startswith("UNCERTAINTY of SYNTHETIC MR, NOT FOR DIAGNOSIS")
    values = np.asarray(image, np.float64) * float(image.text["RescaleSlope"]) + float(image.text["RescaleIntercept"])
    np.testing.assert_allclose(values, synthetic.maps[UNCERTAINTY][1], atol=float(image.text["RescaleSlope"]))


def test_exporting_a_map_the_model_does_not_give_is_refused(tmp_path, tiny_bundle, ct_scan):
    synthetic = Translator(tiny_bundle, device="cpu").translate(ct_scan)
    with pytest.raises(ExportError, match="no uncertainty map"):
        export_scan(synthetic, tmp_path, uncertainty=True)
    assert list(tmp_path.iterdir()) == []


def test_convert_uncertainty_with_a_model_without_it_stops_before_translating(tmp_path, tiny_bundle_dir, bundled_samples, capsys):
    code = main(["convert", str(bundled_samples / "head_ct_ge"), "--out", str(tmp_path / "o"), "--uncertainty",
                 "--model", str(tiny_bundle_dir)])
    assert code == 1 and "gives no uncertainty map" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_convert_uncertainty_cli_end_to_end(tmp_path, uncertain_bundle_dir, bundled_samples):
    nifti = bundled_samples / "head_mr" / "t2_brain_stroke.nii.gz"
    assert main(["convert", str(nifti), "--input-modality", "mr", "--out", str(tmp_path / "o"), "--uncertainty",
                 "--model", str(uncertain_bundle_dir), "--format", "png"]) == 0
    assert len(list((tmp_path / "o").glob("synthetic_ct_uncertainty_*.png"))) == len(list((tmp_path / "o").glob("synthetic_ct_0*.png")))


def test_the_benchmark_times_the_same_image_weights_without_the_head(uncertain_bundle_dir):
    from aimedx_desktop.engine.benchmark import image_only

    bundle = load_bundle(uncertain_bundle_dir)
    plain = image_only(bundle)
    assert not plain.has_uncertainty and bundle.has_uncertainty
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        both = bundle.generators["mr2ct"](x)
        image = plain.generators["mr2ct"](x)
    assert both.shape[1] == 2 and image.shape[1] == 1
    torch.testing.assert_close(image, both[:, :1])


def test_info_shows_the_uncertainty_calibration(uncertain_bundle_dir, capsys):
    assert main(["info", "--model", str(uncertain_bundle_dir)]) == 0
    assert "uncertainty calibration: scale mr2ct 1, ct2mr 1 for 68.3 % coverage" in capsys.readouterr().out
