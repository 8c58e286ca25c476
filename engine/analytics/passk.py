"""Coverage: the unbiased pass@k of Chen et al. (2021) for every k, and its bootstrap band."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Below this k every value is reported; above it the curve is sampled log-evenly.
DENSE_UP_TO = 100
#: Points per decade of k above DENSE_UP_TO.
PER_DECADE = 40


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k) for one problem: the chance that k of its n samples, drawn
    without replacement, include a correct one."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    return float(pass_at_k_curve(n, c)[k - 1])


def pass_at_k_curve(n: int, c: int, k_max: int | None = None) -> FloatArray:
    """pass@k for k = 1..k_max (default n) at once.

    C(n-c, k)/C(n, k) = prod_{j<k} (1 - c/(n-j)); summing log1p of the factors keeps the
    product exact to rounding even at n = 10,000, where the binomials themselves overflow."""
    k_max = n if k_max is None else k_max
    if not 1 <= k_max <= n:
        raise ValueError(f"k must stay within 1..n={n}, got {k_max}")
    if c == 0:
        return np.zeros(k_max)
    out = np.ones(k_max)
    m = min(k_max, n - c)  # beyond k = n - c every k-subset holds a correct sample
    if m > 0:
        j = np.arange(m, dtype=np.float64)
        out[:m] = -np.expm1(np.cumsum(np.log1p(-c / (n - j))))
    return out


def curves(n: IntArray, c: IntArray, ks: IntArray) -> FloatArray:
    """Per-problem pass@k at the given k (problems x k); NaN where k > that problem's n.

    Problems sharing (n, c) share one computation: with many problems and a large n most
    pairs repeat."""
    n = np.asarray(n, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    ks = np.asarray(ks, dtype=np.int64)
    out = np.full((len(n), len(ks)), np.nan)
    pairs, inverse = np.unique(np.stack([n, c], axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for u, (nu, cu) in enumerate(pairs):
        valid = ks <= nu
        if not valid.any():
            continue
        full = pass_at_k_curve(int(nu), int(cu), int(ks[valid].max()))
        out[inverse == u, :] = np.where(valid, full[np.minimum(ks, nu) - 1], np.nan)
    return out


def mean_curve(n: IntArray, c: IntArray) -> FloatArray:
    """Coverage at every k from 1 to the smallest n: the mean of the per-problem curves,
    summed over distinct (n, c) pairs without building the problems x k matrix."""
    n = np.asarray(n, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    k_max = int(n.min())
    total = np.zeros(k_max)
    pairs, counts = np.unique(np.stack([n, c], axis=1), axis=0, return_counts=True)
    for (nu, cu), count in zip(pairs, counts, strict=True):
        if cu > 0:
            total += count * pass_at_k_curve(int(nu), int(cu), k_max)
    return total / len(n)


def k_grid(n: int) -> IntArray:
    """Every k up to DENSE_UP_TO, then PER_DECADE log-spaced points up to and including n."""
    dense = np.arange(1, min(n, DENSE_UP_TO) + 1)
    if n <= DENSE_UP_TO:
        return dense.astype(np.int64)
    decades = np.log10(n) - np.log10(DENSE_UP_TO)
    sparse = np.logspace(np.log10(DENSE_UP_TO), np.log10(n), int(np.ceil(decades * PER_DECADE)) + 1)
    merged = np.unique(np.concatenate([dense, np.rint(sparse).astype(np.int64), [n]]))
    return merged[merged <= n].astype(np.int64)


@dataclass(frozen=True)
class Coverage:
    """Coverage against k with its bootstrap band."""

    k: IntArray  # samples per problem
    pass_at_k: FloatArray  # mean over problems of the unbiased pass@k, in [0, 1]
    low: FloatArray  # lower edge of the bootstrap band
    high: FloatArray  # upper edge of the bootstrap band
    replicates: FloatArray  # bootstrap coverage curves (replicates x k), for the fits' intervals
    weights: FloatArray  # times each problem was drawn per replicate (replicates x problems)
    confidence: float  # band level, e.g. 0.95


def bootstrap_weights(n_problems: int, replicates: int, seed: int) -> FloatArray:
    """How often each problem is drawn in each bootstrap replicate (replicates x problems)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_problems, size=(replicates, n_problems))
    offsets = np.arange(replicates)[:, None] * n_problems
    counts = np.bincount((draws + offsets).ravel(), minlength=replicates * n_problems)
    return counts.reshape(replicates, n_problems).astype(np.float64)


def coverage(
    n: IntArray,
    c: IntArray,
    ks: IntArray,
    *,
    confidence: float = 0.95,
    replicates: int = 1000,
    seed: int = 0,
) -> Coverage:
    """Coverage at each k (all k <= min n) with a percentile bootstrap band over problems:
    the problem set is the sample, so resampling problems says how far another draw of
    problems of the same kind could move the curve."""
    n = np.asarray(n, dtype=np.int64)
    ks = np.asarray(ks, dtype=np.int64)
    if len(n) == 0:
        raise ValueError("no problems to cover")
    if ks.max() > n.min():
        raise ValueError(f"coverage is defined up to the smallest n ({n.min()}), asked {ks.max()}")
    per = curves(n, c, ks)
    mean = per.mean(axis=0)
    if replicates > 0:
        weights = bootstrap_weights(len(n), replicates, seed)
        boot = weights @ per / len(n)
        tail = (1 - confidence) / 2 * 100
        low, high = np.percentile(boot, [tail, 100 - tail], axis=0)
    else:
        boot = np.empty((0, len(ks)))
        weights = np.empty((0, len(n)))
        low = high = mean.copy()
    return Coverage(ks, mean, low, high, boot, weights, confidence)
