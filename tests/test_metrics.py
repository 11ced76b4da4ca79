"""Metrics against scikit-image and against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aimedx_desktop.engine import metrics


@pytest.fixture
def image_pair():
    rng = np.random.default_rng(7)
    rows, cols = np.mgrid[:96, :80]
    target = 100.0 * np.sin(rows / 9.0) * np.cos(cols / 7.0) + 40.0
    prediction = target + rng.normal(0.0, 15.0, target.shape)
    return prediction, target


def test_ssim_agrees_with_scikit_image(image_pair):
    skimage_metrics = pytest.importorskip("skimage.metrics")
    prediction, target = image_pair
    reference, reference_map = skimage_metrics.structural_similarity(
        prediction, target, data_range=300.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=True, full=True
    )
    ours = metrics.ssim_map_of(prediction, target, 300.0)
    assert np.allclose(ours, reference_map, atol=1e-3)
    interior = np.zeros(ours.shape, bool)
    interior[5:-5, 5:-5] = True  # scikit-image's mean leaves out a border of half a window
    assert metrics.ssim(prediction, target, 300.0, interior) == pytest.approx(reference, abs=1e-3)


def test_psnr_agrees_with_scikit_image(image_pair):
    skimage_metrics = pytest.importorskip("skimage.metrics")
    prediction, target = image_pair
    reference = skimage_metrics.peak_signal_noise_ratio(target, prediction, data_range=300.0)
    assert metrics.psnr(prediction, target, 300.0) == pytest.approx(reference, abs=1e-6)


def _ssim_map_by_hand(x: np.ndarray, y: np.ndarray, data_range: float) -> np.ndarray:
    """SSIM written out: numpy's symmetric padding, a 2-D Gaussian window applied pixel by pixel."""
    radius = 5
    offsets = np.arange(-radius, radius + 1)
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()

    def blur(image: np.ndarray) -> np.ndarray:
        padded = np.pad(image, radius, mode="symmetric")
        return np.array([[(padded[r:r + 2 * radius + 1, c:c + 2 * radius + 1] * window).sum()
                          for c in range(image.shape[1])] for r in range(image.shape[0])])

    n = window.size
    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y = (blur(x * x) - mu_x**2) * n / (n - 1), (blur(y * y) - mu_y**2) * n / (n - 1)
    cov = (blur(x * y) - mu_x * mu_y) * n / (n - 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return (2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def test_the_batched_ssim_map_matches_ssim_written_out_even_below_the_window():
    rng = np.random.default_rng(1)
    for side in (3, 17):  # 3 px: narrower than the window's radius, padded in several passes
        x, y = rng.random((2, side, side + 2)), rng.random((2, side, side + 2))
        batched = metrics.ssim_map_tensor(torch.from_numpy(x)[:, None], torch.from_numpy(y)[:, None], 1.0)[:, 0].numpy()
        for index in range(2):
            np.testing.assert_allclose(batched[index], _ssim_map_by_hand(x[index], y[index], 1.0), rtol=1e-9)


def test_hand_computed_values():
    target = np.zeros((4, 4))
    prediction = np.zeros((4, 4))
    prediction[0, 0] = 4.0
    mask = np.zeros((4, 4), bool)
    mask[0, :2] = True
    assert metrics.mae(prediction, target) == 0.25
    assert metrics.mae(prediction, target, mask) == 2.0
    assert metrics.mean_error(prediction, target, mask) == 2.0 and metrics.mean_error(target, prediction, mask) == -2.0
    assert metrics.psnr(prediction, target, 10.0, mask) == pytest.approx(10 * math.log10(100 / 8.0))
    assert metrics.psnr(target, target, 10.0) == math.inf
    assert metrics.ssim(target + 5.0, target + 5.0, 10.0) == pytest.approx(1.0)


def test_dice_of_half_overlapping_squares_is_one_half():
    first, second = np.zeros((8, 8), bool), np.zeros((8, 8), bool)
    first[:4, :4] = True
    second[:4, 2:6] = True
    assert metrics.dice(first, second) == 0.5
    assert metrics.dice(first, first) == 1.0
    assert metrics.dice(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0


def test_empty_mask_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        metrics.mae(np.zeros((3, 3)), np.zeros((3, 3)), np.zeros((3, 3), bool))


def test_head_mask_fills_dark_interior_but_not_background():
    rows, cols = np.mgrid[:64, :64]
    radius = np.hypot(rows - 32, cols - 32)
    image = np.where(radius < 24, 100.0, 0.0)
    image[radius < 8] = 0.0  # a dark ventricle inside the head
    mask = metrics.head_mask(image, threshold=10.0)
    assert mask[32, 32] and mask[32, 50]
    assert not mask[2, 2] and not mask[32, 60]
    assert abs(mask.sum() - (radius < 24).sum()) < 40
