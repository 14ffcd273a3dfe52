"""The Gaussian family's part of the observed information (see :mod:`emkit.models.information`).

Free coordinates: the means (K·D, component by component), then the covariance model's own
coordinates θ. Each covariance model is a *parameter map*: the K covariance matrices as a linear
function of θ (unique entries of each matrix for "full", of the one shared matrix for "tied",
the diagonals for "diag", one variance per component for "spherical"), with names for its
coordinates and the reduction to the shape of ``covariances_``. A new covariance model that is
linear in its coordinates (mclust's EII, VII, EEI, VVI, EEE, VVV) only adds its map to
:data:`COVARIANCE_MAPS`; one that is not (orientation or shape shared through an eigen
decomposition) also needs the map's second derivatives, which :class:`GaussianInformation`
does not take yet.

With a = Σ_k⁻¹ (x − μ_k) and B_u = ∂Σ_k / ∂θ_u (a constant matrix: the map is linear), the
derivatives of log N(x | μ_k, Σ_k) are

- ∂/∂μ = a,  ∂/∂θ_u = ½ (aᵀ B_u a − tr(Σ⁻¹ B_u));
- ∂²/∂μ∂μ = −Σ⁻¹,  ∂²/∂μ∂θ_u = −Σ⁻¹ B_u a,
  ∂²/∂θ_u∂θ_v = ½ tr(Σ⁻¹ B_u Σ⁻¹ B_v) − aᵀ B_u Σ⁻¹ B_v a,

so the weighted Hessian sum needs only Σ w, Σ w a and Σ w a aᵀ per component.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from emkit.errors import ParameterError

__all__ = ["CovarianceMap", "COVARIANCE_MAPS", "GaussianInformation", "covariance_map",
           "full_covariances"]

_LOG_2PI = math.log(2.0 * math.pi)


class CovarianceMap(NamedTuple):
    """A covariance model as a linear map of free coordinates θ to the K covariance matrices."""

    #: (K, D) → names of the coordinates θ, in order (their number is the map's size)
    names: Callable[[int, int], list[str]]
    #: θ, K, D → the K full covariance matrices (K, D, D); linear in θ
    matrices: Callable[[np.ndarray, int, int], np.ndarray]
    #: full matrices (K, D, D) → the array ``covariances_`` holds
    reported: Callable[[np.ndarray], np.ndarray]


def _pairs(D: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(D) for b in range(a, D)]


def _symmetric(theta: np.ndarray, D: int) -> np.ndarray:
    """Symmetric matrices from their upper-triangle entries (row by row), (..., D, D)."""
    rows, columns = np.triu_indices(D)
    out = np.zeros(theta.shape[:-1] + (D, D))
    out[..., rows, columns] = theta
    out[..., columns, rows] = theta
    return out


COVARIANCE_MAPS: dict[str, CovarianceMap] = {
    "full": CovarianceMap(
        names=lambda K, D: [f"covariances[{k}, {a}, {b}]" for k in range(K)
                            for a, b in _pairs(D)],
        matrices=lambda theta, K, D: _symmetric(theta.reshape(K, -1), D),
        reported=lambda full: full),
    "tied": CovarianceMap(
        names=lambda K, D: [f"covariances[{a}, {b}]" for a, b in _pairs(D)],
        matrices=lambda theta, K, D: np.broadcast_to(_symmetric(theta, D), (K, D, D)),
        reported=lambda full: full[0]),
    "diag": CovarianceMap(
        names=lambda K, D: [f"covariances[{k}, {d}]" for k in range(K) for d in range(D)],
        matrices=lambda theta, K, D: theta.reshape(K, D)[:, :, None] * np.eye(D),
        reported=lambda full: np.diagonal(full, axis1=1, axis2=2)),
    "spherical": CovarianceMap(
        names=lambda K, D: [f"covariances[{k}]" for k in range(K)],
        matrices=lambda theta, K, D: theta[:, None, None] * np.eye(D),
        reported=lambda full: full[:, 0, 0]),
    # mclust's models with one variance, or one diagonal, shared by all components (stored
    # as "spherical" and "diag" are, every component holding the shared value).
    "EII": CovarianceMap(
        names=lambda K, D: ["covariances (shared)"],
        matrices=lambda theta, K, D: np.broadcast_to(theta[0] * np.eye(D), (K, D, D)),
        reported=lambda full: full[:, 0, 0]),
    "EEI": CovarianceMap(
        names=lambda K, D: [f"covariances[:, {d}] (shared)" for d in range(D)],
        matrices=lambda theta, K, D: np.broadcast_to(np.diag(theta), (K, D, D)),
        reported=lambda full: np.diagonal(full, axis1=1, axis2=2)),
}
# mclust's names of the models above that scikit-learn names too.
_SKLEARN_NAMES = {"VII": "spherical", "VVI": "diag", "EEE": "tied", "VVV": "full"}


def covariance_map(covariance_type: str) -> CovarianceMap:
    """The map of a covariance model (scikit-learn's or mclust's name); ParameterError for a
    model whose volume, shape or orientation is shared through an eigendecomposition (its map
    is not linear)."""
    name = _SKLEARN_NAMES.get(covariance_type, covariance_type)
    if name not in COVARIANCE_MAPS:
        raise ParameterError(
            f"standard errors are not available for covariance model {covariance_type!r} yet: "
            "it shares a volume, shape or orientation through an eigendecomposition. They are "
            f"for {', '.join(sorted(set(COVARIANCE_MAPS) | set(_SKLEARN_NAMES)))}.")
    return COVARIANCE_MAPS[name]


def full_covariances(covariances: np.ndarray, covariance_type: str, n_components: int,
                     n_features: int) -> np.ndarray:
    """The K covariance matrices (K, D, D) of scikit-learn's covariance shapes."""
    K, D = n_components, n_features
    covariances = np.asarray(covariances, dtype=float)
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.broadcast_to(covariances, (K, D, D)).copy()
    if covariance_type == "diag":
        return covariances[:, :, None] * np.eye(D)
    return covariances[:, None, None] * np.eye(D)


class GaussianInformation:
    """Scores and Hessians of log N(x | μ_k, Σ_k) in the coordinates (means, θ) at fitted
    means (K, D) and covariance matrices (K, D, D), for :func:`~emkit.models.information.
    mixture_standard_errors`."""

    def __init__(self, means: np.ndarray, covariances: np.ndarray, covariance_map: CovarianceMap):
        self.means = np.asarray(means, dtype=float)
        self.covariances = np.asarray(covariances, dtype=float)
        K, D = self.means.shape
        self.map = covariance_map
        cov_names = covariance_map.names(K, D)
        n_cov = len(cov_names)
        # B_u = ∂Σ_k/∂θ_u: the (linear) map applied to the unit vectors, (n_cov, K, D, D).
        self.basis = np.stack([covariance_map.matrices(unit, K, D) for unit in np.eye(n_cov)])
        self.precisions = np.linalg.inv(self.covariances)
        _, log_det = np.linalg.slogdet(self.covariances)
        self.log_det = log_det
        self.n_coordinates = K * D + n_cov
        self.coordinate_names = ([f"means[{k}, {d}]" for k in range(K) for d in range(D)]
                                 + cov_names)

    def _scaled_residuals(self, X: np.ndarray) -> np.ndarray:
        """a_ik = Σ_k⁻¹ (x_i − μ_k), (n, K, D)."""
        return np.einsum("kde,nke->nkd", self.precisions, X[:, None, :] - self.means[None])

    def log_density(self, X: np.ndarray) -> np.ndarray:
        D = self.means.shape[1]
        residuals = X[:, None, :] - self.means[None]
        mahalanobis = np.einsum("nkd,nkd->nk", residuals, self._scaled_residuals(X))
        return -0.5 * (D * _LOG_2PI + self.log_det[None, :] + mahalanobis)

    def scores(self, X: np.ndarray) -> np.ndarray:
        a = self._scaled_residuals(X)
        n, K, D = a.shape
        mean_scores = np.zeros((n, K, K, D))
        mean_scores[:, np.arange(K), np.arange(K)] = a
        traces = np.einsum("kde,ukde->ku", self.precisions, self.basis)
        # aᵀ B_u a = vec(a aᵀ) · vec(B_u): one matrix product per component
        quadratic = np.stack([(a[:, k, :, None] * a[:, k, None, :]).reshape(n, D * D)
                              @ self.basis[:, k].reshape(-1, D * D).T for k in range(K)],
                             axis=1)
        return np.concatenate([mean_scores.reshape(n, K, K * D), 0.5 * (quadratic - traces)],
                              axis=2)

    def hessian(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        a = self._scaled_residuals(X)
        K, D = self.means.shape
        count = weights.sum(axis=0)  # Σ w r, (K,)
        first = np.einsum("nk,nkd->kd", weights, a)  # Σ w r a, (K, D)
        second = np.einsum("nk,nkd,nke->kde", weights, a, a)  # Σ w r a aᵀ, (K, D, D)
        P, B = self.precisions, self.basis
        n_mean = K * D
        hessian = np.zeros((self.n_coordinates, self.n_coordinates))
        for k in range(K):
            block = slice(k * D, (k + 1) * D)
            hessian[block, block] = -count[k] * P[k]
        # −Σ⁻¹ B_u Σ w r a, (n_cov, K, D)
        cross = -np.einsum("kde,ukef,kf->ukd", P, B, first)
        hessian[:n_mean, n_mean:] = cross.reshape(len(B), n_mean).T
        hessian[n_mean:, :n_mean] = hessian[:n_mean, n_mean:].T
        PB = np.einsum("kde,ukef->ukdf", P, B)  # Σ⁻¹ B_u
        trace_term = 0.5 * np.einsum("k,ukab,vkba->uv", count, PB, PB)
        quadratic = np.einsum("ukab,vkbc,kca->uv", B, PB, second)  # tr(B_u Σ⁻¹ B_v Σ w a aᵀ)
        hessian[n_mean:, n_mean:] = trace_term - quadratic
        return hessian

    def reported(self) -> list[tuple[str, tuple[int, ...], np.ndarray]]:
        K, D = self.means.shape
        n_mean = K * D
        means_jacobian = np.zeros((n_mean, self.n_coordinates))
        means_jacobian[:, :n_mean] = np.eye(n_mean)
        # The reported covariances are linear in θ: their Jacobian is the reported basis.
        reported_basis = np.stack([self.map.reported(b) for b in self.basis])
        shape = reported_basis.shape[1:]
        covariances_jacobian = np.zeros((int(np.prod(shape)), self.n_coordinates))
        covariances_jacobian[:, n_mean:] = reported_basis.reshape(len(self.basis), -1).T
        return [("means", (K, D), means_jacobian),
                ("covariances", shape, covariances_jacobian)]
