"""Forecasting coverage: the exponentiated power law of Brown et al. (2024) and the
beta-binomial model of Schaeffer et al. (2025), each with bootstrap intervals."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Log-spaced points the power law is fitted on, so k <= 100 (dense in the grid) does not
#: outweigh the decades above it.
FIT_POINTS = 40
#: Box on log alpha and log beta, as for the full-data fit.
BOUND = 12.0
#: Gauss-Newton / Newton iterations for bootstrap refits, which start next to the answer.
REFIT_STEPS = 12
#: Each law's key in the analysis' fit section, and its name in prose.
LAW_NAMES = {"power_law": "power law", "beta_binomial": "beta-binomial"}


class FitRefused(ValueError):
    """Too little signal to fit; the message says why in one line."""


@dataclass(frozen=True)
class PowerLaw:
    """log c(k) = a * k**b, with a, b < 0."""

    a: float  # log-coverage scale: log c(1) = a
    b: float  # exponent: how fast -log c falls with k
    rmse: float  # root-mean-square error against the observed coverage at the fit points
    k_fit: IntArray  # the k the law was fitted on
    replicates: FloatArray  # bootstrap (a, b) pairs (replicates x 2); NaN rows did not converge

    def predict(self, k: FloatArray) -> FloatArray:
        return np.exp(self.a * np.power(np.asarray(k, dtype=np.float64), self.b))

    def predict_replicates(self, k: FloatArray) -> FloatArray:
        a, b = self.replicates[:, :1], self.replicates[:, 1:]
        return np.exp(a * np.power(np.asarray(k, dtype=np.float64)[None, :], b))

    def budget_for(self, target: float) -> float:
        with np.errstate(over="ignore"):
            return float((np.log(target) / self.a) ** (1 / self.b))

    def budget_replicates(self, target: float) -> FloatArray:
        a, b = self.replicates[:, 0], self.replicates[:, 1]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return np.asarray((np.log(target) / a) ** (1 / b), dtype=np.float64)


def fit_points(k: IntArray, observed: FloatArray) -> NDArray[np.bool_]:
    """Which of the observed k feed the power-law fit: log-evenly spread, coverage strictly
    between 0 and 1 (log c must be finite and non-zero)."""
    k = np.asarray(k)
    inside = (observed > 0) & (observed < 1 - 1e-12)
    targets = np.unique(np.rint(np.logspace(0, np.log10(k.max()), FIT_POINTS)))
    chosen = np.isin(k, targets) & inside
    return np.asarray(chosen)


def fit_power_law(k: IntArray, observed: FloatArray, boot: FloatArray) -> PowerLaw:
    """Least squares on log c(k) = a k^b (scipy), the paper's form; the bootstrap curves are
    refitted by a vectorised Gauss-Newton started from that answer."""
    k = np.asarray(k, dtype=np.int64)
    if observed.max(initial=0.0) <= 0:
        raise FitRefused("no problem solved yet")
    if observed[0] >= 1 - 1e-12:
        raise FitRefused("coverage is already 100% at k=1")
    use = fit_points(k, observed)
    if use.sum() < 3:
        raise FitRefused(f"needs coverage strictly between 0 and 1 at 3 or more k, has {use.sum()}")
    kx = k[use].astype(np.float64)
    y = np.log(observed[use])
    # Linear start: log(-log c) = log(-a) + b log k.
    slope, intercept = np.polyfit(np.log(kx), np.log(-y), 1)
    start = (-float(np.exp(intercept)), min(float(slope), -1e-6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        params, _ = optimize.curve_fit(
            lambda x, a, b: a * np.power(x, b),
            kx,
            y,
            p0=start,
            bounds=([-np.inf, -np.inf], [0.0, 0.0]),
            maxfev=10_000,
        )
    a, b = float(params[0]), float(params[1])
    rmse = float(np.sqrt(np.mean((np.exp(a * kx**b) - observed[use]) ** 2)))
    reps = _gauss_newton(kx, boot[:, use], a, b) if len(boot) else np.empty((0, 2))
    return PowerLaw(a, b, rmse, k[use], reps)


def _gauss_newton(kx: FloatArray, curves: FloatArray, a0: float, b0: float) -> FloatArray:
    """Fit log c = a k^b to every bootstrap curve at once. Points where a replicate's
    coverage is 0 or 1 carry no weight (log c is not finite or not informative there); a row
    left with fewer than 3 points, or that leaves a, b < 0, becomes NaN."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y = np.log(curves)
        mask = (np.isfinite(y) & (curves < 1 - 1e-12)).astype(np.float64)
        y = np.where(mask > 0, y, 0.0)
        a = np.full(len(y), a0)
        b = np.full(len(y), b0)
        lk = np.log(kx)[None, :]
        for _ in range(REFIT_STEPS):
            kb = np.exp(b[:, None] * lk)
            r = (y - a[:, None] * kb) * mask
            ja, jb = kb * mask, a[:, None] * kb * lk * mask
            saa, sab, sbb = (ja * ja).sum(1), (ja * jb).sum(1), (jb * jb).sum(1)
            ra, rb = (ja * r).sum(1), (jb * r).sum(1)
            det = saa * sbb - sab * sab
            a = a + (sbb * ra - sab * rb) / det
            b = b + (saa * rb - sab * ra) / det
        good = (mask.sum(1) >= 3) & np.isfinite(a) & np.isfinite(b) & (a < 0) & (b < 0)
    return np.where(good[:, None], np.stack([a, b], axis=1), np.nan)


@dataclass(frozen=True)
class BetaBinomial:
    """Per-problem success rates drawn from Beta(alpha, beta), so that
    coverage(k) = 1 - B(alpha, beta + k) / B(alpha, beta)."""

    alpha: float  # Beta shape for successes: small alpha means most problems are rarely solved
    beta: float  # Beta shape for failures
    rmse: float  # root-mean-square error against the observed coverage curve
    replicates: FloatArray  # bootstrap (alpha, beta) pairs; NaN rows did not converge

    def predict(self, k: FloatArray) -> FloatArray:
        k = np.asarray(k, dtype=np.float64)
        log_miss = special.betaln(self.alpha, self.beta + k) - special.betaln(self.alpha, self.beta)
        return np.asarray(-np.expm1(log_miss))

    def predict_replicates(self, k: FloatArray) -> FloatArray:
        al, be = self.replicates[:, :1], self.replicates[:, 1:]
        k = np.asarray(k, dtype=np.float64)[None, :]
        return np.asarray(-np.expm1(special.betaln(al, be + k) - special.betaln(al, be)))

    def budget_for(self, target: float) -> float:
        return float(_bb_budget(np.array([[self.alpha, self.beta]]), target)[0])

    def budget_replicates(self, target: float) -> FloatArray:
        return _bb_budget(self.replicates, target)


def _bb_budget(params: FloatArray, target: float) -> FloatArray:
    """Smallest (real) k with predicted coverage >= target, by bisection on log k, per row."""
    al, be = params[:, 0], params[:, 1]
    lo = np.zeros(len(params))
    hi = np.full(len(params), 40.0)  # e^40 samples: beyond any budget worth forecasting
    with np.errstate(invalid="ignore"):
        for _ in range(60):
            mid = (lo + hi) / 2
            cov = -np.expm1(special.betaln(al, be + np.exp(mid)) - special.betaln(al, be))
            below = cov < target
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        k = np.exp(hi)
    return np.asarray(np.where(np.isfinite(al) & (hi < 40.0), k, np.nan))


def _bb_nll(
    log_ab: FloatArray, n: FloatArray, c: FloatArray, w: FloatArray
) -> tuple[float, FloatArray]:
    """Negative log-likelihood in (log alpha, log beta) and its gradient: with the gradient
    L-BFGS-B needs a third of the evaluations finite differences take."""
    al, be = np.exp(log_ab)
    ll = special.betaln(c + al, n - c + be) - special.betaln(al, be)
    g1, g2 = _bb_gradient(n[None, :], c[None, :], w[None, :], log_ab[:1], log_ab[1:])
    return float(-(w * ll).sum()), -np.array([g1[0], g2[0]])


def fit_beta_prior(n: IntArray, c: IntArray) -> tuple[float, float]:
    """Maximum-likelihood (alpha, beta) of the population of per-problem success rates, from
    each problem's samples n and passes c. The binomial likelihood of p does not depend on
    why sampling stopped, so counts drawn by an adaptive policy fit as well as fixed ones."""
    al, be, _, _ = _bb_mle(n, c)
    return al, be


def _bb_mle(n: IntArray, c: IntArray) -> tuple[float, float, IntArray, IntArray]:
    """(alpha, beta), the distinct (n, c) pairs and each problem's pair."""
    n = np.asarray(n, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    if c.sum() == 0:
        raise FitRefused("no problem solved yet")
    if (c == n).all():
        raise FitRefused("every sample passed: no failure rate to fit")
    pairs, inverse = np.unique(np.stack([n, c], axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    nu, cu = pairs[:, 0].astype(np.float64), pairs[:, 1].astype(np.float64)
    w = np.bincount(inverse, minlength=len(pairs)).astype(np.float64)
    # Method-of-moments start on the per-problem rates.
    p = c / n
    mean, var = float(p.mean()), float(p.var())
    spread = mean * (1 - mean) / var - 1 if var > 0 else 10.0
    spread = min(max(spread, 0.05), 1e4)
    start = np.log([max(mean * spread, 1e-3), max((1 - mean) * spread, 1e-3)])
    res = optimize.minimize(
        _bb_nll,
        start,
        args=(nu, cu, w),
        method="L-BFGS-B",
        jac=True,
        bounds=[(-BOUND, BOUND), (-BOUND, BOUND)],
    )
    al, be = (float(v) for v in np.exp(res.x))
    return al, be, pairs, inverse


def fit_beta_binomial(
    n: IntArray, c: IntArray, k: IntArray, observed: FloatArray, boot_weights: FloatArray
) -> BetaBinomial:
    """Maximum likelihood of (alpha, beta) from every problem's (n, correct), as Schaeffer et
    al. do; bootstrap refits reweight the distinct (n, c) pairs and take Newton steps."""
    al, be, pairs, inverse = _bb_mle(n, c)
    nu, cu = pairs[:, 0].astype(np.float64), pairs[:, 1].astype(np.float64)
    model = BetaBinomial(al, be, 0.0, np.empty((0, 2)))
    rmse = float(np.sqrt(np.mean((model.predict(k.astype(np.float64)) - observed) ** 2)))
    reps = np.empty((0, 2))
    if len(boot_weights):
        # Each replicate's weight on a distinct pair = how often its problems were drawn.
        pair_w = np.zeros((len(boot_weights), len(pairs)))
        np.add.at(pair_w.T, inverse, boot_weights.T)
        reps = _bb_newton(nu, cu, pair_w, np.log(al), np.log(be))
        # Replicates far from the full-data answer (small problem sets) may not settle in
        # chord steps: those get full Newton steps, each with its own Hessian, rather than be
        # dropped, which would bias the band.
        left = np.flatnonzero(np.isnan(reps).any(axis=1))
        if len(left):
            reps[left] = _bb_full_newton(nu, cu, pair_w[left], np.log(al), np.log(be))
    return BetaBinomial(al, be, rmse, reps)


def _bb_gradient(
    n: FloatArray, c: FloatArray, w: FloatArray, la: FloatArray, lb: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Gradient of the weighted log-likelihood in (log alpha, log beta), one row per weighting."""
    al, be = np.exp(la)[:, None], np.exp(lb)[:, None]
    s = al + be
    dg = special.digamma
    ga = (w * (dg(c + al) - dg(n + s))).sum(1) + w.sum(1) * (dg(s) - dg(al))[:, 0]
    gb = (w * (dg(n - c + be) - dg(n + s))).sum(1) + w.sum(1) * (dg(s) - dg(be))[:, 0]
    return al[:, 0] * ga, be[:, 0] * gb


def _bb_hessians(
    n: FloatArray, c: FloatArray, w: FloatArray, la: FloatArray, lb: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Gradient (g1, g2) and Hessian entries (h11, h22, h12) of the log-likelihood in
    (log alpha, log beta), one row per weighting."""
    g1, g2 = _bb_gradient(n[None, :], c[None, :], w, la, lb)
    al, be = np.exp(la)[:, None], np.exp(lb)[:, None]
    s = al + be
    tg = special.polygamma
    t_ns, t_s = tg(1, n[None, :] + s), tg(1, s)
    haa = (w * (tg(1, c + al) - t_ns - tg(1, al) + t_s)).sum(1)
    hbb = (w * (tg(1, n - c + be) - t_ns - tg(1, be) + t_s)).sum(1)
    hab = (w * (t_s - t_ns)).sum(1)
    a1, b1 = al[:, 0], be[:, 0]
    # Chain rule to log parameters: d2/dlog a2 = a^2 d2/da2 + a d/da.
    return g1, g2, a1 * a1 * haa + g1, b1 * b1 * hbb + g2, a1 * b1 * hab


def _bb_hessian(n: FloatArray, c: FloatArray, w: FloatArray, la: float, lb: float) -> FloatArray:
    """Hessian of the log-likelihood in (log alpha, log beta) at one point."""
    _, _, h11, h22, h12 = _bb_hessians(n, c, w[None, :], np.array([la]), np.array([lb]))
    return np.array([[h11[0], h12[0]], [h12[0], h22[0]]])


def _bb_newton(n: FloatArray, c: FloatArray, w: FloatArray, la0: float, lb0: float) -> FloatArray:
    """Refit every bootstrap weighting at once by Newton steps with the Hessian frozen at
    the full-data answer (the chord method): replicates start next to it, and freezing the
    Hessian saves the trigamma calls that would otherwise dominate the time."""
    hess = _bb_hessian(n, c, w.mean(axis=0), la0, lb0)
    if not np.isfinite(hess).all() or np.linalg.det(hess) <= 0 or hess[0, 0] >= 0:
        # Not at an interior maximum (e.g. a shape at its bound): every replicate is refitted
        # one by one by the caller.
        return np.full((len(w), 2), np.nan)
    inv = np.linalg.inv(hess)
    la = np.full(len(w), la0)
    lb = np.full(len(w), lb0)
    n, c = n[None, :], c[None, :]
    with np.errstate(all="ignore"):
        for _ in range(REFIT_STEPS):
            g1, g2 = _bb_gradient(n, c, w, la, lb)
            # Each replicate's likelihood scales with its total weight, as does its Hessian.
            scale = w.sum(1) / w.mean(axis=0).sum()
            la = la - np.clip((inv[0, 0] * g1 + inv[0, 1] * g2) / scale, -1, 1)
            lb = lb - np.clip((inv[1, 0] * g1 + inv[1, 1] * g2) / scale, -1, 1)
        g1, g2 = _bb_gradient(n, c, w, la, lb)
        # A replicate that has not settled (gradient still large) is dropped, not reported.
        settled = np.hypot(g1, g2) < 1e-3 * w.sum(1)
        good = settled & np.isfinite(la) & np.isfinite(lb) & (np.abs(la) < 12) & (np.abs(lb) < 12)
    return np.where(good[:, None], np.exp(np.stack([la, lb], axis=1)), np.nan)


def _bb_full_newton(
    n: FloatArray, c: FloatArray, w: FloatArray, la0: float, lb0: float
) -> FloatArray:
    """Newton steps with each weighting's own Hessian (gradient ascent where it is not
    negative definite), for the few replicates the chord method leaves unsettled. Weightings
    with no success or no failure have no finite answer and stay NaN."""
    la = np.full(len(w), la0)
    lb = np.full(len(w), lb0)
    with np.errstate(all="ignore"):
        for _ in range(4 * REFIT_STEPS):
            g1, g2, h11, h22, h12 = _bb_hessians(n, c, w, la, lb)
            det = h11 * h22 - h12 * h12
            concave = (h11 < 0) & (det > 0)
            norm = np.hypot(g1, g2) + 1e-300
            step_a = np.where(concave, -(h22 * g1 - h12 * g2) / det, g1 / norm)
            step_b = np.where(concave, -(h11 * g2 - h12 * g1) / det, g2 / norm)
            # A parameter held at the box edge by its gradient stays there; the other one
            # takes a one-dimensional Newton step along the edge.
            held_a = ((la >= BOUND) & (g1 > 0)) | ((la <= -BOUND) & (g1 < 0))
            held_b = ((lb >= BOUND) & (g2 > 0)) | ((lb <= -BOUND) & (g2 < 0))
            step_a = np.where(held_b, np.where(h11 < 0, -g1 / h11, np.sign(g1)), step_a)
            step_b = np.where(held_a, np.where(h22 < 0, -g2 / h22, np.sign(g2)), step_b)
            step_a = np.where(held_a, 0.0, step_a)
            step_b = np.where(held_b, 0.0, step_b)
            # The same box as the full-data fit: without over-dispersion the likelihood keeps
            # rising as alpha, beta grow together (the binomial limit), so the answer is the edge.
            la = np.clip(la + np.clip(step_a, -1, 1), -BOUND, BOUND)
            lb = np.clip(lb + np.clip(step_b, -1, 1), -BOUND, BOUND)
        g1, g2 = _bb_gradient(n[None, :], c[None, :], w, la, lb)
        # Projected gradient: at an edge, only the component pointing inwards must vanish.
        g1 = np.where(((la >= BOUND) & (g1 > 0)) | ((la <= -BOUND) & (g1 < 0)), 0.0, g1)
        g2 = np.where(((lb >= BOUND) & (g2 > 0)) | ((lb <= -BOUND) & (g2 < 0)), 0.0, g2)
        settled = np.hypot(g1, g2) < 1e-3 * w.sum(1)
        solvable = ((w * (c > 0)).sum(1) > 0) & ((w * (c < n)).sum(1) > 0)
        good = settled & solvable & np.isfinite(la) & np.isfinite(lb)
    return np.where(good[:, None], np.exp(np.stack([la, lb], axis=1)), np.nan)
