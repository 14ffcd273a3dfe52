"""Multivariate Student-t components with full scale matrices: robust clustering.

x | component k ~ t_ν(μ_k, Σ_k): with a latent scale u ~ Gamma(ν_k/2, rate ν_k/2),
x | u ~ N(μ_k, Σ_k / u). A row far from μ_k gets a small expected u and so little weight in
the component's mean and scale: outliers do not drag the fit (Peel & McLachlan 2000,
"Robust mixture modelling using the t distribution", Stat. Comput. 10: 339–348).

E-step, with δ_ik = (x_i − μ_k)ᵀ Σ_k⁻¹ (x_i − μ_k) and the posterior τ_ik of the component:
u_ik = E[u | x_i, k] = (ν_k + D) / (ν_k + δ_ik). The additive statistics are Σ_i τ_ik, the
u-weighted moments Σ τu, Σ τu (x − c), Σ τu (x − c)(x − c)ᵀ about c = μ_k (kept as
:class:`~emkit.families.gaussian.GaussianStats`, which add about a common centre by the
parallel-axis rule), and Σ_i τ_ik (log u_ik − u_ik).

M-step: μ_k = Σ τu x / Σ τu, Σ_k = Σ τu (x − μ_k)(x − μ_k)ᵀ / Σ τ (+ ``reg_covar`` on the
diagonal), and ν_k the root of the 1-D equation of the complete-data likelihood
(McLachlan & Peel 2000, Finite Mixture Models, eq. 7.30):

    −ψ(ν/2) + log(ν/2) + 1 + Σ τ (log u − u) / Σ τ + ψ((ν_old + D)/2) − log((ν_old + D)/2) = 0,

solved by Brent's method within [``DOF_BOUNDS``]. This is an exact EM step for ν (the latent
u are part of the complete data), so every iteration raises the likelihood; ECME's variant,
which maximises the observed likelihood in ν, needs another pass over the data per iteration,
and SQUAREM already removes most of EM's slowness along ν. ``dof=`` fixes ν instead.

A component whose scale matrix is not numerically positive definite (the Gaussian family's
pivot test: with ``reg_covar=0`` a component can collapse onto D rows, where the likelihood is
unbounded and the log-determinant round-off) keeps its previous parameters, a recorded event.

Rows must be complete (no NaN): the t's conditional second moments of missing coordinates
are not the u-weighted Gaussian ones.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.optimize import brentq
from scipy.special import digamma, gammaln, polygamma

from emkit.errors import DataError
from emkit.families.base import FamilyDefaults, mixing_weights
from emkit.families.gaussian import MIN_PIVOT_RATIO, GaussianStats, lower_triangle
from emkit.kernels.gaussian import precision_cholesky_factors

#: Degrees of freedom are estimated within these bounds (ν → ∞ is the Gaussian; ν = 1 the
#: Cauchy): beyond 200 the likelihood barely changes, and below 0.5 a component explains
#: nothing but its few central rows.
DOF_BOUNDS = (0.5, 200.0)
_START_DOF = 10.0


class StudentParams(NamedTuple):
    means: np.ndarray  # (K, D) μ_k
    covariances: np.ndarray  # (K, D, D) scale matrices Σ_k (the covariance is ν/(ν−2) Σ_k)
    dof: np.ndarray  # (K,) degrees of freedom ν_k


class StudentStats(NamedTuple):
    rows: np.ndarray  # (K,) Σ_i τ_ik
    log_scale: np.ndarray  # (K,) Σ_i τ_ik (log u_ik − u_ik)
    moments: GaussianStats  # u-weighted moments about the current means


def _cholesky(covariances: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors (K, D, D); raises LinAlgError if one is not positive definite."""
    return np.linalg.cholesky(covariances)


def mahalanobis(params: StudentParams, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """δ_ik (n, K) and log det Σ_k (K,)."""
    factors = _cholesky(params.covariances)
    # The inverse factors are K small D × D matrices, applied by einsum rather than a BLAS or
    # LAPACK call per component: on a busy machine those wake numpy's threads and cost 10–100×
    # the arithmetic.
    inverses = np.linalg.inv(factors)
    delta = np.empty((len(X), len(params.means)))
    for k, (mean, inverse) in enumerate(zip(params.means, inverses, strict=True)):
        z = np.einsum("nd,ed->ne", X - mean, inverse)
        delta[:, k] = np.einsum("ne,ne->n", z, z)
    log_det = 2.0 * np.log(np.diagonal(factors, axis1=1, axis2=2)).sum(axis=1)
    return delta, log_det


def dof_equation(dof: np.ndarray | float, mean_log_scale: float, previous: float,
                 n_features: int):
    """The left side of the ν equation (decreasing in ν; see the module docstring)."""
    half_new = 0.5 * (previous + n_features)
    return (-digamma(0.5 * dof) + np.log(0.5 * dof) + 1.0 + mean_log_scale
            + digamma(half_new) - math.log(half_new))


def update_dof(mean_log_scale: float, previous: float, n_features: int) -> float:
    """The root of :func:`dof_equation` in ``DOF_BOUNDS`` (a bound where the root lies beyond
    it: the expected complete-data likelihood is unimodal in ν)."""
    low, high = DOF_BOUNDS
    if dof_equation(high, mean_log_scale, previous, n_features) >= 0:
        return high
    if dof_equation(low, mean_log_scale, previous, n_features) <= 0:
        return low
    return float(brentq(dof_equation, low, high, args=(mean_log_scale, previous, n_features),
                        xtol=1e-12, rtol=1e-14))


class StudentFamily(FamilyDefaults):
    """K multivariate t components with full scale matrices (a :class:`ComponentFamily
    <emkit.families.base.ComponentFamily>`).

    Parameters
    ----------
    dof : float or None
        Fixed degrees of freedom of every component; None estimates one per component.
    reg_covar : float
        Added to the diagonal of every scale matrix (keeps them positive definite).
    """

    def __init__(self, dof: float | None = None, reg_covar: float = 1e-6):
        self.dof = None if dof is None else float(dof)
        self.reg_covar = float(reg_covar)

    def read(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2:
            raise DataError(f"a Student-t mixture needs rows of numbers (a 2-D array), got "
                            f"shape {X.shape}.")
        if np.isnan(X).any():
            raise DataError("a Student-t mixture needs complete rows (its E-step has no exact "
                            "form for missing values): drop or impute the rows with NaN, or "
                            "use a GaussianMixture, which handles them.")
        return X

    def log_density(self, params: StudentParams, X: np.ndarray) -> np.ndarray:
        """log t_ν(x | μ, Σ), shape (n, K)."""
        delta, log_det = mahalanobis(params, X)
        D = X.shape[1]
        nu = params.dof
        constant = (gammaln(0.5 * (nu + D)) - gammaln(0.5 * nu) - 0.5 * D * np.log(nu * np.pi)
                    - 0.5 * log_det)
        return constant - 0.5 * (nu + D) * np.log1p(delta / nu)

    def statistics(self, params: StudentParams, X: np.ndarray,
                   weights: np.ndarray) -> StudentStats:
        weights = np.asarray(weights, dtype=float)
        D = X.shape[1]
        delta, _ = mahalanobis(params, X)
        u = (params.dof + D) / (params.dof + delta)  # E[u | x, k]
        tu = weights * u
        centred = X[:, None, :] - params.means[None, :, :]  # (n, K, D)
        moments = GaussianStats(tu.sum(axis=0), np.einsum("nk,nkd->kd", tu, centred),
                                np.einsum("nk,nkd,nke->kde", tu, centred, centred),
                                params.means)
        return StudentStats(weights.sum(axis=0), (weights * (np.log(u) - u)).sum(axis=0),
                            moments)

    def component_weights(self, stats: StudentStats) -> np.ndarray:
        return stats.rows

    def m_step(self, stats: StudentStats, params: StudentParams) -> tuple[StudentParams, tuple]:
        K, D = params.means.shape
        m = stats.moments
        means, covariances, dof = params.means.copy(), params.covariances.copy(), \
            params.dof.copy()
        events = []
        for k in range(K):
            if not (m.weight[k] > 1e-12 * max(m.weight.sum(), 1e-300) and stats.rows[k] > 0):
                events.append(f"component {k} has no weight: kept its previous parameters")
                continue
            shift = m.first[k] / m.weight[k]
            scatter = m.second[k] - np.outer(m.first[k], shift)  # about the new mean
            covariance = 0.5 * (scatter + scatter.T) / stats.rows[k]
            covariance[np.diag_indices(D)] += self.reg_covar
            # Numerically positive definite, by the Gaussian family's scale-free pivot test: a
            # component collapsing onto D rows (reg_covar=0) has a scatter whose smallest
            # eigenvalue is round-off, which Cholesky alone may accept; its log-determinant,
            # and so the log-likelihood, would then be noise that rises and falls by whole
            # nats (EM's ascent lost). Keeping the previous parameters is a generalised EM step.
            _, singular = precision_cholesky_factors(covariance[None], MIN_PIVOT_RATIO)
            if singular[0]:
                events.append(f"component {k}'s scale matrix is not positive definite: kept "
                              "its previous parameters")
                continue
            means[k] = m.center[k] + shift
            covariances[k] = covariance
            if self.dof is None:
                dof[k] = update_dof(stats.log_scale[k] / stats.rows[k], params.dof[k], D)
        return StudentParams(means, covariances, dof), tuple(events)

    def information(self, params: StudentParams) -> StudentInformation:
        """The pieces of the observed information (:mod:`emkit.models.information`): the
        means, the scale matrices and, when estimated, the degrees of freedom; a ν_k on a
        bound of ``DOF_BOUNDS`` is not at an interior maximum and is held fixed (its
        standard error is NaN)."""
        low, high = DOF_BOUNDS
        dof = np.asarray(params.dof, dtype=float)
        free = (dof > low * (1 + 1e-9)) & (dof < high * (1 - 1e-9))
        return StudentInformation(params, None if self.dof is not None else free)

    def init(self, parts, n_components: int,
             rng: np.random.Generator) -> tuple[np.ndarray, StudentParams]:
        """Clusters of a trimmed k-means: k-means on all rows, then twice again on the rows
        that are neither among the tenth farthest from their centres nor in a cluster of
        under 5% of the rows. Gross outliers would otherwise take a component of their own,
        a local maximum the t mixture need not start from (a small true cluster is then
        found by EM or by restarts). Every row goes to its nearest final centre; each
        cluster's covariance (of its kept rows, blended with a tenth of the data's, so that a
        small cluster's is positive definite) and weight start the components, with
        ν = ``dof`` or 10."""
        from emkit.models.clustering import kmeans, nearest

        X = np.concatenate([data for data, _ in parts])
        w = np.concatenate([np.ones(len(data)) if rw is None else rw for data, rw in parts])
        X, w = X[w > 0], w[w > 0]
        D = X.shape[1]
        overall = np.atleast_2d(np.cov(X.T, aweights=w)) if len(X) > 1 else np.eye(D)
        kept = np.ones(len(X), bool)
        for _ in range(3):
            _, centers = kmeans(X[kept], n_components, rng, w[kept])
            labels, distance = nearest(X, centers)
            sizes = np.bincount(labels[kept], weights=w[kept], minlength=n_components)
            trimmed = kept & (distance <= np.quantile(distance[kept], 0.9)) & (
                sizes[labels] >= 0.05 * w[kept].sum())
            if trimmed.sum() < max(n_components, 0.5 * len(X)):
                break
            kept = trimmed
        labels, _ = nearest(X, centers)
        means = np.asarray(centers, dtype=float).copy()
        covariances = np.empty((n_components, D, D))
        counts = np.zeros(n_components)
        for k in range(n_components):
            mine = labels == k
            counts[k] = w[mine].sum()
            core = mine & kept
            own = np.atleast_2d(np.cov(X[core].T, aweights=w[core])) if core.sum() > 1 \
                else overall
            covariances[k] = 0.9 * own + 0.1 * overall + self.reg_covar * np.eye(D)
        # Where k-means finds one partition from every seed, a jitter of a tenth of a standard
        # deviation still gives restarts distinct starting points.
        scale = np.sqrt(np.diagonal(covariances, axis1=1, axis2=2))
        means += 0.1 * scale * rng.standard_normal(means.shape)
        dof = np.full(n_components, _START_DOF if self.dof is None else self.dof)
        return mixing_weights(counts), StudentParams(means, covariances, dof)

    def flatten(self, params: StudentParams) -> np.ndarray:
        """Means, log-Cholesky factors of the scale matrices (lower triangle, log diagonal),
        and log ν when estimated."""
        factors = _cholesky(params.covariances)
        K, D = params.means.shape
        rows, cols = lower_triangle(D)
        lower = factors[:, rows, cols]
        lower[:, rows == cols] = np.log(lower[:, rows == cols])
        parts = [params.means.ravel(), lower.ravel()]
        if self.dof is None:
            parts.append(np.log(params.dof))
        return np.concatenate(parts)

    def unflatten(self, vector: np.ndarray, template: StudentParams) -> StudentParams:
        K, D = template.means.shape
        rows, cols = lower_triangle(D)
        means = vector[:K * D].reshape(K, D)
        lower = vector[K * D:K * D + K * len(rows)].reshape(K, len(rows)).copy()
        with np.errstate(over="raise"):
            lower[:, rows == cols] = np.exp(lower[:, rows == cols])
            factors = np.zeros((K, D, D))
            factors[:, rows, cols] = lower
            covariances = factors @ np.swapaxes(factors, 1, 2)
            dof = np.clip(np.exp(vector[K * D + K * len(rows):]), *DOF_BOUNDS) \
                if self.dof is None else template.dof
        if not (np.all(np.isfinite(covariances)) and np.all(np.isfinite(means))):
            raise FloatingPointError("the extrapolated parameters are not finite")
        return StudentParams(means, covariances, dof)

    def n_parameters(self, n_components: int, n_features: int) -> int:
        per_component = n_features + n_features * (n_features + 1) // 2
        return n_components * (per_component + (self.dof is None))

    def sample(self, params: StudentParams, components: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        """One row drawn from each component in ``components``: μ + L z / √u."""
        D = params.means.shape[1]
        factors = _cholesky(params.covariances)[components]
        nu = params.dof[components]
        u = rng.gamma(0.5 * nu, 2.0 / nu)  # Gamma(ν/2, rate ν/2)
        z = rng.standard_normal((len(components), D))
        return params.means[components] + np.einsum("nij,nj->ni", factors, z) / np.sqrt(u)[:, None]


class StudentInformation:
    """The pieces of the observed information of K multivariate t components (see
    :class:`emkit.models.information.ComponentInformation`). Coordinates: the means (K·D),
    the unique entries of each scale matrix (as the Gaussian "full" model), then ν_k of the
    components in ``free_dof`` (None: the degrees of freedom are fixed and not reported).

    With r = x − μ, a = Σ⁻¹ r, δ = rᵀ a and u = (ν + D) / (ν + δ),
    log t = c(ν) − ½ log det Σ + f(δ, ν), c(ν) = log Γ((ν + D)/2) − log Γ(ν/2) − (D/2) log(νπ),
    f = −½ (ν + D) log(1 + δ/ν). The chain rule through δ gives everything:
    ∂δ/∂μ = −2a, ∂δ/∂θ_u = −aᵀ B_u a (B_u = ∂Σ/∂θ_u), ∂²δ/∂μ∂μ = 2Σ⁻¹,
    ∂²δ/∂μ∂θ_u = 2Σ⁻¹ B_u a, ∂²δ/∂θ_u∂θ_v = 2 aᵀ B_u Σ⁻¹ B_v a; f_δ = −u/2,
    f_δδ = u² / (2(ν + D)), f_δν = −(δ − D) / (2(ν + δ)²),
    f_ν = −½ log(1 + δ/ν) − u/2 + (ν + D)/(2ν),
    f_νν = −½ (1/(ν + δ) − 1/ν) − (δ − D)/(2(ν + δ)²) − D/(2ν²).
    The Gaussian's derivatives are the limit ν → ∞ (u = 1, f_δδ = 0)."""

    def __init__(self, params: StudentParams, free_dof: np.ndarray | None):
        from emkit.families.gaussian_information import COVARIANCE_MAPS

        self.params = params
        K, D = params.means.shape
        full = COVARIANCE_MAPS["full"]
        n_unique = D * (D + 1) // 2
        # ∂Σ_k/∂θ_u of one component's unique entries, (n_unique, D, D)
        self.units = np.stack([full.matrices(unit, 1, D)[0] for unit in np.eye(n_unique)])
        self.precisions = np.linalg.inv(params.covariances)
        self.free_dof = free_dof
        free = [] if free_dof is None else list(np.flatnonzero(free_dof))
        self.n_coordinates = K * (D + n_unique) + len(free)
        self.coordinate_names = ([f"means[{k}, {d}]" for k in range(K) for d in range(D)]
                                 + full.names(K, D) + [f"dof[{k}]" for k in free])
        # The coordinates of component k: its mean, its scale matrix, its ν if free.
        self.indices = []
        for k in range(K):
            own = [*range(k * D, (k + 1) * D),
                   *range(K * D + k * n_unique, K * D + (k + 1) * n_unique)]
            if k in free:
                own.append(K * (D + n_unique) + free.index(k))
            self.indices.append(np.array(own))

    def _terms(self, X: np.ndarray, k: int):
        """a (n, D), δ (n,), u (n,) and ∂δ over (μ_k, θ_k), (n, D + n_unique)."""
        P = self.precisions[k]
        residuals = X - self.params.means[k]
        a = residuals @ P
        delta = np.einsum("nd,nd->n", residuals, a)
        nu = self.params.dof[k]
        u = (nu + X.shape[1]) / (nu + delta)
        quadratic = np.einsum("nd,ude,ne->nu", a, self.units, a)  # aᵀ B_u a
        return a, delta, u, np.concatenate([-2 * a, -quadratic], axis=1)

    def _dof_free(self, k: int) -> bool:
        return self.free_dof is not None and bool(self.free_dof[k])

    def log_density(self, X: np.ndarray) -> np.ndarray:
        return StudentFamily().log_density(self.params, X)

    def scores(self, X: np.ndarray) -> np.ndarray:
        K, D = self.params.means.shape
        scores = np.zeros((len(X), K, self.n_coordinates))
        for k in range(K):
            a, delta, u, grad = self._terms(X, k)
            traces = np.einsum("de,ued->u", self.precisions[k], self.units)
            own = [u[:, None] * a, 0.5 * (u[:, None] * -grad[:, D:] - traces)]
            if self._dof_free(k):
                nu = self.params.dof[k]
                own.append((0.5 * (digamma(0.5 * (nu + D)) - digamma(0.5 * nu)) - 0.5 * D / nu
                            - 0.5 * np.log1p(delta / nu) - 0.5 * u + 0.5 * (nu + D) / nu
                            )[:, None])
            scores[:, k, self.indices[k]] = np.concatenate(own, axis=1)
        return scores

    def hessian(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        K, D = self.params.means.shape
        hessian = np.zeros((self.n_coordinates, self.n_coordinates))
        B = self.units
        for k in range(K):
            w = weights[:, k]
            P, nu = self.precisions[k], self.params.dof[k]
            a, delta, u, grad = self._terms(X, k)
            n_own = grad.shape[1]
            block = np.zeros((len(self.indices[k]),) * 2)
            # f_δ ∇²δ, with f_δ = −u/2
            f_delta = -0.5 * w * u
            first = f_delta @ a
            second = np.einsum("n,nd,ne->de", f_delta, a, a)
            block[:D, :D] = 2 * f_delta.sum() * P
            block[:D, D:n_own] = 2 * np.einsum("de,uef,f->du", P, B, first)
            # 2 tr(B_u P B_v Σ f_δ a aᵀ), and ½ Σ w tr(P B_u P B_v) from −½ log det Σ
            block[D:n_own, D:n_own] = 2 * np.einsum("uab,vba->uv", B @ P, B @ second)
            PB = P @ B
            block[D:n_own, D:n_own] += 0.5 * w.sum() * np.einsum("uab,vba->uv", PB, PB)
            # f_δδ ∇δ ∇δᵀ
            block[:n_own, :n_own] += grad.T @ ((w * u**2 / (2 * (nu + D)))[:, None] * grad)
            block[D:n_own, :D] = block[:D, D:n_own].T
            if self._dof_free(k):
                cross = grad.T @ (-0.5 * w * (delta - D) / (nu + delta) ** 2)
                block[:n_own, -1] = block[-1, :n_own] = cross
                c_second = (0.25 * (polygamma(1, 0.5 * (nu + D)) - polygamma(1, 0.5 * nu))
                            + 0.5 * D / nu**2)
                f_second = (-0.5 * (1 / (nu + delta) - 1 / nu)
                            - 0.5 * (delta - D) / (nu + delta) ** 2 - 0.5 * D / nu**2)
                block[-1, -1] = w.sum() * c_second + w @ f_second
            hessian[np.ix_(self.indices[k], self.indices[k])] += block
        return hessian

    def reported(self) -> list[tuple[str, tuple[int, ...], np.ndarray]]:
        K, D = self.params.means.shape
        n_unique = len(self.units)
        means = np.zeros((K * D, self.n_coordinates))
        means[:, :K * D] = np.eye(K * D)
        covariances = np.zeros((K, D * D, self.n_coordinates))
        for k in range(K):
            covariances[k][:, self.indices[k][D:D + n_unique]] = self.units.reshape(
                n_unique, D * D).T
        out = [("means", (K, D), means),
               ("covariances", (K, D, D), covariances.reshape(K * D * D, -1))]
        if self.free_dof is not None:
            # A ν on a bound is held fixed: a row of NaN gives it no standard error.
            dof = np.full((K, self.n_coordinates), np.nan)
            for k in range(K):
                if self.free_dof[k]:
                    dof[k] = 0.0
                    dof[k, self.indices[k][-1]] = 1.0
            out.append(("dof", (K,), dof))
        return out
