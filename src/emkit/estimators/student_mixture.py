"""Mixtures of multivariate Student-t distributions: :class:`StudentMixture`, robust clustering.

The estimator is :class:`emkit.estimators.family_mixture.FamilyMixture` over
:class:`emkit.families.student.StudentFamily`; no math lives here.
"""

from __future__ import annotations

import numpy as np

from emkit.estimators.family_mixture import FamilyMixture, register_family_mixture
from emkit.estimators.validation import NON_NEGATIVE, Real
from emkit.families.student import StudentFamily, StudentParams

__all__ = ["StudentMixture"]


class StudentMixture(FamilyMixture):
    """Mixture of multivariate Student-t distributions with full scale matrices, fitted by EM
    (as R's teigen with its unconstrained "UUUU" model, or mixtools' robust clustering).

    Each component is t_ν(μ_k, Σ_k): a Gaussian whose scale is drawn per row, so rows far
    from a component count less in its mean and scale. With a few percent of gross outliers
    the means stay at the clusters where a Gaussian mixture's are pulled away (or spend a
    component on the outliers). See :mod:`emkit.families.student` for the EM steps.

    Parameters
    ----------
    n_components : int, default 1
    dof : float or None, default None
        Fixed degrees of freedom ν of every component (e.g. 4); None estimates ν_k per
        component within [0.5, 200] by a 1-D root find in each M-step.
    reg_covar : float, default 1e-6
        Added to the diagonal of every scale matrix.
    tol : float, default 1e-6
        Convergence threshold per sample of the estimated distance to the maximum (see
        :class:`emkit.GaussianMixture`).
    xtol : float or None, default None
        Optional tolerance on the parameters (see :func:`emkit.fit_em`).
    max_iter : int, default 1000
    n_init : int, default 1
        Starts (k-means clusters); the best objective wins.
    random_state, warm_start, verbose, verbose_interval, progress
        As :class:`emkit.GaussianMixture`.
    accelerate : {None, "squarem"}, default "squarem"
        SQUAREM in means, log-Cholesky factors and log ν: the degrees of freedom converge
        slowly under plain EM.
    learning_decay, learning_offset : float, default 0.6 and 2.0
        Step sizes of online EM (:meth:`partial_fit`).

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
        Component centres μ_k (the means where ν_k > 1).
    covariances_ : ndarray of shape (n_components, n_features, n_features)
        Scale matrices Σ_k; a component's covariance is ν_k / (ν_k − 2) Σ_k (for ν_k > 2).
    dof_ : ndarray of shape (n_components,)
        Degrees of freedom ν_k.
    converged_, n_iter_, lower_bound_, history_, events_, restart_objectives_,
    n_features_in_, feature_names_in_
        As :class:`emkit.GaussianMixture`.
    """

    _components = StudentParams
    _parameter_constraints = {**FamilyMixture._parameter_constraints,
                              "dof": Real(0, low_open=True, optional=True),
                              "reg_covar": NON_NEGATIVE}
    _input_tags = {}  # rows must be complete

    def __init__(self, n_components=1, *, dof=None, reg_covar=1e-6, tol=1e-6, xtol=None,
                 max_iter=1000, n_init=1, random_state=None, warm_start=False,
                 accelerate="squarem", verbose=0, verbose_interval=10, progress=False,
                 learning_decay=0.6, learning_offset=2.0):
        self.n_components = n_components
        self.dof = dof
        self.reg_covar = reg_covar
        self.tol = tol
        self.xtol = xtol
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.accelerate = accelerate
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.progress = progress
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    def _family(self) -> StudentFamily:
        return StudentFamily(self.dof, self.reg_covar)

    def _attribute_shapes(self, n_components, n_features):
        return {"weights_": (n_components,), "means_": (n_components, n_features),
                "covariances_": (n_components, n_features, n_features),
                "dof_": (n_components,)}

    def _check_components(self) -> None:
        if np.any(self.dof_ <= 0):
            raise ValueError("dof_ must be positive")
        for k, matrix in enumerate(self.covariances_):
            if not np.allclose(matrix, matrix.T) or np.any(np.linalg.eigvalsh(matrix) <= 0):
                raise ValueError(f"covariances_[{k}] must be symmetric positive definite")


register_family_mixture(StudentMixture)
