"""scikit-learn compatible estimators: validate input, build the model, call ``fit_em``.

No math lives here; see :mod:`emkit.models` and :mod:`emkit.families`.
"""

from __future__ import annotations

import numpy as np

from emkit.data.chunks import Batch, CheckedChunks, ChunkSource
from emkit.errors import DataError, ParameterError
from emkit.estimators.base import (
    EMEstimator,
    MixturePosteriorsMixin,
    OnlineEMMixin,
    RowDensityMixin,
    SamplingMixin,
)
from emkit.estimators.validation import (
    COUNT,
    NON_NEGATIVE,
    RANDOM_STATE,
    VERBOSE,
    OneOf,
    Satisfies,
    check_no_constant_column,
    check_observed,
    check_sample_weight,
    is_dask_collection,
    validate_rows,
)
from emkit.families.gaussian import MIXTURE_COVARIANCE_TYPES, GaussianParams
from emkit.families.parsimonious import layout
from emkit.models.mixture import (
    DEFAULT_INIT,
    INIT_METHODS,
    GaussianMixtureModel,
    MixtureParams,
)

# How many objectives of a fit a warm start passes on to the next one's convergence test.
_LEAD_IN = 8


def _float_dtype(dtype) -> bool:
    return np.dtype(dtype) in (np.float64, np.float32)


class GaussianMixture(OnlineEMMixin, SamplingMixin, MixturePosteriorsMixin, RowDensityMixin,
                      EMEstimator):
    """Gaussian mixture model fitted by EM — a drop-in for ``sklearn.mixture.GaussianMixture``.

    Constructor parameters and fitted attributes keep scikit-learn's names and shapes, so switching
    is a change of import. In addition: ``sample_weight`` and semi-supervised ``labels`` in
    :meth:`fit`, SQUAREM acceleration, deterministic annealing, a float32 mode, the full objective
    ``history_``, and safe model files (:meth:`save`, :func:`emkit.load`).

    Parameters
    ----------
    n_components : int, default 1
    covariance_type : str, default "full"
        One of mclust's 14 models Σ_k = λ_k D_k A_k D_kᵀ (volume λ, shape A, orientation D,
        each Equal across the components, Variable, or the Identity; Celeux & Govaert 1995),
        or a scikit-learn name for four of them:

        =====  ================  ==================  =================
        model  Σ_k               ``covariances_``    scikit-learn name
        =====  ================  ==================  =================
        EII    λ I               (K,), all equal
        VII    λ_k I             (K,)                ``"spherical"``
        EEI    λ A               (K, D), all equal
        VEI    λ_k A             (K, D)
        EVI    λ A_k             (K, D)
        VVI    λ_k A_k           (K, D)              ``"diag"``
        EEE    λ D A Dᵀ          (D, D)              ``"tied"``
        VEE    λ_k D A Dᵀ        (K, D, D)
        EVE    λ D A_k Dᵀ        (K, D, D)
        VVE    λ_k D A_k Dᵀ      (K, D, D)
        EEV    λ D_k A D_kᵀ      (K, D, D)
        VEV    λ_k D_k A D_kᵀ    (K, D, D)
        EVV    λ D_k A_k D_kᵀ    (K, D, D)
        VVV    Σ_k               (K, D, D)           ``"full"``
        =====  ================  ==================  =================

        The scikit-learn names and the models they alias fit the same; ``n_parameters``,
        ``bic`` and ``aic`` count free parameters as mclust does. VEI, VEE, VEV, EVE and VVE
        have iterative M-steps, started from the previous parameters so that EM stays
        monotone (see :mod:`emkit.families.parsimonious`).
    tol : float, default 1e-6
        Convergence threshold per sample: EM stops when both the last change of the
        log-likelihood and its estimated remaining rise (extrapolated from the observed rate of
        convergence, see :class:`emkit.core.engine.ConvergenceMonitor`) are below ``tol`` times the
        number of samples. scikit-learn's rule is the first half with tol=1e-3.
    reg_covar : float, default 1e-6
        Added to the diagonal of the covariances; keeps them positive definite. For the
        constrained models it is added to each component's scatter before the M-step, which
        keeps every covariance within its model.
    max_iter : int, default 1000
        Maximum number of EM iterations (passes over the data) per start.
    n_init : int, default 1
        Number of starts; the best log-likelihood wins.
    init_params : {"auto", "kmeans", "hierarchical", "emEM", "k-means++", "random", \
"random_from_data"}, default "auto"
        How each start is found (see :mod:`emkit.models.clustering`):

        - ``"kmeans"``: the clusters of k-means (Lloyd's algorithm from k-means++ seeds), as
          scikit-learn's default.
        - ``"hierarchical"``: model-based hierarchical agglomeration (unconstrained Gaussian
          clusters on scaled principal coordinates; a subsample of at most 2,000 rows, fewer
          in many dimensions), as mclust's default; deterministic.
        - ``"emEM"``: ten k-means++ partitions, each improved by a few EM steps; the better
          half goes on for twice as many steps until one is left (successive halving).
        - ``"auto"`` (default): eight k-means and eight k-means++ partitions screened like
          ``"emEM"`` down to two, which then meet the hierarchical start in runs of up to 64
          EM steps; the best is continued on all rows. Short runs use at most 4,000 rows (on
          such a subsample of more rows the screening starts at 2 steps and the final runs
          last up to 32: they only rank starts, the winner is re-estimated on all rows); the
          hierarchical start competes where its subsample has at least 4 rows per cluster and
          dimension (or all rows).
        - ``"k-means++"``: hard assignment to k-means++ seeds; ``"random"``: random
          responsibilities; ``"random_from_data"``: hard assignment to random rows.

        Why ``"auto"``: on faithful, iris, wine, penguins and galaxies (K = 2–6) and overlapping
        synthetic clusters (50,000 × 16, K = 16), its mean log-likelihood over seeds 0–9 is at
        least scikit-learn's default in all 26 cases and at least mclust's VVV fit in 23
        (``benchmarks/init.py``, ``benchmarks/RESULTS.md``, 2026-12-03); the
        hierarchical start wins where k-means cuts across elongated clusters (wine: 120 nats
        at K=3), the k-means ones elsewhere. When ``weights_init``, ``means_init`` and
        ``precisions_init`` are all given no partition is computed; when only some are, the
        rest come from ``"kmeans"`` for the combined methods.
    weights_init, means_init, precisions_init : array-like, optional
        User-given initial parameters (override the initialisation, as in scikit-learn).
    resp_init : array-like of shape (n_samples, n_components), optional
        User-given initial responsibilities.
    random_state : None, int, Generator or RandomState
    warm_start : bool, default False
        Start the next ``fit`` from the current parameters (one start).
    verbose : int, default 0
        1 prints each start and every ``verbose_interval``-th iteration, 2 also the time and
        the change of the log-likelihood per sample (as scikit-learn; printed by
        :class:`emkit.core.engine.VerboseReporter`).
    verbose_interval : int, default 10
        Iterations between two printed lines.
    accelerate : {"squarem", None}, default "squarem"
        SQUAREM (Varadhan & Roland 2008) needs 2–5× fewer passes over the data than plain EM
        where EM is slow (overlapping components: Old Faithful K=6 108 passes against 519) and
        about as many where plain EM converges in a few; ``None`` is plain EM. A fit allowed
        fewer than three passes (``max_iter`` < 3) runs plain EM. ``reg_covar``'s M-step is not
        an exact maximiser: near a collapsing component it can lower the M-step's objective Q,
        and the log-likelihood by at most as much; the engine compares Q before and after each
        M-step and does not warn about such a decrease (docs/design.md).
    annealing : float or sequence of float, optional
        Deterministic annealing: start temperature (1.2–2 is typical) or inverse temperatures.
    dtype : numpy.float64 or numpy.float32, default float64
        Precision of the E-step: densities, posteriors and moment sums within blocks of 256
        rows; the block totals are added in float64, and a component whose covariance comes
        out ill-conditioned (correlation condition number above 1e3, e.g. one collapsing onto
        a few rows) has its moments summed in float64 throughout, so float32 EM stays
        monotone.
    progress : bool, default False
        Show a progress bar.
    learning_decay, learning_offset : float, default 0.6 and 2.0
        Step sizes ρ_t = (t + learning_offset)^(−learning_decay) of online EM
        (:meth:`partial_fit`; see :mod:`emkit.core.online`).

    Attributes
    ----------
    weights_ : (n_components,)
    means_ : (n_components, n_features)
    covariances_, precisions_, precisions_cholesky_ : shapes depend on ``covariance_type``
    converged_ : bool
    n_iter_ : int
        EM iterations of the best start, counted as scikit-learn counts them: the M-steps that
        led to the fitted parameters, 0 with ``max_iter=0`` (the start itself), ``max_iter``
        when the limit stopped the fit. scikit-learn judges convergence by the change one
        iteration behind its newest parameters, emkit at the newest ones, so from the same start
        emkit can stop an iteration sooner. With ``accelerate="squarem"`` it counts passes over
        the data (each SQUAREM cycle takes two or three): the cost, comparable with plain EM's.
    lower_bound_ : float
        Final log-likelihood per sample (plus log prior, for MAP models).
    history_ : ndarray
        Objective (total log-likelihood) at every iteration of the best start.
    events_ : list of (iteration, message)
        What the fit had to do (e.g. re-seed a degenerate component).
    """

    _parameter_constraints = {
        **EMEstimator._parameter_constraints,
        **OnlineEMMixin._online_constraints,
        "n_components": COUNT,
        "n_init": COUNT,
        "covariance_type": OneOf(*MIXTURE_COVARIANCE_TYPES),
        "init_params": OneOf(*INIT_METHODS),
        "reg_covar": NON_NEGATIVE,
        "dtype": Satisfies(_float_dtype, "numpy.float64 or numpy.float32"),
        "random_state": RANDOM_STATE,
        "verbose": VERBOSE,
        "verbose_interval": COUNT,
    }
    _fitted_attributes = ("weights_",)
    _input_tags = {"allow_nan": True}  # missing values: exact EM on the observed coordinates

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-6, reg_covar=1e-6,
                 max_iter=1000, n_init=1, init_params=DEFAULT_INIT, weights_init=None,
                 means_init=None, precisions_init=None, resp_init=None, random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10, accelerate="squarem",
                 annealing=None, dtype=np.float64, progress=False, learning_decay=0.6,
                 learning_offset=2.0):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.resp_init = resp_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.accelerate = accelerate
        self.annealing = annealing
        self.dtype = dtype
        self.progress = progress
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None, labels=None, *, checkpoint=None, resume=False):
        """Fit by EM. ``y`` is ignored; ``labels`` (−1 = unknown) fix known components.

        ``checkpoint`` (a file path) saves the state of the fit every 10 iterations and after
        each start; ``resume=True`` continues an interrupted fit from it to the result an
        uninterrupted fit gives (see :func:`emkit.fit_em`)."""
        return self._fit(X, y, sample_weight, checkpoint=checkpoint, resume=resume,
                         labels=labels)

    def fit_predict(self, X, y=None, sample_weight=None, labels=None):
        """Fit, then return the most probable component of each row."""
        return self.fit(X, sample_weight=sample_weight, labels=labels).predict(X)

    def validated_fit_input(self, X, sample_weight=None):
        """The data ``fit`` would fit, validated as ``fit`` validates it (the same errors), and
        ``n_features_in_`` / ``feature_names_in_`` set as ``fit`` sets them: a
        :class:`~emkit.data.chunks.Batch` for rows in memory."""
        return self._prepare_fit(X, None, sample_weight)

    def _prepare_fit(self, X, y, sample_weight, labels=None):
        if is_dask_collection(X):
            from emkit.data.distributed import DaskChunks

            X = DaskChunks(X)
        if isinstance(X, ChunkSource):
            return self._streamed(X, sample_weight, labels)
        X = self._validate_rows(X, reset=True)
        n_samples = len(X)
        if n_samples < 2:
            raise DataError(f"GaussianMixture needs at least 2 rows, got {n_samples} sample "
                            "(n_samples = 1): fit on more data.")
        if self.n_components > n_samples:
            raise DataError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {n_samples}: n_components="
                f"{self.n_components} is larger than the number of samples; use fewer "
                "components or more data.")
        check_observed(X, getattr(self, "feature_names_in_", None))
        check_no_constant_column(X, getattr(self, "feature_names_in_", None))
        self._check_initial_values(n_samples, X.shape[1])
        sample_weight = check_sample_weight(sample_weight, n_samples)
        labels = self._check_labels(labels, n_samples)
        return Batch(X, sample_weight, labels)

    # ------------------------------------------------------------------ online EM hook
    def _online_batch(self, X, y, sample_weight, first):
        X = self._validate_rows(X, reset=first and not self._is_fitted())
        if first:
            self._check_initial_values(len(X), X.shape[1])
        return Batch(X, check_sample_weight(sample_weight, len(X)))

    def _streamed(self, source, sample_weight, labels):
        """A streamed source (e.g. :class:`emkit.data.chunks.NpyChunks`) whose chunks are checked as
        they are read."""
        if sample_weight is not None or labels is not None:
            raise DataError("sample_weight and labels cannot go with streamed data; stream "
                            "emkit.data.chunks.Batch chunks instead.")
        if self.resp_init is not None:
            raise ParameterError("resp_init needs the rows in memory; with streamed data use "
                                 "means_init or an init_params method.")
        n_features = source.n_features
        self.n_features_in_ = n_features
        if source.columns is not None:
            self.feature_names_in_ = np.asarray(source.columns, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._check_initial_values(None, n_features)
        dtype = np.dtype(self.dtype)

        def check(chunk, index):
            chunk = np.asarray(chunk)
            if chunk.ndim != 2 or chunk.shape[1] != n_features:
                raise DataError(f"chunk {index} of the data has shape {chunk.shape}, but the data "
                                f"have {n_features} columns: every chunk needs the same columns.")
            if chunk.dtype.kind not in "biuf":
                raise DataError(f"chunk {index} of the data holds {chunk.dtype}, not numbers.")
            chunk = np.ascontiguousarray(chunk, dtype=dtype)
            if np.isinf(chunk).any():
                raise DataError(f"chunk {index} of the data contains infinity, which is not a "
                                "missing value: mark missing entries as NaN.")
            return chunk

        if hasattr(source, "checked"):  # a source that runs its chunks elsewhere checks there
            return source.checked(check)
        return CheckedChunks(source, check)

    def _lead_in(self) -> list[float]:
        """The objectives of the EM sequence that led to the fitted parameters, for the
        convergence test of a warm start (its last point is evaluated again as the start)."""
        if not (self.warm_start and self._is_fitted()):
            return []
        return list(getattr(self, "_objectives_so_far", [])[:-1])

    def _em_options(self, data):
        return {**super()._em_options(data), "init_history": self._lead_in(),
                "annealing": self.annealing,
                "decrease_rtol": 1e-10 if np.dtype(self.dtype) == np.float64 else 1e-5}

    def _run_em(self, model, data, **checkpointing):
        lead_in = self._lead_in()
        result = super()._run_em(model, data, **checkpointing)
        self._objectives_so_far = (lead_in + list(result.history))[-_LEAD_IN:]
        return result

    def _store_result(self, result) -> None:
        super()._store_result(result)
        self.lower_bounds_ = list(np.asarray(result.history) / result.n_samples)

    def _model(self) -> GaussianMixtureModel:
        model = GaussianMixtureModel(
            self.n_components, self.covariance_type, self.reg_covar, self.dtype,
            self.init_params, self.weights_init, self.means_init, self.precisions_init,
            self.resp_init)
        # Set by select_model only (not a parameter: a clone fits on its own).
        model.shared_starts = getattr(self, "_shared_starts", None)
        return model

    def _params(self) -> MixtureParams:
        return MixtureParams(self.weights_,
                             GaussianParams(self.means_, self.covariances_,
                                            self.precisions_cholesky_))

    def _set_params(self, params: MixtureParams) -> None:
        self.weights_ = params.weights
        self.means_ = params.components.means
        self.covariances_ = params.components.covariances
        self.precisions_cholesky_ = params.components.precisions_cholesky
        P = self.precisions_cholesky_
        kind = layout(self.covariance_type)
        if kind == "full":
            self.precisions_ = P @ np.swapaxes(P, 1, 2)
        elif kind == "tied":
            self.precisions_ = P @ P.T
        else:
            self.precisions_ = P**2

    # ------------------------------------------------------------------ inference
    def predict(self, X):
        """Most probable component of each row, shape (n_samples,); lazy for a Dask array."""
        if is_dask_collection(X):
            return _dask_rows(self.predict, X, None).astype(np.intp)
        return super().predict(X)

    def predict_proba(self, X):
        """Posterior probability of each component, shape (n_samples, n_components); lazy for a
        Dask array."""
        if is_dask_collection(X):
            return _dask_rows(self.predict_proba, X, self.n_components)
        return super().predict_proba(X)

    def score_samples(self, X):
        """Log-likelihood of each row, shape (n_samples,); lazy for a Dask array."""
        if is_dask_collection(X):
            return _dask_rows(self.score_samples, X, None)
        return super().score_samples(X)

    def _draw(self, n_samples, rng):
        counts = rng.multinomial(n_samples, self.weights_)
        n_features = self.means_.shape[1]
        kind = layout(self.covariance_type)
        rows, labels = [], []
        for k, count in enumerate(counts):
            if kind == "full":
                cov = self.covariances_[k]
            elif kind == "tied":
                cov = self.covariances_
            elif kind == "diag":
                cov = np.diag(self.covariances_[k])
            else:
                cov = np.eye(n_features) * self.covariances_[k]
            rows.append(rng.multivariate_normal(self.means_[k], cov, size=count))
            labels.append(np.full(count, k))
        return np.vstack(rows), np.concatenate(labels)

    def standard_errors(self, X, sample_weight=None) -> dict[str, np.ndarray]:
        """Standard errors of ``weights_``, ``means_`` and ``covariances_`` from the observed
        information on the rows ``X`` the model was fitted to (and their ``sample_weight``).

        Returns ``{"weights": (K,), "means": (K, D), "covariances": shaped like
        covariances_}``: the exact Hessian of the observed-data log-likelihood in the free
        coordinates, inverted and carried to the reported parameters by the delta method (see
        :mod:`emkit.models.information`). The free coordinates are K − 1 weights, the means
        and the covariance model's own: the unique entries (full, tied, diag, spherical and
        their mclust names, EII, EEI), or for the models sharing a volume, shape or
        orientation through the eigendecomposition (VEI, EVI, VEE, EVE, VVE, EEV, VEV, EVV)
        the log-volumes, log-shapes (det A = 1) and rotation angles about the fitted axes
        (:mod:`emkit.families.gaussian_information`). Raises NumericalError naming a
        parameter the data do not identify — e.g. the orientation of a component whose
        shape has two equal axes."""
        from emkit.families.gaussian_information import (
            GaussianInformation,
            covariance_coordinates,
            full_covariances,
        )
        from emkit.families.parsimonious import layout
        from emkit.models.information import mixture_standard_errors

        self._check_fitted()
        X = np.asarray(self._validate_rows(X, reset=False), dtype=float)
        if np.isnan(X).any():
            raise DataError("standard errors need complete rows: X holds missing values "
                            "(NaN); drop or impute those rows first.")
        sample_weight = check_sample_weight(sample_weight, len(X))
        K, D = self.means_.shape
        covariances = full_covariances(self.covariances_, layout(self.covariance_type), K, D)
        pieces = GaussianInformation(
            self.means_, covariances, covariance_coordinates(self.covariance_type, covariances))
        return mixture_standard_errors(pieces, self.weights_, X, sample_weight)

    # ------------------------------------------------------------------ model choice
    def n_parameters(self) -> int:
        """Number of free parameters (weights, means, covariances)."""
        self._check_fitted()
        return self._model().n_parameters(self.means_.shape[1])

    def icl(self, X):
        """Integrated completed likelihood (Biernacki, Celeux & Govaert 2000), lower is better:
        BIC − 2 Σ_i log τ_i,ẑ(i), the BIC plus twice the log-posterior cost of the hard
        classification ẑ (as mclust's ICL, with scikit-learn's sign convention)."""
        resp = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            classification = np.log(resp.max(axis=1))
        return self.bic(X) - 2 * float(np.sum(classification))

    # ------------------------------------------------------------------ validation
    def _validate_rows(self, X, reset):
        X = validate_rows(self, X, reset=reset, dtype=[np.float64, np.float32])
        dtype = np.dtype(self.dtype)
        if dtype == X.dtype:
            return np.ascontiguousarray(X)
        # Converted once to the precision of the E-step, not at every iteration.
        with np.errstate(over="ignore"):
            converted = np.ascontiguousarray(X, dtype=dtype)
        if np.isinf(converted).any():
            limit = np.finfo(dtype).max
            raise DataError(f"the data hold values beyond ±{limit:.3g}, which {dtype} cannot "
                            "represent: use dtype=numpy.float64 (without --float32 on the "
                            "command line) or rescale the data.")
        return converted

    def _check_initial_values(self, n_samples, n_features):
        """Shapes and ranges of user-given starting values, checked before any work.

        The messages begin with scikit-learn's wording ("The parameter 'weights' should …") so
        that code matching scikit-learn's errors keeps working."""
        K = self.n_components
        if self.weights_init is not None:
            weights = _numeric("weights_init", self.weights_init, (K,), "weights")
            if np.any(weights < 0) or np.any(weights > 1):
                raise ParameterError(
                    "The parameter 'weights' should be in the range [0, 1], but got min value "
                    f"{weights.min():.5f}, max value {weights.max():.5f}: weights_init are the "
                    "mixing proportions.")
            if not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-6):
                raise ParameterError(
                    "The parameter 'weights' should be normalized, but got sum(weights) = "
                    f"{weights.sum():.5f}: weights_init must sum to 1.")
        if self.means_init is not None:
            _numeric("means_init", self.means_init, (K, n_features), "means")
        if self.precisions_init is not None:
            kind = layout(self.covariance_type)
            shape = {"full": (K, n_features, n_features), "tied": (n_features, n_features),
                     "diag": (K, n_features), "spherical": (K,)}[kind]
            precisions = _numeric("precisions_init", self.precisions_init, shape,
                                  f"{kind} precision")
            if kind in ("diag", "spherical"):
                positive, required = bool(np.all(precisions > 0)), "positive"
            else:
                matrices = precisions.reshape((-1, n_features, n_features))
                positive = all(np.allclose(m, m.T) and np.all(np.linalg.eigvalsh(m) > 0)
                               for m in matrices)
                required = "symmetric, positive-definite"
            if not positive:
                raise ParameterError(
                    f"The parameter '{kind} precision' should be {required}: precisions_init "
                    "must be such for every component.")
        if self.resp_init is not None:
            resp = _numeric("resp_init", self.resp_init, (n_samples, K))
            if np.any(resp < 0) or np.any(resp.sum(axis=1) <= 0):
                raise ParameterError(
                    "resp_init must be non-negative with a positive sum in every row.")

    def _check_labels(self, labels, n_samples):
        if labels is None:
            return None
        labels = np.asarray(labels)
        if labels.shape != (n_samples,) or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"labels must be integers of shape ({n_samples},), got "
                            f"{labels.dtype} of shape {labels.shape}.")
        if labels.min() < -1 or labels.max() >= self.n_components:
            raise DataError(f"labels must be -1 (unknown) or in 0..{self.n_components - 1}.")
        return labels

def _dask_rows(method, X, n_outputs):
    from emkit.data.distributed import map_rows

    return map_rows(method, X, n_outputs)


def _numeric(name, value, shape, sklearn_name=None):
    """``value`` as a float array of ``shape``; ``sklearn_name`` is scikit-learn's name for it
    in its error messages (e.g. 'weights' for weights_init), whose wording is kept."""
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as error:
        raise ParameterError(f"{name} must be numbers: {error}.") from error
    if array.shape != tuple(shape):
        prefix = ("" if sklearn_name is None else
                  f"The parameter '{sklearn_name}' should have the shape of {tuple(shape)}, "
                  f"but got {array.shape}: ")
        raise ParameterError(f"{prefix}{name} has shape {array.shape}, expected {tuple(shape)} "
                             "(from n_components and the number of features).")
    if not np.all(np.isfinite(array)):
        raise ParameterError(f"{name} contains NaN or infinity.")
    return array
