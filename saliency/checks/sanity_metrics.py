"""The sanity check's metrics between an original map and another (Adebayo et al. 2018):
``spearman_abs`` and ``spearman`` (rank correlation of the channel-summed |map| and of the
channel-summed signed map), ``ssim`` (window 5) and ``hog`` (Pearson correlation of HOG features,
16-pixel cells) on min-max normalized |map|. Each map's features are computed once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

METRICS = ("spearman_abs", "spearman", "ssim", "hog")


def reduce_abs(maps: torch.Tensor) -> np.ndarray:
    """(C, H, W) -> (H, W): |map| summed over channels, float64."""
    return maps.detach().double().abs().sum(0).cpu().numpy()


def reduce_signed(maps: torch.Tensor) -> np.ndarray:
    """(C, H, W) -> (H, W): the map summed over channels, float64."""
    return maps.detach().double().sum(0).cpu().numpy()


def _unit(values: np.ndarray) -> np.ndarray:
    """Min-max normalized to [0, 1]; a constant map becomes all zero."""
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two centred vectors; 0 if either is constant."""
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def _ranks(values: np.ndarray) -> np.ndarray:
    """Centred ranks (ties get average ranks, as SciPy's ``rankdata``), for the Spearman
    correlation. NumPy's sort, not SciPy's: importing ``scipy.stats`` alone took 0.4 s of
    every evaluation's and sanity check's start."""
    flat = np.asarray(values).ravel()
    if np.isnan(flat).any():  # as SciPy: no ranks, so no correlation
        return np.full(flat.size, np.nan)
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # each run of ties
    ends = np.r_[first[1:], flat.size]
    ranks = np.empty(flat.size)
    ranks[order] = np.repeat((first + ends + 1) / 2.0, ends - first)  # ranks first+1 .. ends
    return ranks - ranks.mean()


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (ties get average ranks); 0 if either is
    constant."""
    return _correlation(_ranks(a), _ranks(b))


def _hog(unit: np.ndarray) -> np.ndarray:
    """Centred HOG features (16-pixel cells; maps under 32 pixels get smaller cells)."""
    from skimage.feature import hog

    cell = max(1, min(16, min(unit.shape) // 2))
    features = hog(unit, pixels_per_cell=(cell, cell), cells_per_block=(2, 2), feature_vector=True)
    return features - features.mean()


@dataclass(frozen=True)
class MapFeatures:
    """What the metrics need of one map (C, H, W), computed once: the ranks of its channel-summed
    |map| and signed map, its min-max normalized |map|, and that one's HOG features."""

    abs_ranks: np.ndarray
    signed_ranks: np.ndarray
    unit: np.ndarray
    hog: np.ndarray

    @classmethod
    def of(cls, maps: torch.Tensor) -> MapFeatures:
        """The features of ``maps``."""
        unit = _unit(reduce_abs(maps))
        return cls(_ranks(reduce_abs(maps)), _ranks(reduce_signed(maps)), unit, _hog(unit))


def compare_features(original: MapFeatures, other: MapFeatures) -> dict[str, float]:
    """Every metric of :data:`METRICS` between two maps' features (maps of the same shape)."""
    from skimage.metrics import structural_similarity

    return {
        "spearman_abs": _correlation(original.abs_ranks, other.abs_ranks),
        "spearman": _correlation(original.signed_ranks, other.signed_ranks),
        "ssim": float(structural_similarity(original.unit, other.unit, win_size=5, data_range=1.0)),
        "hog": _correlation(original.hog, other.hog),
    }


def compare_maps(original: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """Every metric of :data:`METRICS` between two maps (C, H, W) of the same shape."""
    return compare_features(MapFeatures.of(original), MapFeatures.of(other))
