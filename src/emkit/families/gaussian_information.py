"""The Gaussian family's part of the observed information (see :mod:`emkit.models.information`).

Free coordinates: the means (K·D, component by component), then the covariance model's own
coordinates θ, described by :class:`CovarianceCoordinates`: the derivatives ∂Σ_k/∂θ_u at the
estimate and, where the model is not linear in θ, the second derivatives ∂²Σ_k/∂θ_u∂θ_v.

Two kinds of coordinates cover mclust's 14 models:

- *Linear maps* (:data:`COVARIANCE_MAPS`): the K covariance matrices as a linear function of θ —
  the unique entries of each matrix ("full", VVV), of the one shared matrix ("tied", EEE), the
  diagonals ("diag", VVI), one variance per component ("spherical", VII), one shared variance
  (EII) or one shared diagonal (EEI). Their second derivatives are zero.
- *The eigendecomposition chart* (:func:`eigen_coordinates`) for the models that share a volume,
  shape or orientation through Σ_k = λ_k D_k A_k D_kᵀ (VEI, EVI, VEE, EVE, VVE, EEV, VEV, EVV;
  it serves the six linear models too, with the same standard errors of the reported
  parameters). Around the fitted Σ̂_k = Q_k diag(ω̂_k) Q_kᵀ,

      Σ_k(θ) = Q_k R_k diag(ω̂_k ∘ exp(z_k)) R_kᵀ Q_kᵀ,   R_k = exp(S_k),

  where the log-eigenvalue change z_k = v_k 1 + H η_k holds the log-volume change v_k (one
  coordinate, or one per component) and the log-shape change H η_k (H = [I; −1ᵀ], so that
  det A_k stays 1: D − 1 coordinates, shared, per component, or none for shape I), and S_k is
  the skew-symmetric matrix of the orientation coordinates (D(D − 1)/2, shared, per component,
  or none for orientation I). The chart is centred at the estimate (θ = 0 there), so only the
  first and second derivatives at 0 are needed, and exp(S) = I + S + S²/2 + … gives them in
  closed form. A rotation of two axes whose eigenvalues are equal does not change Σ_k: the
  orientation of a component whose fitted shape has two equal entries is not identified, and
  the standard errors then raise NumericalError naming it.

With a = Σ_k⁻¹ (x − μ_k) and B_u = ∂Σ_k / ∂θ_u, C_uv = ∂²Σ_k/∂θ_u∂θ_v, the derivatives of
log N(x | μ_k, Σ_k) are

- ∂/∂μ = a,  ∂/∂θ_u = ½ (aᵀ B_u a − tr(Σ⁻¹ B_u));
- ∂²/∂μ∂μ = −Σ⁻¹,  ∂²/∂μ∂θ_u = −Σ⁻¹ B_u a,
  ∂²/∂θ_u∂θ_v = ½ tr(Σ⁻¹ B_u Σ⁻¹ B_v) − aᵀ B_u Σ⁻¹ B_v a + ½ (aᵀ C_uv a − tr(Σ⁻¹ C_uv)),

so the weighted Hessian sum needs only Σ w, Σ w a and Σ w a aᵀ per component.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from emkit.errors import ParameterError
from emkit.families.parsimonious import COVARIANCE_TYPES, MODELS, layout

__all__ = ["CovarianceMap", "COVARIANCE_MAPS", "CovarianceCoordinates", "GaussianInformation",
           "covariance_coordinates", "eigen_coordinates", "full_covariances"]

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


class CovarianceCoordinates(NamedTuple):
    """A covariance model's free coordinates θ at the estimate: what the information needs."""

    #: names of the coordinates, in order
    names: list[str]
    #: ∂Σ_k/∂θ_u at the estimate, (n_coordinates, K, D, D)
    basis: np.ndarray
    #: full matrices (K, D, D) → the array ``covariances_`` holds (linear)
    reported: Callable[[np.ndarray], np.ndarray]
    #: None for a linear map; else (k, G) → (the coordinates Σ_k depends on (m,), and
    #: Σ_ab G_ab ∂²Σ_k[a, b]/∂θ_u∂θ_v over them (m, m)) for a symmetric G (D, D): the second
    #: derivatives, contracted as the Hessian uses them (never stored: (m, m, D, D) is large)
    curvature: Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None


def covariance_coordinates(covariance_type: str, covariances: np.ndarray) -> CovarianceCoordinates:
    """The free coordinates of a covariance model (scikit-learn's or mclust's name) at the
    fitted covariance matrices (K, D, D): a linear map where the model is linear in its
    parameters, the eigendecomposition chart (:func:`eigen_coordinates`) otherwise."""
    name = _SKLEARN_NAMES.get(covariance_type, covariance_type)
    K, D, _ = np.shape(covariances)
    if name in COVARIANCE_MAPS:
        model_map = COVARIANCE_MAPS[name]
        names = model_map.names(K, D)
        # The map is linear: its derivatives are the map of the unit vectors.
        basis = np.stack([model_map.matrices(unit, K, D) for unit in np.eye(len(names))])
        return CovarianceCoordinates(names, basis, model_map.reported)
    if name not in MODELS:
        raise ParameterError(f"unknown covariance model {covariance_type!r}: standard errors "
                             f"are for {', '.join(COVARIANCE_TYPES)}.")
    return eigen_coordinates(name, covariances)


def _frames(model: str, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orientations Q_k (K, D, D) and eigenvalues ω_k (K, D) with Σ_k = Q_k diag(ω_k) Q_kᵀ,
    ordered so that a shared shape is the same vector ω_k / det(Σ_k)^(1/D) for every k."""
    K, D, _ = covariances.shape
    orientation = model[2]
    if orientation == "I":
        return (np.broadcast_to(np.eye(D), (K, D, D)),
                np.diagonal(covariances, axis1=1, axis2=2).copy())
    if orientation == "E":
        # The shared orientation diagonalises every Σ_k: the eigenvectors of a generic
        # combination of them (a single one may have repeated eigenvalues).
        mix = np.linspace(1.0, 2.0, K) / np.trace(covariances, axis1=1, axis2=2)
        vectors = np.linalg.eigh(np.tensordot(mix, covariances, axes=1))[1]
        rotated = vectors.T @ covariances @ vectors
        return np.broadcast_to(vectors, (K, D, D)), np.diagonal(rotated, axis1=1, axis2=2)
    # Own orientations: eigenvalues in descending order, as the M-step of a shared shape
    # (EEV, VEV) pairs them.
    values, vectors = np.linalg.eigh(covariances)
    return vectors[..., ::-1], values[..., ::-1]


def eigen_coordinates(model: str, covariances: np.ndarray) -> CovarianceCoordinates:
    """The eigendecomposition chart of an mclust model (any of the 14) at the fitted
    covariance matrices (K, D, D); see the module docstring. Coordinates: the log-volume
    changes (1 or K), the log-shape changes (0, D − 1 or K(D − 1)), the orientation angles
    (0, D(D − 1)/2 or K·D(D − 1)/2)."""
    covariances = np.asarray(covariances, dtype=float)
    K, D, _ = covariances.shape
    volume, shape, orientation = model
    frames, eigenvalues = _frames(model, covariances)
    first_axes, second_axes = np.triu_indices(D, 1)  # the planes of the rotations
    axes = list(zip(first_axes, second_axes, strict=True))
    # Each kind of coordinate: its names and, per component, the global indices it uses.
    kinds = [(volume, ["log-volume"], np.ones((D, 1)))]
    if shape != "I":
        # z = H η with H = [I; −1ᵀ]: the log-shape changes keep det A = 1.
        kinds.append((shape, [f"log-shape[{j}]" for j in range(D - 1)],
                      np.vstack([np.eye(D - 1), -np.ones((1, D - 1))])))
    if orientation != "I":
        kinds.append((orientation, [f"orientation[{a}, {b}]" for a, b in axes], None))
    names, indices = [], [[] for _ in range(K)]
    for sharing, kind_names, _ in kinds:
        start = len(names)
        for owner in (range(K) if sharing == "V" else [None]):
            names.extend(_owned(local, owner) for local in kind_names)
        for k in range(K):
            offset = start + (k * len(kind_names) if sharing == "V" else 0)
            indices[k].extend(range(offset, offset + len(kind_names)))
    log_scales = np.hstack([z for _, _, z in kinds if z is not None])  # (D, n_scale)
    n_scale = log_scales.shape[1]
    generators = np.zeros((len(axes), D, D))  # E_ab = e_a e_bᵀ − e_b e_aᵀ
    for p, (a, b) in enumerate(axes):
        generators[p, a, b], generators[p, b, a] = 1.0, -1.0
    n_rotation = len(axes) if orientation != "I" else 0
    # In the frame of Q_k, with W = diag(ω): a log-eigenvalue change z scales ω by exp(z)
    # (first derivative diag(ω z)); a rotation E turns a diagonal M into [E, M].
    basis = np.zeros((len(names), K, D, D))
    for k in range(K):
        W = np.diag(eigenvalues[k])
        first = [np.einsum("d,du,de->ude", eigenvalues[k], log_scales, np.eye(D))]
        if n_rotation:
            first.append(generators @ W - W @ generators)
        basis[indices[k], k] = frames[k] @ np.concatenate(first) @ frames[k].T

    def curvature(k: int, gradient: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        omega = eigenvalues[k]
        G = frames[k].T @ gradient @ frames[k]
        out = np.zeros((n_scale + n_rotation,) * 2)
        # ∂²/∂z_u∂z_v = diag(ω z_u z_v)
        out[:n_scale, :n_scale] = np.einsum("d,du,dv->uv", omega * np.diag(G), log_scales,
                                            log_scales)
        if n_rotation:
            # ∂²/∂z_u∂s_p = [E_p, W_u], W_u = diag(ω z_u); ⟨[E_ab, W_u], G⟩ =
            # 2 G_ab (W_u,bb − W_u,aa)
            scaled = omega[:, None] * log_scales
            mixed = 2 * G[first_axes, second_axes][:, None] * (scaled[second_axes]
                                                               - scaled[first_axes])
            out[n_scale:, :n_scale] = mixed
            out[:n_scale, n_scale:] = mixed.T
            # exp(S) W exp(S)ᵀ = W + [S, W] + ½(S²W + WS²) − SWS + …: ∂²/∂s_p∂s_q contracted
            # with G is tr((E_p E_q + E_q E_p) Y) − tr(E_p W E_q G) − tr(E_q W E_p G),
            # Y = (GW + WG)/2.
            E, W = generators, np.diag(omega)
            symmetric = np.einsum("pij,qji->pq", E, E @ (0.5 * (G @ W + W @ G)))
            cross = np.einsum("pij,qji->pq", E @ W, E @ G)
            out[n_scale:, n_scale:] = symmetric + symmetric.T - cross - cross.T
        return np.array(indices[k]), out

    return CovarianceCoordinates(names, basis, COVARIANCE_MAPS[layout(model)].reported,
                                 curvature)


def _owned(name: str, owner: int | None) -> str:
    """A coordinate's name for component ``owner`` ("log-shape[1]" → "log-shape[0, 1]"), or
    marked shared (None)."""
    if owner is None:
        return f"{name} (shared)"
    return name.replace("[", f"[{owner}, ", 1) if "[" in name else f"{name}[{owner}]"


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

    def __init__(self, means: np.ndarray, covariances: np.ndarray,
                 coordinates: CovarianceCoordinates):
        self.means = np.asarray(means, dtype=float)
        self.covariances = np.asarray(covariances, dtype=float)
        K, D = self.means.shape
        self.coordinates = coordinates
        cov_names = coordinates.names
        n_cov = len(cov_names)
        self.basis = coordinates.basis  # B_u = ∂Σ_k/∂θ_u, (n_cov, K, D, D)
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
        # A chart that is not linear adds ⟨C_uv, ∂ℓ_k/∂Σ_k⟩ = ½ tr(C_uv (Σ w a aᵀ − Σ w Σ_k⁻¹)).
        if self.coordinates.curvature is not None:
            for k in range(K):
                index, contracted = self.coordinates.curvature(
                    k, 0.5 * (second[k] - count[k] * P[k]))
                block = n_mean + index
                hessian[np.ix_(block, block)] += contracted
        return hessian

    def reported(self) -> list[tuple[str, tuple[int, ...], np.ndarray]]:
        K, D = self.means.shape
        n_mean = K * D
        means_jacobian = np.zeros((n_mean, self.n_coordinates))
        means_jacobian[:, :n_mean] = np.eye(n_mean)
        # The reported covariances are linear in the matrices: their Jacobian is the
        # reported basis.
        reported_basis = np.stack([self.coordinates.reported(b) for b in self.basis])
        shape = reported_basis.shape[1:]
        covariances_jacobian = np.zeros((int(np.prod(shape)), self.n_coordinates))
        covariances_jacobian[:, n_mean:] = reported_basis.reshape(len(self.basis), -1).T
        return [("means", (K, D), means_jacobian),
                ("covariances", shape, covariances_jacobian)]
