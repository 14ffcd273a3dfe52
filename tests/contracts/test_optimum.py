"""EM's optimum is the optimum: an independent maximiser cannot improve on it.

The fixed-point contract (``test_contracts.py``) checks θ = M(E(θ)) with the model's own E- and
M-steps, so an M-step that is wrong yet still raises the objective — a prior term with the wrong
sign, a wrong exponent — passes it and every monotonicity check. Here the fitted point is
compared with a maximisation that uses no M-step at all: BFGS (scipy) on the observed-data
objective F(θ) = log-likelihood + log prior, in the model's unconstrained coordinates
(``flatten``/``unflatten``, the ones SQUAREM uses, or the case's ``coordinates``), with central
differences for the gradient. The log-likelihood is the E-step's, which the reference tests check
against scipy's densities and brute-force enumeration; the log prior is the model's density.

Started at EM's point, BFGS must not gain more than a relative 1e-9 of F (measured: at most
1e-11 in float64, 1e-7 in float32, whose round-off sets its tolerance); a wrong M-step leaves a
gradient of the order of its error, and BFGS climbs it (the prior-rate sign of the Dirichlet
Newton step, the fixed mixture's prior exponent, the HMM's Dirichlet, Normal, inverse-Wishart,
Gamma and categorical prior terms, an unbiased covariance: each fails here). Started at a
perturbation of EM's point, BFGS must climb back to EM's parameters. Their tolerance follows
from the curvature: F near its maximum is F* − ½ δᵀHδ with |H| of the order of the number of
rows per unit of a coordinate, so BFGS stopping at a gradient of 1e-7 per row leaves the
coordinates off by about 1e-7 (measured: at most 2e-6 of each field, in the flat directions);
the comparison uses 1e-5 in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from emkit import fit_em

from .registry import CASES, MAP_CASES, ModelCase
from .test_contracts import assert_close

ALL_CASES = CASES + MAP_CASES
pytestmark = pytest.mark.parametrize("case", ALL_CASES, ids=[case.name for case in ALL_CASES])

#: Rows of data: enough for a well-posed optimum, few enough for a quick BFGS (HMM rows are
#: whole sequences of 6 frames). One perturbed start besides EM's point keeps the contract
#: within about 20 s on two cores (each BFGS gradient costs 2 x dim E-steps).
N_ROWS = 60
PERTURBED_STARTS = 1
DATA_SEED, FIT_SEED = 0, 8


def coordinates(case: ModelCase, model):
    if case.coordinates is not None:
        return case.coordinates(model)
    return model.flatten, model.unflatten


def objective_per_row(model, X, flatten, unflatten, template):
    """u ↦ −F(unflatten(u)) / n (the scale keeps BFGS's tolerances data-independent), and its
    central-difference gradient. Points outside the domain (a covariance that is not positive
    definite) get +inf, which BFGS's line search backs away from."""
    n = len(X)

    def value(u):
        try:
            params = unflatten(np.asarray(u, dtype=float), template)
            _, log_likelihood = model.e_step(params, X)
            total = log_likelihood + float(getattr(model, "log_prior", lambda p: 0.0)(params))
        except (FloatingPointError, ValueError, np.linalg.LinAlgError):
            return np.inf
        return -total / n if np.isfinite(total) else np.inf

    return value


def central_gradient(value, step: float):
    def gradient(u):
        g = np.empty_like(u)
        for j in range(u.size):
            h = step * max(1.0, abs(u[j]))
            e = np.zeros_like(u)
            e[j] = h
            g[j] = (value(u + e) - value(u - e)) / (2 * h)
        return g

    return gradient


def perturbed(value, u, rng: np.random.Generator) -> np.ndarray:
    """A random point near ``u`` from which BFGS climbs back to ``u``: a step of 0.05 in every
    coordinate, shortened until it costs at most 0.01 nats per row (multimodal objectives such
    as the superimposed tones' have basins narrower than 0.05 in a frequency)."""
    direction = rng.standard_normal(u.size)
    step = 0.05
    while value(u + step * direction) > value(u) + 0.01:
        step /= 2
    return u + step * direction


def test_em_optimum_is_the_objective_maximum(case):
    X = case.make_data(np.random.default_rng(DATA_SEED), N_ROWS)
    model = case.make_model()
    # xtol only in exact arithmetic: float32 parameters wobble at their round-off for ever.
    result = fit_em(model, X, random_state=FIT_SEED, tol=case.tight_tol, max_iter=5000,
                    accelerate="squarem", decrease_rtol=case.rtol(1e-10),
                    xtol=None if case.round_off else 1e-7, warn_not_converged=False)
    assert result.converged
    # A degenerate component (a re-seeding or kept-parameters event) sits at a singularity of
    # the likelihood, not at a maximum: the data and seeds must give a regular optimum.
    assert not result.events, result.events
    flatten, unflatten = coordinates(case, model)
    value = objective_per_row(model, X, flatten, unflatten, result.params)
    # The best central-difference step balances truncation (h²) against round-off (ε/h).
    gradient = central_gradient(value, np.cbrt(max(case.round_off, np.finfo(float).eps)))
    u_em = flatten(result.params)
    f_em = value(u_em)
    assert np.isclose(-f_em * len(X), result.objective, rtol=case.rtol(1e-12))

    gain_rtol = case.rtol(1e-9)
    options = {"gtol": 1e-7, "maxiter": 200}
    polished = optimize.minimize(value, u_em, jac=gradient, method="BFGS", options=options)
    assert polished.fun >= f_em - gain_rtol * abs(f_em), (
        f"BFGS raised the objective per row from {-f_em!r} to {-polished.fun!r}: EM's "
        "M-step does not maximise it")

    rng = np.random.default_rng(13)
    for _ in range(PERTURBED_STARTS):
        start = perturbed(value, u_em, rng)
        climbed = optimize.minimize(value, start, jac=gradient, method="BFGS", options=options)
        assert climbed.fun >= f_em - gain_rtol * abs(f_em)
        assert climbed.fun <= f_em + gain_rtol * abs(f_em), (
            f"BFGS from a perturbed start stopped at {-climbed.fun!r} below EM's {-f_em!r}")
        assert_close(unflatten(climbed.x, result.params), result.params,
                     max(1e-5, np.sqrt(case.round_off)))
