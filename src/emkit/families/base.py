"""The two contracts every distribution family in emkit meets, written down.

A *family* is K components (mixture components or hidden states) of one kind of distribution,
with small immutable parameters ``P`` and additive sufficient statistics ``S``:

- :class:`ComponentFamily`: what :class:`emkit.models.mixture.MixtureModel` needs to make a
  mixture of the family. A new mixture family is one module implementing it.
- :class:`Emission`: what :class:`emkit.models.hmm.HMMModel` needs of a hidden Markov model's
  emissions (the frames of a chain, with per-letter updates and sampling).

Both are ``typing.Protocol``: nothing has to inherit from them; ``tests/contracts`` checks every
family and emission against them (the methods exist, statistics add, ``m_step`` returns
``(params, events)``, densities agree with scipy's).

The contract, for both:

- **Statistics add.** ``statistics(params, A ∪ B, w) == statistics(params, A, w_A) +
  statistics(params, B, w_B)`` (``+`` defined on the statistics' type, or field by field for a
  NamedTuple of arrays), and rows of weight 0 contribute nothing. They are returned values,
  never state mutated in the family. So the same family runs on one array, on chunks streamed
  from disk, on a Dask cluster and online.
- **Log-densities per row and component.** ``log_density(params, X)`` is (n_rows, K):
  log p(x_i | component k), in float64 unless the family says otherwise; a row with nothing
  observed contributes 0 to every component.
- **M-step returns (params, events).** ``events`` is a tuple of messages (possibly empty) saying
  what the M-step had to repair (a component with no usable data kept its previous values, …);
  the engine records them in ``EMResult.events``. Parameters never become NaN.

Mixture arithmetic shared by every mixture (the generic mixture and mixtures inside an emission)
lives here once: posteriors from log joint densities (with annealing), the weight M-step, and
the log-weight coordinates of SQUAREM.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

# Added to every weight count: a mixing weight is never exactly 0 (its log stays finite).
_WEIGHT_FLOOR = 10 * np.finfo(float).eps


@runtime_checkable
class ComponentFamily(Protocol):
    """K components of one distribution family, as a mixture uses them.

    ``params`` are the components' parameters (all K), ``stats`` their additive statistics;
    ``data`` is what :meth:`read` makes of a block of rows (an array for most families).
    """

    def read(self, X: Any) -> Any:
        """Rows checked and converted to what the other methods take (done once per chunk
        and fit when the data are in memory). Raise ``emkit.errors.DataError`` on bad rows."""

    def n_rows(self, data: Any) -> int:
        """Number of rows of ``data`` (as returned by :meth:`read`)."""

    def log_density(self, params: Any, data: Any) -> np.ndarray:
        """log p(x_i | component k), shape (n_rows, K)."""

    def posteriors(self, params: Any, data: Any, log_weights: np.ndarray,
                   inverse_temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """The rows' mixture log-likelihoods log Σ_k π_k p(x_i | k) (n_rows,) and posteriors
        ∝ (π_k p(x_i | k))^β (n_rows, K) for ``log_weights`` log π. A family with compiled
        kernels fuses this pass; :class:`FamilyDefaults` derives it from :meth:`log_density`."""

    def statistics(self, params: Any, data: Any, weights: np.ndarray) -> Any:
        """Additive statistics of the rows with per-row, per-component weights (n_rows, K)."""

    def component_weights(self, stats: Any) -> np.ndarray:
        """Σ_i w_ik per component, shape (K,): the counts of the weight M-step."""

    def m_step(self, stats: Any, params: Any) -> tuple[Any, tuple[str, ...]]:
        """Parameters maximising the expected complete-data log-likelihood (plus log prior)
        given the summed statistics, started from / falling back to ``params``; and events."""

    def log_prior(self, params: Any) -> float:
        """Log prior density of the parameters (0.0 for maximum likelihood)."""

    def init(self, parts: list[tuple[Any, np.ndarray | None]], n_components: int,
             rng: np.random.Generator) -> tuple[np.ndarray, Any]:
        """A starting point (mixing weights (K,), component parameters) from the data: the
        chunks' rows as read by :meth:`read`, each with its row weights (None: all 1)."""

    def flatten(self, params: Any) -> np.ndarray:
        """Unconstrained coordinates of the parameters (for SQUAREM)."""

    def unflatten(self, vector: np.ndarray, template: Any) -> Any:
        """Parameters from :meth:`flatten`'s coordinates (shapes from ``template``); raise
        ``FloatingPointError`` where the coordinates give no valid parameters."""

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free parameters of the K components (for BIC/AIC)."""


@runtime_checkable
class Emission(Protocol):
    """The emissions of the K states of a hidden Markov model.

    ``letters`` names the parameters the M-step may update (hmmlearn's ``params`` letters:
    "m", "c" means and covariances, "w" mixture weights, "e" emission probabilities, "l" rates).
    ``rows`` is where the frames' NaN are (``Sequences.missing_layout``), found once per fit;
    an emission that does not need it ignores it.
    """

    letters: str

    def validate(self, X: np.ndarray) -> None:
        """Raise ``emkit.errors.DataError`` if the frames cannot come from this emission."""

    def log_density(self, params: Any, X: np.ndarray, rows: Any = None) -> np.ndarray:
        """log p(x_t | state k), shape (n_frames, K), float64; 0 for a frame with nothing
        observed."""

    def statistics(self, params: Any, X: np.ndarray, weights: np.ndarray,
                   rows: Any = None) -> Any:
        """Additive statistics of the frames with per-frame, per-state weights (n_frames, K)."""

    def m_step(self, stats: Any, params: Any, update: str) -> tuple[Any, tuple[str, ...]]:
        """New parameters (those whose letter is in ``update``; the others from ``params``),
        and events."""

    def log_prior(self, params: Any) -> float:
        """Log prior density of the parameters (0.0 for maximum likelihood)."""

    def init(self, X: np.ndarray, frame_weights: np.ndarray, n_states: int,
             rng: np.random.Generator) -> Any:
        """Starting parameters of ``n_states`` states from the frames (time order ignored)."""

    def merge(self, drawn: Any, given: Any, letters: str) -> Any:
        """``drawn`` parameters, with those whose letter is not in ``letters`` from ``given``."""

    def flatten(self, params: Any) -> np.ndarray:
        """Unconstrained coordinates of the parameters (for SQUAREM)."""

    def unflatten(self, vector: np.ndarray, template: Any) -> Any:
        """Parameters from :meth:`flatten`'s coordinates (shapes from ``template``)."""

    def n_parameters(self, n_states: int, n_features: int) -> int:
        """Free parameters of the emissions of ``n_states`` states (for BIC/AIC)."""

    def sample(self, params: Any, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One frame drawn from each state in ``states``, shape (len(states), n_features)."""


class FamilyDefaults:
    """What most component families share: rows read as float arrays, posteriors derived from
    the log-densities, no prior. Optional (the protocols need no base class)."""

    def read(self, X: Any) -> Any:
        return np.asarray(X, dtype=float)

    def n_rows(self, data: Any) -> int:
        return len(data)

    def posteriors(self, params: Any, data: Any, log_weights: np.ndarray,
                   inverse_temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        return posteriors_from_log_joint(self.log_density(params, data) + log_weights,
                                         inverse_temperature)

    def log_prior(self, params: Any) -> float:
        return 0.0


class EmissionDefaults:
    """What most emissions share: no prior; a single-letter emission draws all or nothing."""

    def log_prior(self, params: Any) -> float:
        return 0.0

    def merge(self, drawn: Any, given: Any, letters: str) -> Any:
        return drawn


# --------------------------------------------------------------------------- mixture arithmetic
def log_weights(weights: np.ndarray) -> np.ndarray:
    """log π; a weight of exactly 0 gives −inf, which is right."""
    with np.errstate(divide="ignore"):
        return np.log(weights)


def logsumexp(values: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """log Σ exp(values) over one axis, without overflow; all −inf gives −inf. (scipy's, which
    also takes weights and complex or masked input, costs ~0.4 ms a call: more than the rest of
    a small mixture's E-step.)"""
    top = np.max(values, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        total = np.log(np.sum(np.exp(values - top), axis=axis, keepdims=True)) + top
    return total if keepdims else np.squeeze(total, axis=axis)


def posteriors_from_log_joint(log_joint: np.ndarray, inverse_temperature: float = 1.0,
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Mixture posteriors over the last axis of log π_k + log p(x | k): the log-likelihood
    log Σ_k π_k p(x | k) and the posteriors ∝ (π_k p(x | k))^β. Annealing (β < 1) tempers the
    posteriors only; the log-likelihood stays the true one."""
    log_norm = logsumexp(log_joint, axis=-1)
    if inverse_temperature == 1.0:
        with np.errstate(invalid="ignore"):  # −inf − (−inf): a row no component explains
            return log_norm, np.exp(log_joint - log_norm[..., None])
    tempered = inverse_temperature * log_joint
    with np.errstate(invalid="ignore"):
        return log_norm, np.exp(tempered - logsumexp(tempered, keepdims=True))


def mixing_weights(counts: np.ndarray) -> np.ndarray:
    """The weight M-step over the last axis: π_k ∝ Σ_i w_i r_ik (plus a floor of 10 machine
    epsilons, so that no weight becomes exactly 0 and an empty mixture has equal weights)."""
    weights = counts + _WEIGHT_FLOOR
    return weights / weights.sum(axis=-1, keepdims=True)


def flatten_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """log p, raveled (SQUAREM coordinates of rows of probabilities; 0 → log 1e-300)."""
    return np.log(np.maximum(probabilities, 1e-300)).ravel()


def unflatten_probabilities(logits: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Rows of probabilities (softmax over the last axis) from logits shaped like ``template``;
    zeros of ``template`` are structural and stay zero."""
    logits = np.where(template > 0, np.reshape(logits, template.shape), -np.inf)
    return np.exp(logits - logsumexp(logits, axis=-1, keepdims=True))


# --------------------------------------------------------------------------- starts
def partition_start(family: Any, data: Any, points: np.ndarray, row_weights: np.ndarray | None,
                    n_components: int, rng: np.random.Generator,
                    placeholder: Any, softness: float = 0.1) -> tuple[np.ndarray, Any]:
    """A start from a partition of the rows: k-means++ seeds among ``points`` (the rows as
    vectors, without NaN), every row to its nearest seed, then the family's M-step of that
    partition (``placeholder``: parameters it may fall back on, e.g. for an empty part).

    The partition is softened (each row keeps ``softness`` of its weight spread over all
    components) so that no component starts with probabilities of exactly 0 or 1 that EM
    could never leave. Returns (mixing weights, component parameters)."""
    from emkit.models.clustering import kmeans_plusplus, nearest

    used = np.ones(len(points), bool) if row_weights is None else row_weights > 0
    seeds = kmeans_plusplus(points[used], n_components, rng,
                            None if row_weights is None else row_weights[used])
    labels, _ = nearest(points, seeds)
    resp = np.full((len(points), n_components), softness / n_components)
    resp[np.arange(len(points)), labels] += 1.0 - softness
    if row_weights is not None:
        resp *= row_weights[:, None]
    stats = family.statistics(placeholder, data, resp)
    components, _ = family.m_step(stats, placeholder)
    return mixing_weights(family.component_weights(stats)), components
