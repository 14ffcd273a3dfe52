"""The multivariate Gaussian family: K components of one of the 14 covariance models of mclust
(:mod:`emkit.families.parsimonious`; scikit-learn's full, tied, diag and spherical among them).

One class holds everything a model needs about the components: log-densities of a block of rows,
weighted sufficient statistics, the M-step, and unconstrained coordinates for SQUAREM. Mixtures
and hidden Markov models both build on it.

Shapes (K components, D features), as in scikit-learn; every model is stored in the layout of
one of the four (:func:`emkit.families.parsimonious.layout`), which is what ``covariance_type``
of this class names:

============  ===============  ===========================================
type          covariances      precisions_cholesky P (precision = P Pᵀ)
============  ===============  ===========================================
full          (K, D, D)        (K, D, D), upper triangular
tied          (D, D)           (D, D)
diag          (K, D)           (K, D) = 1 / √variance
spherical     (K,)             (K,)
============  ===============  ===========================================

Statistics are *centred* at the current means c_k: Σ w, Σ w (x − c_k) and Σ w (x − c_k)(x − c_k)ᵀ.
They add like raw moments (when two parts have different centres they are shifted first), and
near convergence the correction (μ_new − c_k) is tiny, so the covariance has no cancellation.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import linalg

from emkit.families import base, parsimonious
from emkit.families import gaussian_missing as missing
from emkit.kernels import gaussian as kernels
from emkit.models import clustering

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
#: What the Gaussian mixture accepts: scikit-learn's four types and mclust's 14 models.
MIXTURE_COVARIANCE_TYPES = parsimonious.COVARIANCE_TYPES
_LOG_2PI = math.log(2.0 * math.pi)
# Float32 moments keep the smallest eigenvalue of a covariance to about 6e-8 × cond relative:
# above this condition number (1e-4 relative) a component's moments are summed in float64.
_FLOAT32_CONDITION_LIMIT = 1e3


@functools.lru_cache(maxsize=64)
def lower_triangle(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a lower triangle (numpy builds them anew at every call, which
    costs a small fit's SQUAREM step more than its arithmetic); read-only, as they are shared."""
    rows, cols = np.tril_indices(n_features)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


class GaussianParams(NamedTuple):
    """Component parameters; ``precisions_cholesky`` is derived from ``covariances``."""

    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray


@dataclass(frozen=True)
class GaussianStats:
    """Weighted, centred sufficient statistics of K Gaussian components.

    ``second`` is (K, D, D) for full and tied covariances, (K, D) for diag and spherical.
    """

    weight: np.ndarray  # (K,)      Σ w_k
    first: np.ndarray  # (K, D)     Σ w_k (x − c_k)
    second: np.ndarray  # see above Σ w_k (x − c_k)(x − c_k)ᵀ, or its diagonal
    center: np.ndarray  # (K, D)    c_k

    def __add__(self, other: GaussianStats) -> GaussianStats:
        other = other.recentered(self.center)
        return GaussianStats(self.weight + other.weight, self.first + other.first,
                             self.second + other.second, self.center)

    def scaled(self, factor: float) -> GaussianStats:
        """The statistics of the same rows with every weight multiplied by ``factor``."""
        return GaussianStats(self.weight * factor, self.first * factor, self.second * factor,
                             self.center)

    def recentered(self, center: np.ndarray) -> GaussianStats:
        """The same statistics about another centre (parallel-axis theorem)."""
        if center is self.center or np.array_equal(center, self.center):
            return self
        shift = self.center - center  # x − c_new = (x − c_old) + shift
        first = self.first + self.weight[:, None] * shift
        if self.second.ndim == 3:
            cross = self.first[:, :, None] * shift[:, None, :]
            second = (self.second + cross + np.swapaxes(cross, 1, 2)
                      + self.weight[:, None, None] * shift[:, :, None] * shift[:, None, :])
        else:
            second = self.second + 2.0 * self.first * shift + self.weight[:, None] * shift**2
        return GaussianStats(self.weight, first, second, center)


class GaussianFamily:
    """K Gaussian components of one covariance model.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"} or one of mclust's 14 models
        ("EII", …, "VVV"; see :mod:`emkit.families.parsimonious`).
    reg_covar : float
        Added to the diagonal of every component's scatter before the model's M-step (for the
        four scikit-learn types: to the diagonal of every covariance): keeps them positive
        definite, and the constrained models within their constraints.
    dtype : numpy float dtype
        Precision of the density computations (float32 halves memory traffic); statistics are
        always accumulated in float64.

    Attributes
    ----------
    model : str
        The mclust name of the model ("VVV" for "full").
    covariance_type : {"full", "tied", "diag", "spherical"}
        The layout the covariances are stored in (the model's for the scikit-learn names).
    """

    def __init__(self, covariance_type: str = "full", reg_covar: float = 1e-6,
                 dtype=np.float64):
        if covariance_type not in MIXTURE_COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {MIXTURE_COVARIANCE_TYPES}")
        self.model = parsimonious.model_name(covariance_type)
        self.covariance_type = parsimonious.layout(covariance_type)
        self.reg_covar = float(reg_covar)
        self.dtype = np.dtype(dtype)

    # ----------------------------------------------------------------- rows
    def read(self, X) -> np.ndarray:
        """Rows as a 2-D float array (NaN: missing)."""
        return np.asarray(X, dtype=float)

    def n_rows(self, X: np.ndarray) -> int:
        return len(X)

    def init(self, parts, n_components: int,
             rng: np.random.Generator) -> tuple[np.ndarray, GaussianParams]:
        """A plain start (the :class:`~emkit.families.base.ComponentFamily` contract): k-means
        clusters of the rows (gaps filled with the column means), their weights, means and
        covariances. The Gaussian mixture estimator has richer starts of its own."""
        X = np.concatenate([np.asarray(data, dtype=float) for data, _ in parts])
        w = None if all(weights is None for _, weights in parts) else np.concatenate(
            [np.ones(len(data)) if weights is None else weights for data, weights in parts])
        if np.isnan(X).any():
            X = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
        assignment, _ = clustering.kmeans(X, n_components, rng, w)
        resp = np.zeros((len(X), n_components))
        resp[np.arange(len(X)), assignment] = 1.0
        weighted = resp if w is None else resp * w[:, None]
        center = np.repeat(np.average(X, axis=0, weights=w)[None], n_components, axis=0)
        stats = GaussianFamily(self.model, self.reg_covar).statistics(
            GaussianParams(center, None, None), X, weighted)
        params, _ = self.m_step(stats)
        return base.mixing_weights(stats.weight), params

    # ----------------------------------------------------------------- densities
    def log_density(self, params: GaussianParams, X: np.ndarray,
                    log_weights: np.ndarray | None = None,
                    rows: missing.RowLayout | None = None) -> np.ndarray:
        """log N(x_b | μ_k, Σ_k) (+ log_weights[k] when given) for every row b and component k:
        shape (n_rows, K), in the family's dtype. Rows with NaN get the marginal density of
        their observed coordinates; ``rows`` is ``gaussian_missing.layout(X)`` (or ``COMPLETE``)
        if known."""
        return self._rows(params, X, log_weights, False, 1.0, rows)

    def posteriors(self, params: GaussianParams, X: np.ndarray, log_weights: np.ndarray,
                   inverse_temperature: float = 1.0,
                   rows: missing.RowLayout | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mixture posteriors in one pass over the rows: the log-likelihood of each row,
        log Σ_k π_k N(x | μ_k, Σ_k) (float64, shape (n_rows,)), and the posteriors
        ∝ (π_k N(x | μ_k, Σ_k))^β (shape (n_rows, K), the family's dtype)."""
        return self._rows(params, X, log_weights, True, inverse_temperature, rows)

    def _rows(self, params, X, log_weights, posteriors, inverse_temperature, rows=None):
        X = np.ascontiguousarray(X, dtype=self.dtype)
        rows = missing.known_layout(X, rows)
        if rows is not None:
            return self._rows_with_missing(params, X, rows, log_weights, posteriors,
                                           inverse_temperature)
        return self._complete_rows(params, X, log_weights, posteriors, inverse_temperature)

    def _complete_rows(self, params, X, log_weights, posteriors, inverse_temperature):
        """The compiled kernels, for rows known to have no NaN."""
        means = params.means
        n_components, n_features = means.shape
        P = params.precisions_cholesky
        log_det = self.log_det_precision_cholesky(params, n_features)
        constants = log_det - 0.5 * n_features * _LOG_2PI
        if log_weights is not None:
            constants = constants + log_weights
        constants = constants.astype(self.dtype)
        kind = self.covariance_type
        means = np.ascontiguousarray(means, dtype=self.dtype)
        if kind in ("full", "tied"):
            factors = P if kind == "full" else np.broadcast_to(P, (n_components,) + P.shape)
            return kernels.triangular_log_density(
                X, means, np.ascontiguousarray(factors, dtype=self.dtype), constants,
                posteriors, inverse_temperature)
        scales = P if kind == "diag" else np.repeat(P[:, None], n_features, axis=1)
        return kernels.diagonal_log_density(
            X, means, np.ascontiguousarray(scales, dtype=self.dtype), constants, posteriors,
            inverse_temperature)

    def _rows_with_missing(self, params, X, rows, log_weights, posteriors, beta):
        """Complete rows by the compiled kernels, rows with NaN by their marginal densities."""
        joint = np.empty((len(X), len(params.means)), dtype=self.dtype)
        if rows.n_complete:
            joint[rows.complete] = self._complete_rows(params, X[rows.complete], None, False,
                                                       1.0)
        joint[rows.incomplete] = missing.marginal_log_density(self, params, rows)
        if log_weights is not None:
            joint += log_weights.astype(self.dtype)
        if not posteriors:
            return joint
        return kernels.posteriors_from_joint(joint, beta)

    def log_det_precision_cholesky(self, params: GaussianParams, n_features: int) -> np.ndarray:
        """log det P_k = −½ log det Σ_k, shape (K,)."""
        P = params.precisions_cholesky
        n_components = params.means.shape[0]
        kind = self.covariance_type
        if kind == "full":
            return np.sum(np.log(np.diagonal(P, axis1=1, axis2=2)), axis=1)
        if kind == "tied":
            return np.full(n_components, np.sum(np.log(np.diag(P))))
        if kind == "diag":
            return np.sum(np.log(P), axis=1)
        return n_features * np.log(P)

    def expected_log_density(self, params: GaussianParams, stats: GaussianStats) -> float:
        """Σ_k Σ_i w_ik log N(x_i | μ_k, Σ_k) from the statistics, without the constant
        −½ Σ w D log 2π: the part of the M-step's objective (Q) the components make. With
        missing values the statistics hold the conditional moments, and this is the expectation
        over the missing coordinates, as Q is."""
        n = stats.weight
        shift = params.means - stats.center
        prec = params.precisions_cholesky
        if self.covariance_type in ("full", "tied"):
            # Σ_i w (x − μ)(x − μ)ᵀ from moments about c: S − f dᵀ − d fᵀ + n d dᵀ, d = μ − c.
            scatter = (stats.second - stats.first[:, :, None] * shift[:, None, :]
                       - shift[:, :, None] * stats.first[:, None, :]
                       + n[:, None, None] * shift[:, :, None] * shift[:, None, :])
            factors = np.broadcast_to(prec, scatter.shape)  # Σ⁻¹ = U Uᵀ: tr(Σ⁻¹M) = Σ U∘(M U)
            quadratic = np.sum(factors * (scatter @ factors), axis=(1, 2))
        else:
            scatter = stats.second - 2.0 * stats.first * shift + n[:, None] * shift**2
            squared = prec**2 if prec.ndim == 2 else (prec**2)[:, None]
            quadratic = np.sum(squared * scatter, axis=1)
        log_det = self.log_det_precision_cholesky(params, shift.shape[1])
        return float(np.sum(n * log_det) - 0.5 * np.sum(quadratic))

    # ----------------------------------------------------------------- statistics
    def statistics(self, params: GaussianParams, X: np.ndarray, weights: np.ndarray,
                   rows: missing.RowLayout | None = None) -> GaussianStats:
        """Statistics of rows ``X`` with per-row, per-component ``weights`` (n_rows, K); rows with
        NaN contribute their exact expected statistics (see :mod:`gaussian_missing`)."""
        X = np.ascontiguousarray(X, dtype=self.dtype)
        rows = missing.known_layout(X, rows)
        if rows is not None:
            weights = np.asarray(weights)
            partial = GaussianStats(*missing.conditional_statistics(
                self, params, rows, weights[rows.incomplete]))
            if not rows.n_complete:
                return partial
            complete = self._complete_statistics(params, X[rows.complete],
                                                 weights[rows.complete])
            return complete + partial
        return self._complete_statistics(params, X, weights)

    def _complete_statistics(self, params, X, weights) -> GaussianStats:
        """The compiled moments, for rows known to have no NaN.

        In float32 every product w (x − c_i)(x − c_j) is rounded to a relative 6e-8 of its own
        size, so a covariance's smallest eigenvalue is only known to about 6e-8 × its largest.
        For a component whose covariance comes out ill-conditioned (e.g. collapsing onto a few
        rows, where ``reg_covar`` sets the smallest eigenvalue) that error is a visible share of
        the eigenvalue and the objective wobbles between iterations: those components' moments
        are summed again in float64. The others keep float32's speed.
        """
        weights = np.ascontiguousarray(weights, dtype=self.dtype)
        center = np.ascontiguousarray(params.means, dtype=self.dtype)
        full = self.covariance_type in ("full", "tied")
        stats = GaussianStats(*kernels.weighted_moments(X, weights, center, full),
                              center.astype(np.float64))
        coarse = self._coarse_in_float32(stats)
        if coarse.any():
            exact = kernels.weighted_moments(
                X.astype(np.float64), np.ascontiguousarray(weights[:, coarse], dtype=np.float64),
                stats.center[coarse], full)
            for field, value in zip((stats.weight, stats.first, stats.second), exact,
                                    strict=True):
                field[coarse] = value
        return stats

    def _coarse_in_float32(self, stats: GaussianStats) -> np.ndarray:
        """(K,) mask of the components whose float32 moments give a covariance with a
        correlation matrix (scale-free: features in other units do not count) whose condition
        number exceeds ``_FLOAT32_CONDITION_LIMIT``."""
        n_components = len(stats.weight)
        if self.dtype == np.float64 or self.covariance_type not in ("full", "tied"):
            return np.zeros(n_components, dtype=bool)
        safe = np.maximum(stats.weight, 10 * np.finfo(float).eps)
        shift = stats.first / safe[:, None]
        cov = stats.second / safe[:, None, None] - shift[:, :, None] * shift[:, None, :]
        if self.covariance_type == "tied":  # the pooled covariance is the one that matters
            cov = np.tensordot(stats.weight, cov, axes=1)[None] / max(stats.weight.sum(), 1e-300)
        cov = cov + self.reg_covar * np.eye(cov.shape[-1])
        with np.errstate(all="ignore"):
            scale = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
            condition = np.linalg.cond(cov / (scale[:, :, None] * scale[:, None, :]))
        coarse = ~(condition <= _FLOAT32_CONDITION_LIMIT)  # NaN counts as coarse
        return np.broadcast_to(coarse, (n_components,)) & (stats.weight > 0)

    # ----------------------------------------------------------------- M-step
    def component_weights(self, stats: GaussianStats) -> np.ndarray:
        return stats.weight

    def m_step(self, stats: GaussianStats,
               params: GaussianParams | None = None) -> tuple[GaussianParams, tuple[str, ...]]:
        """The M-step of the :class:`~emkit.families.base.ComponentFamily` contract: new
        parameters and events. A component with (almost) no weight or whose covariance is not
        positive definite keeps its values from ``params`` (unit covariance when there are
        none); mixtures that prefer to re-seed such components use :meth:`estimate`."""
        new, bad = self.estimate(stats, params)
        return self.keep_previous(new, bad, stats, params)

    def keep_previous(self, new: GaussianParams, bad: np.ndarray, stats: GaussianStats,
                      params: GaussianParams | None) -> tuple[GaussianParams, tuple[str, ...]]:
        """``new`` with the components that are ``bad`` or explain (almost) no row — and so
        carry no information about their parameters — back at their values in ``params``;
        one event per such component."""
        bad = bad | (stats.weight < 1e-10 * max(float(stats.weight.sum()), 1e-300))
        if not bad.any():
            return new, ()
        if params is None:  # nothing to go back to: unit covariances at the new means
            n_components, n_features = new.means.shape
            shape = self.covariance_shape(n_components, n_features)
            unit = np.broadcast_to(np.eye(n_features), shape) if self.covariance_type in (
                "full", "tied") else np.ones(shape)
            params, _ = self.with_covariances(new.means, np.array(unit))
        means = np.where(bad[:, None], params.means, new.means)
        cov = np.array(new.covariances, copy=True)
        if self.covariance_type == "tied":
            cov = params.covariances
        else:
            cov[bad] = params.covariances[bad]
        kept, _ = self.with_covariances(means, cov)
        events = tuple(f"Gaussian {k} has no usable covariance (weight "
                       f"{stats.weight[k]:.3g}); kept its previous parameters"
                       for k in np.flatnonzero(bad))
        return kept, events

    def log_prior(self, params: GaussianParams) -> float:
        return 0.0

    def estimate(self, stats: GaussianStats, previous: GaussianParams | None = None
                 ) -> tuple[GaussianParams, np.ndarray]:
        """Parameters from statistics, and a boolean (K,) mask of components whose covariance
        is not positive definite (their parameters are left for the caller to repair: keep,
        as :meth:`m_step` does, or re-seed, as the Gaussian mixture does). The iterative
        M-steps of the constrained models start from the ``previous`` covariances."""
        safe = np.maximum(stats.weight, 10 * np.finfo(float).eps)
        shift = stats.first / safe[:, None]
        means = stats.center + shift
        n_features = means.shape[1]
        # S_k: each component's scatter about its new mean, per unit weight, regularised.
        if self.covariance_type in ("full", "tied"):
            scatter = (stats.second / safe[:, None, None]
                       - shift[:, :, None] * shift[:, None, :])
            scatter = 0.5 * (scatter + np.swapaxes(scatter, -1, -2))
            scatter = scatter + self.reg_covar * np.eye(n_features)
        else:
            scatter = stats.second / safe[:, None] - shift**2 + self.reg_covar
        cov = parsimonious.covariances(self.model, scatter, stats.weight,
                                       None if previous is None else previous.covariances)
        if not np.all(np.isfinite(cov)):  # a singular scatter: zero, so flagged as not PD
            rows = cov.reshape(len(cov), -1) if self.covariance_type != "spherical" else cov
            broken = ~np.all(np.isfinite(rows), axis=-1) if rows.ndim == 2 else ~np.isfinite(rows)
            cov = np.array(cov, copy=True)
            cov[broken] = 0.0
        return self.with_covariances(means, cov)

    def with_covariances(self, means: np.ndarray,
                         covariances: np.ndarray) -> tuple[GaussianParams, np.ndarray]:
        """Parameters with derived precision Cholesky factors, and the mask of components whose
        covariance is not positive definite (their factor is set to identity)."""
        n_components, n_features = means.shape
        covariances = np.asarray(covariances, dtype=np.float64)
        bad = np.zeros(n_components, dtype=bool)
        kind = self.covariance_type
        if kind == "full":
            P, bad = kernels.precision_cholesky_factors(np.ascontiguousarray(covariances),
                                                        MIN_PIVOT_RATIO)
        elif kind == "tied":
            P, ok = _precision_cholesky(covariances)
            bad[:] = not ok
        else:
            valid = np.isfinite(covariances) & (covariances > 0)
            P = np.where(valid, 1.0 / np.sqrt(np.where(valid, covariances, 1.0)), 1.0)
            bad = ~valid if kind == "spherical" else ~np.all(valid, axis=1)
        return GaussianParams(means, covariances, P), bad

    # ----------------------------------------------------------------- SQUAREM coordinates
    def flatten(self, params: GaussianParams) -> np.ndarray:
        """Means, then log-Cholesky (full, tied) or log-variances (diag, spherical). Equal
        volumes, and every constraint of the diagonal models, are linear in these coordinates,
        so SQUAREM's extrapolations keep them; :meth:`unflatten` projects the others."""
        kind = self.covariance_type
        cov = params.covariances
        if kind in ("full", "tied"):
            L = np.linalg.cholesky(cov)
            rows, cols = lower_triangle(cov.shape[-1])
            diag = np.arange(cov.shape[-1])
            L[..., diag, diag] = np.log(L[..., diag, diag])
            cov_part = L[..., rows, cols].ravel()
        else:
            cov_part = np.log(cov).ravel()
        return np.concatenate([params.means.ravel(), cov_part])

    def unflatten(self, vector: np.ndarray, template: GaussianParams) -> GaussianParams:
        means = vector[: template.means.size].reshape(template.means.shape)
        rest = vector[template.means.size:]
        kind = self.covariance_type
        if kind in ("full", "tied"):
            n_features = template.means.shape[1]
            rows, cols = lower_triangle(n_features)
            shape = template.covariances.shape[:-2] + (rows.size,)
            L = np.zeros(template.covariances.shape)
            L[..., rows, cols] = rest.reshape(shape)
            diag = np.arange(n_features)
            L[..., diag, diag] = np.exp(L[..., diag, diag])
            cov = L @ np.swapaxes(L, -1, -2)
        else:
            cov = np.exp(rest).reshape(template.covariances.shape)
        if self.model in NONLINEAR_MODELS:
            # Extrapolated matrices leave these models (their shapes or orientations are not
            # linear in the coordinates): back to the model's nearest, the M-step with the
            # extrapolated matrices as the scatter, from the template's covariances.
            with np.errstate(all="ignore"):
                cov = parsimonious.covariances(self.model, cov, np.ones(len(cov)),
                                               template.covariances)
        params, bad = self.with_covariances(means, cov)
        if bad.any() or not np.all(np.isfinite(params.precisions_cholesky)):
            raise FloatingPointError("extrapolated covariance is not positive definite")
        return params

    # ----------------------------------------------------------------- bookkeeping
    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free parameters of the components (means and covariances; mclust's count)."""
        return n_components * n_features + parsimonious.n_covariance_parameters(
            self.model, n_components, n_features)

    def covariance_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        return {"full": (n_components, n_features, n_features), "tied": (n_features, n_features),
                "diag": (n_components, n_features), "spherical": (n_components,)}[
            self.covariance_type]


# Models whose common shape or orientation is not linear in SQUAREM's coordinates.
NONLINEAR_MODELS = ("VEE", "EVE", "VVE", "EEV", "VEV")
# L_ii / √Σ_ii below this: Σ counts as singular (see _precision_cholesky); the Student-t
# family judges its scale matrices by the same test.
MIN_PIVOT_RATIO = 1e-7


def _precision_cholesky(covariance: np.ndarray) -> tuple[np.ndarray, bool]:
    """Upper-triangular P with P Pᵀ = Σ⁻¹, and whether Σ was numerically positive definite.

    L_ii² / Σ_ii (L the Cholesky factor) is the fraction of coordinate i's variance that the
    coordinates before it do not explain; below 10⁻¹⁴ the coordinate is a linear function of the
    others to float64 precision, densities are round-off, and Σ counts as singular. The test is
    scale-free: features in very different units do not trigger it.
    """
    n_features = covariance.shape[0]
    try:
        lower = linalg.cholesky(covariance, lower=True, check_finite=True)
    except (linalg.LinAlgError, ValueError):
        return np.eye(n_features), False
    if np.min(np.diag(lower) / np.sqrt(np.diag(covariance))) < MIN_PIVOT_RATIO:
        return np.eye(n_features), False
    inverse, info = linalg.lapack.dtrtri(lower, lower=1)
    if info != 0:
        return np.eye(n_features), False
    P = np.triu(inverse.T)
    return P, bool(np.all(np.isfinite(P)) and np.all(np.diag(P) > 0))


def covariances_from_precisions(precisions: np.ndarray, covariance_type: str) -> np.ndarray:
    """Covariances from precision matrices (as scikit-learn's ``precisions_init``)."""
    if covariance_type in ("diag", "spherical"):
        return 1.0 / np.asarray(precisions, dtype=float)
    return np.linalg.inv(np.asarray(precisions, dtype=float))
