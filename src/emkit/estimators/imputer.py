"""Missing-value imputation with a Gaussian mixture fitted by exact EM on incomplete rows.

For a row with observed coordinates o and missing coordinates m, the mixture gives each
component's conditional distribution of the missing block, N(x̂_k,m, C_k) with

    x̂_k,m = μ_k,m + Σ_k,mo Σ_k,oo⁻¹ (x_o − μ_k,o),    C_k = Σ_k,mm − Σ_k,mo Σ_k,oo⁻¹ Σ_k,om,

and the posterior p(k | x_o) ∝ π_k N(x_o | μ_k,o, Σ_k,oo) from the observed coordinates alone.
The mean fill is the conditional expectation E[x_m | x_o] = Σ_k p(k | x_o) x̂_k,m; a draw picks a
component from p(k | x_o), then x_m from that component's N(x̂_k,m, C_k). A row with no observed
value gets the mixture mean Σ_k π_k μ_k (or a draw from the mixture). Observed values are copied,
never recomputed.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin

from emkit.estimators.gaussian_mixture import GaussianMixture
from emkit.estimators.validation import (
    BOOLEAN,
    COUNT,
    NON_NEGATIVE,
    NON_NEGATIVE_INTEGER,
    RANDOM_STATE,
    OneOf,
    check_fitted,
    check_parameters,
    check_value,
    random_generator,
    validate_rows,
)
from emkit.families.gaussian import COVARIANCE_TYPES
from emkit.families.gaussian_missing import conditionals, full_covariances, missingness_groups


class EMImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Fill missing values (NaN) from a Gaussian mixture fitted by exact EM.

    ``fit`` fits :class:`emkit.GaussianMixture` on the incomplete data (no row is dropped, nothing
    is pre-filled: the EM uses each row's observed coordinates exactly). ``transform`` replaces
    every NaN by its conditional mean given the observed values of its row, mixed over the
    components by their posterior probabilities given those values. With one component (the
    default) this is the classic multivariate normal model with missing data: the fill is the
    regression of the missing coordinates on the observed ones (Little & Rubin, *Statistical
    Analysis with Missing Data*). Observed values are never changed.

    With ``sample_posterior=True``, ``transform`` instead draws each row's missing block from
    its conditional distribution (component from the posterior, then a Gaussian draw), and
    :meth:`multiple_imputations` returns ``n_imputations`` independent completed data sets for
    multiple imputation (analyse each, pool with Rubin's rules).

    Parameters
    ----------
    n_components : int, default 1
        Number of mixture components.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
        With "diag" or "spherical" the coordinates are independent within a component, so a
        one-component fill is just the column mean; use "full" (or several components) to
        borrow strength from the observed coordinates.
    sample_posterior : bool, default False
        ``transform`` returns a random draw instead of the conditional mean.
    n_imputations : int, default 5
        Number of completed data sets :meth:`multiple_imputations` returns.
    max_iter : int, default 200
    tol : float, default 1e-6
        Convergence threshold of the EM (change of the mean log-likelihood per row).
    n_init : int, default 1
        Number of EM starts; the best log-likelihood wins.
    reg_covar : float, default 1e-6
        Added to the diagonal of the covariances.
    random_state : None, int, numpy Generator or RandomState
        Seeds the EM starts and the draws. With an int, every call of ``transform`` or
        :meth:`multiple_imputations` gives the same draws; with a Generator, each call continues
        its stream.

    Attributes
    ----------
    mixture_ : emkit.GaussianMixture
        The fitted mixture.
    n_iter_ : int
        EM iterations of the best start.
    converged_ : bool
        Whether that EM met ``tol`` before ``max_iter``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` had column names (a DataFrame).

    Notes
    -----
    The draws are conditional on the fitted (maximum-likelihood) parameters. Rubin's rules then
    slightly understate the variance, because parameter uncertainty is not propagated; for
    *proper* multiple imputation, fit one imputer per imputation on a bootstrap resample of the
    rows.

    Examples
    --------
    >>> import numpy as np
    >>> from emkit import EMImputer
    >>> X = np.array([[1.0, 2.0], [2.0, np.nan], [3.0, 6.1], [4.0, 8.0], [np.nan, 3.9]])
    >>> filled = EMImputer().fit_transform(X)
    >>> bool(np.isnan(filled).any())
    False
    """

    # The mixture's parameters are checked by the mixture; these before any work.
    _parameter_constraints = {
        "n_components": COUNT,
        "covariance_type": OneOf(*COVARIANCE_TYPES),
        "sample_posterior": BOOLEAN,
        "n_imputations": COUNT,
        "max_iter": NON_NEGATIVE_INTEGER,
        "tol": NON_NEGATIVE,
        "n_init": COUNT,
        "reg_covar": NON_NEGATIVE,
        "random_state": RANDOM_STATE,
    }

    def __init__(self, n_components=1, *, covariance_type="full", sample_posterior=False,
                 n_imputations=5, max_iter=200, tol=1e-6, n_init=1, reg_covar=1e-6,
                 random_state=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.sample_posterior = sample_posterior
        self.n_imputations = n_imputations
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.reg_covar = reg_covar
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit the Gaussian mixture on X (n_samples, n_features), NaN marking missing values.

        ``y`` is ignored. Raises :class:`emkit.errors.DataError` for infinite values, a column
        with no observed value, or data in which every row is empty."""
        check_parameters(self, self._parameter_constraints)
        X = self._validate(X, reset=True)
        self.mixture_ = GaussianMixture(
            self.n_components, covariance_type=self.covariance_type, tol=self.tol,
            reg_covar=self.reg_covar, max_iter=self.max_iter, n_init=self.n_init,
            random_state=self.random_state).fit(X)
        self.n_iter_ = self.mixture_.n_iter_
        self.converged_ = self.mixture_.converged_
        return self

    def transform(self, X):
        """X with every NaN filled, shape (n_samples, n_features), float64.

        The conditional mean given the row's observed values, or one random draw from the
        conditional distribution when ``sample_posterior=True``."""
        X = self._validate_fitted(X)
        if not self.sample_posterior:
            return self._fill(X, n_draws=0)[0]
        return self._fill(X, n_draws=1)[0]

    def multiple_imputations(self, X, n_imputations=None):
        """``n_imputations`` completed copies of X, each with independent draws of the missing
        values from their conditional distribution (whatever ``sample_posterior`` says).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        n_imputations : int, optional
            Default: the estimator's ``n_imputations``.

        Returns
        -------
        list of ndarray of shape (n_samples, n_features)
            Observed entries equal those of X in every copy. With the same int ``random_state``,
            the first copy equals ``transform(X)`` of a ``sample_posterior=True`` imputer.
        """
        count = self.n_imputations if n_imputations is None else n_imputations
        check_value("n_imputations", count, COUNT)
        X = self._validate_fitted(X)
        return self._fill(X, n_draws=count)

    # ------------------------------------------------------------------ the fill
    def _fill(self, X: np.ndarray, n_draws: int) -> list[np.ndarray]:
        """Conditional-mean fill (n_draws=0) or n_draws independent draws, as a list."""
        missing = np.isnan(X)
        outputs = [X.copy() for _ in range(max(n_draws, 1))]
        if not missing.any():
            return outputs
        mixture = self.mixture_
        model, params = mixture._model(), mixture._params()
        _, posteriors = model.posteriors(params, X)  # all-empty rows get the weights π
        posteriors = np.asarray(posteriors, dtype=np.float64)
        groups = [self._group(model.family, params, X, observed, rows)
                  for observed, rows in missingness_groups(X) if not observed.all()]
        if n_draws == 0:
            for rows, missing_block, means, _ in groups:
                filled = np.einsum("nk,knm->nm", posteriors[rows], means)
                outputs[0][np.ix_(rows, missing_block)] = filled
            return outputs
        rng = random_generator(self.random_state)
        for output in outputs:
            for rows, missing_block, means, roots in groups:
                output[np.ix_(rows, missing_block)] = _draw(posteriors[rows], means, roots, rng)
        return outputs

    @staticmethod
    def _group(family, params, X, observed, rows):
        """For rows sharing a pattern: the missing coordinates, each component's conditional
        means (K, n_rows, n_missing) and a square root of its conditional covariance."""
        missing_block = ~observed
        components = params.components
        if observed.any():
            parts = conditionals(family, components, observed)
            means = np.stack([part.completed(X[rows])[:, missing_block] for part in parts])
            covariances = [part.covariance for part in parts]
        else:  # nothing observed: the components' own means and covariances
            means = np.repeat(components.means[:, None, :], len(rows), axis=1)
            covariances = list(full_covariances(family, components))
        return rows, missing_block, means, [_square_root(c) for c in covariances]

    # ------------------------------------------------------------------ validation
    def _validate_fitted(self, X) -> np.ndarray:
        check_fitted(self, ("mixture_",))
        return self._validate(X, reset=False)

    def _validate(self, X, reset: bool) -> np.ndarray:
        X = validate_rows(self, X, reset=reset, dtype=np.float64)
        return np.array(X, dtype=np.float64, copy=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.non_deterministic = bool(self.sample_posterior) and self.random_state is None
        return tags


def _draw(posteriors: np.ndarray, means: np.ndarray, roots: list[np.ndarray],
          rng: np.random.Generator) -> np.ndarray:
    """One draw of the missing block per row: component z ~ posterior, then N(x̂_z, C_z)."""
    n_rows, n_missing = means.shape[1:]
    cumulative = np.cumsum(posteriors, axis=1)
    uniform = rng.random(n_rows) * cumulative[:, -1]
    component = np.minimum((cumulative <= uniform[:, None]).sum(axis=1), len(roots) - 1)
    noise = rng.standard_normal((n_rows, n_missing))
    out = np.empty((n_rows, n_missing))
    for k, root in enumerate(roots):
        chosen = component == k
        out[chosen] = means[k, chosen] + noise[chosen] @ root.T
    return out


def _square_root(covariance: np.ndarray) -> np.ndarray:
    """A matrix R with R Rᵀ = covariance (symmetric eigendecomposition: robust to round-off
    that makes a tiny eigenvalue slightly negative)."""
    values, vectors = np.linalg.eigh(covariance)
    return vectors * np.sqrt(np.clip(values, 0.0, None))


__all__ = ["EMImputer"]
