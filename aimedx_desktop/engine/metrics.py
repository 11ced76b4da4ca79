"""Image-quality metrics inside a head/body mask, SynthRAD style.

MAE and the mean (signed) error are in the images' own units (HU for CT). PSNR uses the
contract's data range. SSIM is the standard Gaussian-window SSIM (sigma 1.5, K1 0.01, K2 0.03,
as in Wang et al. 2004 and scikit-image's `gaussian_weights=True`), computed over the whole image
and averaged inside the mask.
Rank statistics (Spearman, AUROC) score how well an uncertainty map orders the real errors.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)
"""The Gaussian window reaches this many pixels from its centre."""
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def mae(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error inside the mask."""
    return float(np.abs(_masked_difference(prediction, target, mask)).mean())


def mean_error(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean signed error inside the mask: the systematic offset (positive: the prediction is high)."""
    return float(_masked_difference(prediction, target, mask).mean())


def psnr(prediction: np.ndarray, target: np.ndarray, data_range: float, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB, the mean squared error taken inside the mask."""
    mse = float((_masked_difference(prediction, target, mask) ** 2).mean())
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def _masked_difference(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """prediction - target in float64, at the masked pixels (all pixels without a mask)."""
    diff = np.asarray(prediction, np.float64) - np.asarray(target, np.float64)
    return diff[_mask(mask, diff)]


def ssim(prediction: np.ndarray, target: np.ndarray, data_range: float, mask: np.ndarray | None = None) -> float:
    """Mean structural similarity inside the mask (Gaussian window, sigma 1.5, truncated at 3.5 sigma)."""
    ssim_map = ssim_map_of(prediction, target, data_range)
    return float(ssim_map[_mask(mask, ssim_map)].mean())


def ssim_map_of(prediction: np.ndarray, target: np.ndarray, data_range: float) -> np.ndarray:
    """The per-pixel SSIM map of two 2-D images, in float64."""
    x = torch.from_numpy(np.asarray(prediction, np.float64))[None, None]
    y = torch.from_numpy(np.asarray(target, np.float64))[None, None]
    return ssim_map_tensor(x, y, data_range)[0, 0].numpy()


def ssim_map_tensor(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """Per-pixel SSIM of (batch, 1, h, w) tensors, differentiable (training uses it as a loss).

    Edges are padded symmetrically, as scipy's (and scikit-image's) 'reflect'.
    """
    radius = SSIM_RADIUS
    kernel1d = torch.exp(-(torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device) ** 2) / (2 * SSIM_SIGMA**2))
    kernel1d = kernel1d / kernel1d.sum()

    def blur(image: torch.Tensor) -> torch.Tensor:
        rows = F.conv2d(_symmetric_pad(image, radius), kernel1d.view(1, 1, -1, 1))
        return F.conv2d(rows, kernel1d.view(1, 1, 1, -1))

    mu_x, mu_y = blur(x), blur(y)
    # Sample covariance as in scikit-image (use_sample_covariance=True): n / (n - 1) correction.
    n = (2 * radius + 1) ** 2
    correction = n / (n - 1)
    var_x = correction * (blur(x * x) - mu_x**2)
    var_y = correction * (blur(y * y) - mu_y**2)
    cov = correction * (blur(x * y) - mu_x * mu_y)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return numerator / denominator


def _symmetric_pad(image: torch.Tensor, radius: int) -> torch.Tensor:
    """Pad the last two axes by mirroring with the edge sample repeated (numpy's 'symmetric')."""
    for axis in (-1, -2):
        remaining = radius
        while remaining > 0:  # an image narrower than the radius is mirrored in several passes, as numpy does
            step = min(remaining, image.shape[axis])
            before = image.narrow(axis, 0, step).flip(axis)
            after = image.narrow(axis, image.shape[axis] - step, step).flip(axis)
            image = torch.cat([before, image, after], axis)
            remaining -= step
    return image


def head_mask(image: np.ndarray, threshold: float, closing_radius: int = 3) -> np.ndarray:
    """The head/body: pixels above `threshold`, closed, with interior holes filled.

    Filling floods the background from the border; whatever it cannot reach is inside the head,
    so dark interior structures (sinuses, ventricles) stay in the mask.
    """
    mask = torch.from_numpy(np.asarray(image) > threshold)[None, None].float()
    size = 2 * closing_radius + 1
    dilated = F.max_pool2d(mask, size, stride=1, padding=closing_radius)
    closed = 1.0 - F.max_pool2d(1.0 - dilated, size, stride=1, padding=closing_radius)
    outside = torch.zeros_like(closed)
    outside[..., 0, :] = outside[..., -1, :] = outside[..., :, 0] = outside[..., :, -1] = 1.0
    outside = outside * (1.0 - closed)
    while True:
        grown = F.max_pool2d(outside, 3, stride=1, padding=1) * (1.0 - closed)
        if torch.equal(grown, outside):
            break
        outside = grown
    return (outside[0, 0] == 0).numpy()


def dice(first: np.ndarray, second: np.ndarray) -> float:
    """Dice overlap of two masks (1.0 when both are empty)."""
    first, second = np.asarray(first, dtype=bool), np.asarray(second, dtype=bool)
    total = int(first.sum()) + int(second.sum())
    return 1.0 if total == 0 else 2.0 * int((first & second).sum()) / total


def _mask(mask: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    if mask is None:
        return np.ones(like.shape, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("the evaluation mask is empty")
    return mask


def pearson(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Pearson correlation inside the mask (0 when either side is constant there)."""
    x = np.asarray(prediction, np.float64)
    keep = _mask(mask, x)
    x, y = x[keep], np.asarray(target, np.float64)[keep]
    x, y = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their mean rank (as scipy.stats.rankdata's 'average')."""
    flat = np.asarray(values).ravel()
    _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - (counts - 1) / 2.0)[inverse]).astype(np.float64)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation of two equally long samples."""
    return pearson(average_ranks(x), average_ranks(y))


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for finding the `positive` items (Mann–Whitney U)."""
    positive = np.asarray(positive, bool).ravel()
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both positive and negative items")
    ranks = average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
