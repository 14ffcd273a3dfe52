"""Compiled loops of the iterative M-steps of mclust's covariance models
(:mod:`emkit.families.parsimonious`), for G mixtures at once, and of the whole M-step of a
stack of mixtures of any models (:func:`covariances_of_models`, a grid's).

Three alternating minimisations have no closed form: the volumes and common shape of VEI and
VEV, the volumes and common matrix of VEE, and the common orientation of EVE and VVE (Jacobi
sweeps). Each iteration is a handful of small array operations, so in numpy a stack of mixtures
costs a few hundred microseconds per M-step in call overhead alone — most of a grid's M-step
(:func:`emkit.select_model` over the 14 models). Here each mixture iterates in a loop until its
own rule stops it, as the numpy forms beside them do; :mod:`emkit.kernels.tiers` picks the
form (numpy until the compiled loops are in numba's cache or have paid for compiling). Both
forms stop each mixture by the same rule and agree to rounding.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from emkit.kernels import tiers

_OPTS = dict(nogil=True, cache=True)


# --------------------------------------------------------------------------- VEI, VEV
def volumes_and_common_shape(values, weights, shape, tol, max_iter):
    """Alternate λ_k = mean_j(ω_kj / a_j) and A ∝ Σ_k p_k ω_k / λ_k (det A = 1) from ``shape``
    (G, d), updated in place, for the diagonals ``values`` (G, K, d) and weights (G, K)."""
    if _SHAPE.use_compiled("d", 0, (values, weights, shape, tol, max_iter)):
        _shape_loop(values, weights, shape, tol, max_iter)
    else:
        _SHAPE.run_numpy(_shape_numpy, values, weights, shape, tol, max_iter)


def _alternate(step, state, tol, max_iter):
    """The numpy forms' loop: ``state`` (G, …) ← ``step(state)``'s update, in place, for the
    mixtures still going; each stops once its objective (``step``'s value) falls by no more
    than ``tol`` (relative), as the compiled loops stop each mixture."""
    last = np.full(len(state), np.inf)
    going = np.ones(len(state), dtype=bool)
    for _ in range(max_iter):
        value, update = step(state)
        state[:] = np.where(going.reshape((-1,) + (1,) * (state.ndim - 1)), update, state)
        going &= _still_falling(last, value, tol)
        if not going.any():
            break
        last = value


def _still_falling(last, value, tol):
    return last - value > tol * np.maximum(np.abs(value), 1.0)


def _geometric_mean(values):
    return np.exp(np.mean(np.log(values), axis=-1))


def _shape_numpy(values, weights, shape, tol, max_iter):
    def step(shape):
        volumes = np.mean(values / shape[:, None], axis=2)
        value = np.einsum("gk,gk->g", weights, values.shape[2] * np.log(volumes))
        pooled = np.einsum("gk,gkj->gj", weights, values / volumes[..., None])
        return value, pooled / _geometric_mean(pooled)[:, None]

    _alternate(step, shape, tol, max_iter)


@numba.njit(**_OPTS)
def _shape_loop(values, weights, shape, tol, max_iter):
    for g in range(values.shape[0]):
        _shape_one(values[g], weights[g], shape[g], tol, max_iter)


@numba.njit(**_OPTS)
def _shape_one(values, weights, shape, tol, max_iter):
    """One mixture's alternation (values (K, d), weights (K,), shape (d,) in place)."""
    K, d = values.shape
    pooled = np.empty(d)
    last = np.inf
    for _ in range(max_iter):
        value = 0.0
        pooled[:] = 0.0
        for k in range(K):
            volume = 0.0
            for j in range(d):
                volume += values[k, j] / shape[j]
            volume /= d
            value += weights[k] * d * math.log(volume)
            for j in range(d):
                pooled[j] += weights[k] * values[k, j] / volume
        log_mean = 0.0
        for j in range(d):
            log_mean += math.log(pooled[j])
        scale = math.exp(log_mean / d)
        for j in range(d):
            shape[j] = pooled[j] / scale
        if not last - value > tol * max(abs(value), 1.0):
            break
        last = value


# --------------------------------------------------------------------------- VEE
def common_matrix(scatter, weights, common, tol, max_iter):
    """Alternate λ_k = tr(S_k C⁻¹) / d and C ∝ Σ_k p_k S_k / λ_k (det C = 1) from ``common``
    (G, d, d), updated in place, for the scatters (G, K, d, d) and weights (G, K)."""
    if _MATRIX.use_compiled("d", 0, (scatter, weights, common, tol, max_iter)):
        _matrix_loop(scatter, weights, common, tol, max_iter)
    else:
        _MATRIX.run_numpy(_matrix_numpy, scatter, weights, common, tol, max_iter)


def _normalised(matrix):
    _, log_det = np.linalg.slogdet(matrix)
    return matrix * np.exp(-log_det / matrix.shape[-1])[..., None, None]


def _matrix_numpy(scatter, weights, common, tol, max_iter):
    d = scatter.shape[-1]

    def step(common):
        volumes = np.einsum("gkij,gji->gk", scatter, np.linalg.inv(common)) / d
        value = np.sum(weights * np.log(volumes), axis=1)
        return value, _normalised(np.einsum("gk,gkij->gij", weights / volumes, scatter))

    _alternate(step, common, tol, max_iter)


@numba.njit(**_OPTS)
def _cholesky_into(A, L) -> bool:
    """The lower Cholesky factor of the symmetric A (d, d) into L; False if A is not
    positive definite. (Small matrices: LAPACK's calls through numba cost more in allocation
    and dispatch than the arithmetic.)"""
    d = A.shape[0]
    for j in range(d):
        total = A[j, j]
        for m in range(j):
            total -= L[j, m] * L[j, m]
        if not total > 0.0:
            return False
        L[j, j] = math.sqrt(total)
        for i in range(j + 1, d):
            total = A[i, j]
            for m in range(j):
                total -= L[i, m] * L[j, m]
            L[i, j] = total / L[j, j]
    return True


@numba.njit(**_OPTS)
def _log_det(A):
    """log det of a symmetric positive definite matrix; NaN if it is not."""
    d = A.shape[0]
    L = np.empty((d, d))
    if not _cholesky_into(A, L):
        return np.nan
    total = 0.0
    for j in range(d):
        total += math.log(L[j, j])
    return 2.0 * total


@numba.njit(**_OPTS)
def _inverse_into(A, inverse) -> bool:
    """The inverse of a symmetric positive definite A into ``inverse`` (False, NaN-filled, if
    A is not): A⁻¹ = L⁻ᵀ L⁻¹ from its Cholesky factor."""
    d = A.shape[0]
    L = np.empty((d, d))
    if not _cholesky_into(A, L):
        inverse[:] = np.nan
        return False
    inv_L = np.zeros((d, d))  # L⁻¹, lower triangular, by forward substitution
    for j in range(d):
        inv_L[j, j] = 1.0 / L[j, j]
        for i in range(j + 1, d):
            total = 0.0
            for m in range(j, i):
                total -= L[i, m] * inv_L[m, j]
            inv_L[i, j] = total / L[i, i]
    for i in range(d):
        for j in range(i + 1):
            total = 0.0
            for m in range(i, d):
                total += inv_L[m, i] * inv_L[m, j]
            inverse[i, j] = inverse[j, i] = total
    return True


@numba.njit(**_OPTS)
def _matrix_loop(scatter, weights, common, tol, max_iter):
    for g in range(scatter.shape[0]):
        _matrix_one(scatter[g], weights[g], common[g], tol, max_iter)


@numba.njit(**_OPTS)
def _matrix_one(scatter, weights, common, tol, max_iter):
    """One mixture's alternation (scatter (K, d, d), weights (K,), common (d, d) in place)."""
    K, d, _ = scatter.shape
    pooled = np.empty((d, d))
    inverse = np.empty((d, d))
    last = np.inf
    for _ in range(max_iter):
        _inverse_into(common, inverse)
        value = 0.0
        pooled[:] = 0.0
        for k in range(K):
            trace = 0.0
            for i in range(d):
                for j in range(d):
                    trace += scatter[k, i, j] * inverse[j, i]
            volume = trace / d
            value += weights[k] * math.log(volume)
            factor = weights[k] / volume
            for i in range(d):
                for j in range(d):
                    pooled[i, j] += factor * scatter[k, i, j]
        scale = math.exp(-_log_det(pooled) / d)
        for i in range(d):
            for j in range(d):
                common[i, j] = pooled[i, j] * scale
        if not last - value > tol * max(abs(value), 1.0):
            break
        last = value


# --------------------------------------------------------------------------- EVE, VVE
def common_orientation(scatter, weights, orientation, equal_volume, first, second, tol,
                       max_sweeps):
    """Jacobi sweeps of the common orientation D (G, d, d), updated in place, of Σ_k = D Λ_k Dᵀ
    (Λ_k = diag(Dᵀ S_k D), rescaled to one common volume when ``equal_volume``: EVE); ``first``
    and ``second`` (rounds, pairs) index the disjoint pairs of axes of each round."""
    arguments = (scatter, weights, orientation, bool(equal_volume), first, second, tol,
                 max_sweeps)
    if _ORIENTATION.use_compiled("d", 0, arguments):
        _orientation_loop(*arguments)
    else:
        _ORIENTATION.run_numpy(_orientation_numpy, *arguments)


def _diagonals_numpy(rotated, weights, equal_volume):
    if not equal_volume:
        return rotated
    volumes = _geometric_mean(rotated)
    return np.einsum("gk,gk->g", weights, volumes)[:, None, None] * rotated / volumes[..., None]


def _orientation_numpy(scatter, weights, orientation, equal_volume, first, second, tol,
                       max_sweeps):
    d = scatter.shape[-1]
    rotated = np.swapaxes(orientation, 1, 2)[:, None] @ scatter @ orientation[:, None]
    last = np.full(len(scatter), np.inf)
    going = np.ones(len(scatter), dtype=bool)
    for _ in range(max_sweeps):
        diagonals = _diagonals_numpy(np.diagonal(rotated, axis1=2, axis2=3), weights,
                                     equal_volume)
        value = np.sum(weights * np.log(diagonals).sum(axis=2), axis=1)
        going &= _still_falling(last, value, tol)
        if not going.any():
            break
        last = value
        weighted_inverse = weights[..., None] / diagonals
        for i, j in zip(first, second, strict=True):
            # Disjoint pairs do not touch each other's entries of M: one rotation for all; a
            # mixture that has stopped turns by 0.
            g = weighted_inverse[..., i] - weighted_inverse[..., j]
            alpha = 0.5 * np.sum(g * (rotated[:, :, i, i] - rotated[:, :, j, j]), axis=1)
            beta = np.sum(g * rotated[:, :, i, j], axis=1)
            radius = np.hypot(alpha, beta)
            turn = (radius > 0.0) & going[:, None]
            cos2 = np.where(turn, -alpha / np.where(turn, radius, 1.0), 1.0)
            c = np.sqrt(0.5 * (1.0 + cos2))
            s = np.copysign(np.sqrt(np.maximum(0.5 * (1.0 - cos2), 0.0)), -beta)
            givens = np.broadcast_to(np.eye(d), (len(scatter), d, d)).copy()
            givens[:, i, i] = givens[:, j, j] = c
            givens[:, j, i], givens[:, i, j] = s, -s
            orientation[:] = orientation @ givens
            rotated = np.swapaxes(givens, 1, 2)[:, None] @ rotated @ givens[:, None]


@numba.njit(**_OPTS)
def _orientation_loop(scatter, weights, orientation, equal_volume, first, second, tol,
                      max_sweeps):
    for g in range(scatter.shape[0]):
        _orientation_one(scatter[g], weights[g], orientation[g], equal_volume, first, second,
                         tol, max_sweeps)


@numba.njit(**_OPTS)
def _orientation_diagonals(rotated, weights, equal_volume, diagonals):
    """Λ_k given D from M_k = Dᵀ S_k D: diag(M_k), for EVE rescaled to one common volume."""
    K, d = diagonals.shape
    common_volume = 0.0
    for k in range(K):
        log_mean = 0.0
        for j in range(d):
            diagonals[k, j] = rotated[k, j, j]
            log_mean += math.log(diagonals[k, j])
        if equal_volume:
            volume = math.exp(log_mean / d)
            common_volume += weights[k] * volume
            for j in range(d):
                diagonals[k, j] /= volume
    if equal_volume:
        for k in range(K):
            for j in range(d):
                diagonals[k, j] *= common_volume


@numba.njit(**_OPTS)
def _rotated(scatter, D):
    """M_k = Dᵀ S_k D for the scatters (K, d, d) (loops: numba's matrix products of
    transposed views compile for seconds)."""
    K, d, _ = scatter.shape
    rotated = np.empty((K, d, d))
    for k in range(K):
        for a in range(d):
            for b in range(d):
                total = 0.0
                for i in range(d):
                    for j in range(d):
                        total += D[i, a] * scatter[k, i, j] * D[j, b]
                rotated[k, a, b] = total
    return rotated


@numba.njit(**_OPTS)
def _orientation_one(scatter, weights, D, equal_volume, first, second, tol, max_sweeps):
    """One mixture's Jacobi sweeps (scatter (K, d, d), weights (K,), D (d, d) in place)."""
    K, d, _ = scatter.shape
    rotated = _rotated(scatter, D)
    diagonals = np.empty((K, d))
    inverse = np.empty((K, d))
    last = np.inf
    for _ in range(max_sweeps):
        _orientation_diagonals(rotated, weights, equal_volume, diagonals)
        value = 0.0
        for k in range(K):
            for j in range(d):
                value += weights[k] * math.log(diagonals[k, j])
                inverse[k, j] = weights[k] / diagonals[k, j]
        if not last - value > tol * max(abs(value), 1.0):
            break
        last = value
        for r in range(first.shape[0]):
            for p in range(first.shape[1]):
                i, j = first[r, p], second[r, p]
                alpha = 0.0
                beta = 0.0
                for k in range(K):
                    gap = inverse[k, i] - inverse[k, j]
                    alpha += gap * (rotated[k, i, i] - rotated[k, j, j])
                    beta += gap * rotated[k, i, j]
                alpha *= 0.5
                radius = math.hypot(alpha, beta)
                if not radius > 0.0:
                    continue
                cos2 = -alpha / radius
                c = math.sqrt(0.5 * (1.0 + cos2))
                s = math.copysign(math.sqrt(max(0.5 * (1.0 - cos2), 0.0)), -beta)
                for m in range(d):  # D ← D G: columns i and j
                    a, b = D[m, i], D[m, j]
                    D[m, i] = c * a + s * b
                    D[m, j] = c * b - s * a
                for k in range(K):  # M_k ← Gᵀ M_k G: columns, then rows i and j
                    for m in range(d):
                        a, b = rotated[k, m, i], rotated[k, m, j]
                        rotated[k, m, i] = c * a + s * b
                        rotated[k, m, j] = c * b - s * a
                    for m in range(d):
                        a, b = rotated[k, i, m], rotated[k, j, m]
                        rotated[k, i, m] = c * a + s * b
                        rotated[k, j, m] = c * b - s * a


# numpy below nothing: the loops are small whatever the input. Compiling them costs (measured
# in a new environment, after numba's own start-up) about 0.5, 1.5 and 1.6 s; tiers' rule
# compiles each once its numpy form has cost that much.
_SHAPE = tiers.TwoForms(_shape_loop, np.inf, 0.5)
_MATRIX = tiers.TwoForms(_matrix_loop, np.inf, 1.5)
_ORIENTATION = tiers.TwoForms(_orientation_loop, np.inf, 1.6)


# --------------------------------------------------------------------------- every model
# A grid's stack holds mixtures of all 14 models. Its numpy M-step runs model by model, a few
# dozen array calls each (0.1-0.4 ms per model and pass whatever the stack's size: on a few
# hundred rows most of the M-step's time); compiled, every mixture's M-step runs in one loop
# over the stack. The codes are the positions of the models in
# emkit.families.parsimonious.MODELS (VVV's, the last, leaves a mixture's scatters as they are).
# Scalar loops throughout: numba's array expressions cost seconds more to compile.
_EII, _VII, _EEI, _VEI, _EVI, _VVI, _EEE, _VEE, _EVE, _VVE, _EEV, _VEV, _EVV, _VVV = range(14)


def covariances_of_models(codes, scatter, counts, previous, present, rounds, tol, max_iter,
                          max_sweeps, numpy_form):
    """The covariances (G, K, d, d) of G mixtures of any models (``codes``, (G,)) from their
    scatters (G, K, d, d), counts (G, K), previous covariances (or None) and components
    ``present`` (G, K): compiled, written over ``scatter``, or ``numpy_form()``'s (the same,
    model by model). ``rounds`` are the orientation sweeps' pairs of axes; ``tol``,
    ``max_iter`` and ``max_sweeps`` the iterative M-steps' limits
    (emkit.families.parsimonious)."""
    arguments = (codes, scatter, counts, scatter if previous is None else previous,
                 previous is not None, present, *rounds, tol, max_iter, max_sweeps, scatter)
    if not _MODELS.use_compiled("d", 0, arguments):
        return _MODELS.run_numpy(numpy_form)
    _constrained_loop(codes, np.array(scatter), *arguments[2:])  # (reads a copy)
    return scatter


@numba.njit(parallel=True, **_OPTS)
def _constrained_loop(codes, scatter, counts, previous, has_previous, present, first, second,
                      tol, max_iter, max_sweeps, out):
    for g in numba.prange(scatter.shape[0]):
        _constrained_one(codes[g], scatter[g], counts[g], previous[g], has_previous,
                         present[g], first, second, tol, max_iter, max_sweeps, out[g])


@numba.njit(**_OPTS)
def _constrained_one(code, S, counts, previous, has_previous, present, first, second, tol,
                     max_iter, max_sweeps, out):
    """One mixture's covariances (K, d, d) into ``out`` from its scatters S (K, d, d) and
    counts (K,), as emkit.families.parsimonious.stacked_covariances computes them."""
    K, d, _ = S.shape
    finite = True
    for k in range(K):
        for i in range(d):
            for j in range(d):
                out[k, i, j] = S[k, i, j] if code == _VVV else 0.0
                finite &= math.isfinite(S[k, i, j])
    if code == _VVV:
        return
    if not finite:  # (LAPACK refuses it; the numpy form gives NaN too)
        out[:] = np.nan
        return
    total = 0.0
    for k in range(K):
        total += counts[k]
    weights = np.empty(K)
    for k in range(K):
        weights[k] = counts[k] / max(total, 1e-300)
    if code <= _VVI:
        _diagonal_one(code, S, weights, previous, has_previous, tol, max_iter, out)
    elif code == _EEE:
        for k in range(K):
            for i in range(d):
                for j in range(d):
                    out[0, i, j] += weights[k] * S[k, i, j]
        for k in range(1, K):
            for i in range(d):
                for j in range(d):
                    out[k, i, j] = out[0, i, j]
    elif code == _EVV:  # C_k = S_k / det^(1/d); λ = Σ p_k det(S_k)^(1/d)
        volumes = np.empty(K)
        common = 0.0
        for k in range(K):
            volumes[k] = math.exp(_log_det(S[k]) / d)
            common += weights[k] * volumes[k]
        for k in range(K):
            for i in range(d):
                for j in range(d):
                    out[k, i, j] = common * S[k, i, j] / volumes[k]
    elif code == _EEV or code == _VEV:
        _common_shape_one(code == _VEV, S, weights, previous, has_previous, tol, max_iter,
                          out)
    elif code == _VEE:
        _common_matrix_one(S, weights, previous, has_previous, tol, max_iter, out)
    else:  # EVE, VVE
        _common_orientation_one(code == _EVE, S, weights, previous, has_previous, present,
                                first, second, tol, max_sweeps, out)


@numba.njit(**_OPTS)
def _geometric_mean_one(values):
    total = 0.0
    for value in values:
        total += math.log(value)
    return math.exp(total / len(values))


@numba.njit(**_OPTS)
def _diagonal_one(code, S, weights, previous, has_previous, tol, max_iter, out):
    """EII, VII, EEI, VEI, EVI, VVI from the scatters' diagonals."""
    K, d, _ = S.shape
    values = np.empty((K, d))  # the variances, then the result's diagonals
    for k in range(K):
        for j in range(d):
            values[k, j] = S[k, j, j]
    if code == _EII or code == _VII:
        common = 0.0
        for k in range(K):
            mean = 0.0
            for j in range(d):
                mean += values[k, j]
            values[k, :] = mean / d
            common += weights[k] * mean / d
        if code == _EII:
            values[:] = common
    elif code == _EEI:
        _pooled(values, weights)
    elif code == _EVI:  # A_k = diag(S_k) / det^(1/d); λ = Σ p_k det(diag S_k)^(1/d)
        volumes = np.empty(K)
        common = 0.0
        for k in range(K):
            volumes[k] = _geometric_mean_one(values[k])
            common += weights[k] * volumes[k]
        for k in range(K):
            for j in range(d):
                values[k, j] *= common / volumes[k]
    elif code == _VEI:
        before = np.empty((K, d))
        if has_previous:
            for k in range(K):
                for j in range(d):
                    before[k, j] = previous[k, j, j]
        _volumes_times_shape(values, weights, before, has_previous, tol, max_iter)
    for k in range(K):
        for j in range(d):
            out[k, j, j] = values[k, j]


@numba.njit(**_OPTS)
def _pooled(values, weights):
    """Every row of ``values`` (K, d) replaced by their weighted sum Σ_k p_k v_k."""
    K, d = values.shape
    pooled = np.zeros(d)
    for k in range(K):
        for j in range(d):
            pooled[j] += weights[k] * values[k, j]
    for k in range(K):
        for j in range(d):
            values[k, j] = pooled[j]


@numba.njit(**_OPTS)
def _volumes_times_shape(values, weights, before, has_previous, tol, max_iter):
    """VEI and VEV: the diagonals ``values`` (K, d) replaced by λ_k A, the shape starting from
    that of ``before`` (the previous diagonals) when given."""
    K, d = values.shape
    shape = np.zeros(d)
    for k in range(K):
        scale = _geometric_mean_one(before[k]) if has_previous else 1.0
        for j in range(d):
            shape[j] += weights[k] * (math.log(before[k, j] / scale) if has_previous
                                      else values[k, j])
    if has_previous:
        for j in range(d):
            shape[j] = math.exp(shape[j])
    scale = _geometric_mean_one(shape)
    for j in range(d):
        shape[j] /= scale
    _shape_one(values, weights, shape, tol, max_iter)
    for k in range(K):
        volume = 0.0
        for j in range(d):
            volume += values[k, j] / shape[j]
        for j in range(d):
            values[k, j] = volume / d * shape[j]


# The most dimensions Jacobi's rotations decompose (above, LAPACK's eigh is the faster).
_JACOBI_MAX_D = 10


@numba.njit(**_OPTS)
def _symmetric_eigen(A, values, vectors):
    """Eigenvalues (ascending) and eigenvectors (columns) of the symmetric A (d, d) into
    ``values`` and ``vectors``, by cyclic Jacobi rotations until no off-diagonal entry is
    above rounding next to its diagonal pair (the test of Demmel & Veselić, 1992). On 2-, 3-
    and 4-D matrices 4.8, 2.6 and 1.8 times faster than LAPACK's through numba (its calls
    allocate and query workspace), as fast on 6- to 10-D; a grid's M-step spends most of its
    time here (EEV, VEV, EVE, VVE). Above :data:`_JACOBI_MAX_D` dimensions LAPACK's."""
    d = A.shape[0]
    if d > _JACOBI_MAX_D:  # (Jacobi's sweeps grow as d³ each: 30 µs against 16 on 13-D)
        values[:], vectors[:] = np.linalg.eigh(A)
        return
    a = np.empty((d, d))
    for i in range(d):
        for j in range(d):
            a[i, j] = A[i, j]
            vectors[i, j] = 1.0 if i == j else 0.0
    for _ in range(64):
        rotated = False
        for p in range(d - 1):
            for q in range(p + 1, d):
                apq = a[p, q]
                if abs(apq) <= 1e-16 * math.sqrt(abs(a[p, p] * a[q, q])) or apq == 0.0:
                    continue
                rotated = True
                theta = (a[q, q] - a[p, p]) / (2.0 * apq)
                t = math.copysign(1.0, theta) / (abs(theta) + math.sqrt(theta * theta + 1.0))
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for r in range(d):  # A ← A G, then Gᵀ A, V ← V G
                    x, y = a[r, p], a[r, q]
                    a[r, p], a[r, q] = c * x - s * y, s * x + c * y
                for r in range(d):
                    x, y = a[p, r], a[q, r]
                    a[p, r], a[q, r] = c * x - s * y, s * x + c * y
                for r in range(d):
                    x, y = vectors[r, p], vectors[r, q]
                    vectors[r, p], vectors[r, q] = c * x - s * y, s * x + c * y
        if not rotated:
            break
    for i in range(d):
        values[i] = a[i, i]
    for i in range(1, d):  # ascending, as LAPACK's
        j = i
        while j > 0 and values[j - 1] > values[j]:
            values[j - 1], values[j] = values[j], values[j - 1]
            for r in range(d):
                vectors[r, j - 1], vectors[r, j] = vectors[r, j], vectors[r, j - 1]
            j -= 1


@numba.njit(**_OPTS)
def _common_shape_one(varying_volume, S, weights, previous, has_previous, tol, max_iter,
                      out):
    """EEV and VEV: Σ_k = λ_k D_k A D_kᵀ (eigenvalues in ascending order throughout: the
    alternation treats every axis alike)."""
    K, d, _ = S.shape
    values = np.empty((K, d))
    vectors = np.empty((K, d, d))
    for k in range(K):
        _symmetric_eigen(S[k], values[k], vectors[k])
    if varying_volume:  # VEV
        before = np.empty((K, d))
        if has_previous:
            axes = np.empty((d, d))
            for k in range(K):
                _symmetric_eigen(previous[k], before[k], axes)
        _volumes_times_shape(values, weights, before, has_previous, tol, max_iter)
    else:  # EEV: λ A = Σ_k p_k Ω_k, closed form
        _pooled(values, weights)
    for k in range(K):
        _with_eigenvalues_one(vectors[k], values[k], out[k])


@numba.njit(**_OPTS)
def _with_eigenvalues_one(vectors, values, out):
    """V diag(λ) Vᵀ into ``out``."""
    d = len(values)
    for a in range(d):
        for b in range(d):
            total = 0.0
            for j in range(d):
                total += vectors[a, j] * values[j] * vectors[b, j]
            out[a, b] = total


@numba.njit(**_OPTS)
def _common_matrix_one(S, weights, previous, has_previous, tol, max_iter, out):
    """VEE: Σ_k = λ_k C, C from the pooled previous C's (or scatters)."""
    K, d, _ = S.shape
    start = np.zeros((d, d))
    for k in range(K):
        factor = weights[k]
        if has_previous:
            factor *= math.exp(-_log_det(previous[k]) / d)
        for i in range(d):
            for j in range(d):
                start[i, j] += factor * (previous[k, i, j] if has_previous else S[k, i, j])
    scale = math.exp(-_log_det(start) / d)
    common = np.empty((d, d))
    for i in range(d):
        for j in range(d):
            common[i, j] = start[i, j] * scale
    _matrix_one(S, weights, common, tol, max_iter)
    inverse = np.empty((d, d))
    _inverse_into(common, inverse)
    for k in range(K):
        trace = 0.0
        for i in range(d):
            for j in range(d):
                trace += S[k, i, j] * inverse[j, i]
        for i in range(d):
            for j in range(d):
                out[k, i, j] = trace / d * common[i, j]


@numba.njit(**_OPTS)
def _common_orientation_one(equal_volume, S, weights, previous, has_previous, present, first,
                            second, tol, max_sweeps, out):
    """EVE and VVE: Σ_k = D Λ_k Dᵀ, the sweeps starting from the eigenvectors (descending
    order: the sweeps' order of pairs depends on it) of a generic combination of the previous
    covariances (weights rising from 1 to 2 over the components), or of the pooled scatter."""
    K, d, _ = S.shape
    combined = np.zeros((d, d))
    n_present = 0
    for k in range(K):
        n_present += present[k]
    for k in range(K):
        if has_previous:
            trace = 0.0
            for j in range(d):
                trace += previous[k, j, j]
            factor = (1.0 + k / max(n_present - 1, 1)) / trace if present[k] else 0.0
        else:
            factor = weights[k]
        for i in range(d):
            for j in range(d):
                combined[i, j] += factor * (previous[k, i, j] if has_previous else S[k, i, j])
    ascending = np.empty((d, d))
    _symmetric_eigen(combined, np.empty(d), ascending)
    D = np.empty((d, d))
    for i in range(d):
        for j in range(d):
            D[i, j] = ascending[i, d - 1 - j]
    _orientation_one(S, weights, D, equal_volume, first, second, tol, max_sweeps)
    diagonals = np.empty((K, d))
    _orientation_diagonals(_rotated(S, D), weights, equal_volume, diagonals)
    for k in range(K):
        _with_eigenvalues_one(D, diagonals[k], out[k])


# About 17 s to compile in a new environment (6 of them for the threads), and on a grid of a
# few hundred rows it saves 0.1-0.3 s: tiers' rule compiles it after a few dozen grids.
_MODELS = tiers.TwoForms(_constrained_loop, np.inf, 17.0)
