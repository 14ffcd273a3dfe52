"""Standard errors of a fitted mixture from the observed information, written once for every family.

The observed-data log-likelihood of a mixture is ℓ(θ) = Σ_i w_i log Σ_k exp g_ik(θ), with
g_ik = log π_k + log p(x_i | θ_k) and w_i the row weights (a weight counts a row that many
times). Its exact Hessian is, per row, the Hessian of a log-sum-exp (Louis 1982: the expected
complete-data Hessian minus the conditional covariance of the complete-data score):

    ∇²ℓ = Σ_i w_i [ Σ_k r_ik ∇²g_ik  +  Σ_k r_ik (s_ik − s̄_i)(s_ik − s̄_i)ᵀ ],

where r_ik are the posteriors, s_ik = ∇g_ik the complete-data scores and s̄_i = Σ_k r_ik s_ik.
The observed information is −∇²ℓ at the estimate; its inverse is the covariance of the free
coordinates, and the delta method carries it to the reported parameters.

The mixing weights are handled here: their free coordinates are π_1 … π_{K−1}, with
π_K = 1 − Σ_{k<K} π_k (so the reported weights are linear in them). A family provides the rest
through an object with three methods (see :class:`ComponentInformation`): its log-densities, the
complete-data scores of its own coordinates per row and component, and the weighted sum of its
complete-data Hessians (which adds over blocks of rows, like the E-step's statistics).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from emkit.errors import NumericalError
from emkit.families.base import posteriors_from_log_joint

__all__ = ["ComponentInformation", "mixture_standard_errors",
           "mixture_information", "standard_errors_from_information"]

# Rows per block: the scores of a block are (rows, K, coordinates).
_BLOCK_ROWS = 2048
# A free coordinate whose information, on the scale of its diagonal, falls below this relative
# to the largest eigenvalue is not identified by the data.
_SINGULAR_RTOL = 1e-10
# Below −this (relative), the information is indefinite, not merely singular in round-off.
_NEGATIVE_RTOL = 1e-8


class ComponentInformation(Protocol):
    """What a family provides for the observed information of its components' free coordinates
    (a vector of length ``n_coordinates``, in the family's order)."""

    n_coordinates: int
    #: names of the free coordinates, e.g. ``"means[1, 0]"`` (for messages)
    coordinate_names: list[str]

    def log_density(self, X: np.ndarray) -> np.ndarray:
        """log p(x_i | θ_k) at the estimate, (n_rows, K)."""

    def scores(self, X: np.ndarray) -> np.ndarray:
        """∂ log p(x_i | θ_k) / ∂ coordinate, (n_rows, K, n_coordinates)."""

    def hessian(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Σ_i Σ_k weights_ik ∂² log p(x_i | θ_k), (n_coordinates, n_coordinates)."""

    def reported(self) -> list[tuple[str, tuple[int, ...], np.ndarray]]:
        """The reported parameters other than the weights: (name, shape, Jacobian of the
        raveled parameter over the family's coordinates, (prod(shape), n_coordinates))."""


def mixture_information(pieces: ComponentInformation, weights: np.ndarray, X: np.ndarray,
                        sample_weight: np.ndarray | None = None,
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Observed information of the mixture in its free coordinates: π_1 … π_{K−1}, then the
    family's coordinates, shape (K − 1 + n_coordinates,) * 2; and the size of the two terms
    whose difference its diagonal is (|complete-data information| + |score covariance|), the
    scale on which a diagonal entry of 0 is judged."""
    weights = np.asarray(weights, dtype=float)
    K = len(weights)
    n_free = K - 1 + pieces.n_coordinates
    # ∂ log π_k / ∂ π_j for the free π_j (j < K): 1/π_k on k = j, −1/π_K for k = K.
    weight_scores = np.zeros((K, K - 1))
    weight_scores[np.arange(K - 1), np.arange(K - 1)] = 1 / weights[:-1]
    weight_scores[K - 1] = -1 / weights[K - 1]
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    hessian = np.zeros((n_free, n_free))  # E[complete-data Hessian | x]
    covariance = np.zeros((n_free, n_free))  # Cov[complete-data score | x]
    counts = np.zeros(K)
    for start in range(0, len(X), _BLOCK_ROWS):
        rows = X[start:start + _BLOCK_ROWS]
        w = (np.ones(len(rows)) if sample_weight is None
             else sample_weight[start:start + _BLOCK_ROWS])
        _, posteriors = posteriors_from_log_joint(pieces.log_density(rows) + log_weights)
        weighted = w[:, None] * posteriors
        counts += weighted.sum(axis=0)
        scores = np.concatenate(
            [np.broadcast_to(weight_scores, (len(rows), K, K - 1)), pieces.scores(rows)], axis=2)
        # The conditional covariance of the complete-data score, row by row (centred first:
        # no cancellation between Σ r s sᵀ and s̄ s̄ᵀ).
        mean_score = np.einsum("nk,nkp->np", posteriors, scores)
        for k in range(K):
            centred = scores[:, k] - mean_score
            covariance += (centred * weighted[:, k, None]).T @ centred
        hessian[K - 1:, K - 1:] += pieces.hessian(rows, weighted)
    # Σ_k N_k ∂² log π_k: −N_k/π_k² on the diagonal, −N_K/π_K² everywhere.
    hessian[:K - 1, :K - 1] -= np.diag(counts[:-1] / weights[:-1] ** 2)
    hessian[:K - 1, :K - 1] -= counts[-1] / weights[-1] ** 2
    return -(hessian + covariance), np.abs(np.diag(hessian)) + np.diag(covariance)


def standard_errors_from_information(information: np.ndarray, names: list[str],
                                     reported: list[tuple[str, tuple[int, ...], np.ndarray]],
                                     scale: np.ndarray | None = None,
                                     ) -> dict[str, np.ndarray]:
    """Standard errors of the reported parameters: the inverse information (the covariance of
    the free coordinates) carried by each reported parameter's Jacobian (the delta method).

    ``names`` names the free coordinates; ``reported`` holds (name, shape, Jacobian of the
    raveled parameter over the free coordinates); ``scale`` (optional, per coordinate) is the
    size of the terms the diagonal was computed from, so that a diagonal entry within
    round-off of 0 counts as 0. Raises NumericalError naming a coordinate the data do not
    identify (the information is singular or not positive definite there).
    """
    information = (information + information.T) / 2
    diagonal = np.diag(information).copy()
    floor = 0.0 if scale is None else _SINGULAR_RTOL * np.asarray(scale)
    bad = np.flatnonzero(~(diagonal > floor))
    if bad.size:
        _not_identified(names[bad[0]], "its observed information is not positive")
    # Judged on the correlation scale, so that the coordinates' units do not matter.
    scale = 1 / np.sqrt(diagonal)
    scaled = information * scale[:, None] * scale[None, :]
    eigenvalues, eigenvectors = np.linalg.eigh(scaled)
    if eigenvalues[0] <= _SINGULAR_RTOL * eigenvalues[-1]:
        name = names[int(np.argmax(np.abs(eigenvectors[:, 0])))]
        if eigenvalues[0] < -_NEGATIVE_RTOL * eigenvalues[-1]:
            raise NumericalError(
                f"the standard errors cannot be computed: the observed information is not "
                f"positive definite (smallest eigenvalue {eigenvalues[0]:.3g} on the "
                f"correlation scale, mostly along {name}), so the parameters are not at a "
                "maximum of the likelihood of these rows: pass the rows (and sample_weight) "
                "the model was fitted to, and check that the fit converged (converged_); an "
                "over-fitted mixture (too many components) can also stop at a saddle point.")
        _not_identified(name, f"the observed information is singular (smallest eigenvalue "
                              f"{eigenvalues[0]:.3g} on the correlation scale)")
    # inverse = S V Λ⁻¹ Vᵀ S, S the scales.
    root = (eigenvectors * scale[:, None]) / np.sqrt(eigenvalues)[None, :]
    errors = {}
    for name, shape, jacobian in reported:
        projected = jacobian @ root
        errors[name] = np.sqrt(np.einsum("ij,ij->i", projected, projected)).reshape(shape)
    return errors


def mixture_standard_errors(pieces: ComponentInformation, weights: np.ndarray, X: np.ndarray,
                            sample_weight: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Standard errors of a fitted mixture's weights and its family's reported parameters,
    from the observed information on the rows ``X`` it was fitted to (with their weights)."""
    K = len(weights)
    information, scale = mixture_information(pieces, weights, X, sample_weight)
    names = [f"weights[{k}]" for k in range(K - 1)] + list(pieces.coordinate_names)
    n_free = len(names)
    weights_jacobian = np.zeros((K, n_free))
    weights_jacobian[np.arange(K - 1), np.arange(K - 1)] = 1.0
    weights_jacobian[K - 1, :K - 1] = -1.0
    reported = [("weights", (K,), weights_jacobian)]
    for name, shape, jacobian in pieces.reported():
        reported.append((name, shape, np.concatenate(
            [np.zeros((jacobian.shape[0], K - 1)), jacobian], axis=1)))
    return standard_errors_from_information(information, names, reported, scale)


def _not_identified(name: str, why: str):
    raise NumericalError(
        f"the standard errors cannot be computed: {name} is not identified by these data "
        f"({why}). Fit fewer components or a simpler model, or use more data; a component "
        "with a handful of rows, or a column that is constant within one, causes this.")
