"""Online (stepwise) EM: one update per mini-batch, for data streams and very large data sets.

Cappé & Moulines (2009), "On-line expectation–maximization algorithm for latent data models",
J. R. Statist. Soc. B 71:593–613. Statistics, not parameters, are averaged. After mini-batch t
with statistics s_t(θ_{t−1}) per sample,

    S_t = (1 − ρ_t) S_{t−1} + ρ_t s_t(θ_{t−1}),    ρ_t = (t + t₀)^(−κ),  κ ∈ (0.5, 1],
    θ_t = M(n_t S_t),

where n_t is the (weighted) number of samples seen so far, so that a prior (MAP-EM) weighs
against the data seen, as in a batch fit of that size. The first batch sets S_1 = s_1. With
κ ∈ (0.5, 1] the steps satisfy Σ ρ_t = ∞ and Σ ρ_t² < ∞, and the parameters converge to a
stationary point of the likelihood. Smaller κ forgets the early, poorly fitted batches faster.

Any emkit model works unchanged: it needs ``n_samples(stats)``, and its statistics must scale
(:func:`emkit.core.statistics.scale_statistics`: tuples field by field, or a ``scaled(factor)``
method).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from emkit.core.statistics import add_statistics, scale_statistics
from emkit.data.chunks import Batch, in_memory, iter_chunks
from emkit.errors import ParameterError


def check_learning_rate(learning_decay: float, learning_offset: float) -> None:
    """κ in (0.5, 1] and t₀ ≥ 0, or a ParameterError saying why."""
    if not (isinstance(learning_decay, (int, float)) and 0.5 < learning_decay <= 1.0):
        raise ParameterError(f"learning_decay (κ) must be in (0.5, 1] for online EM to "
                             f"converge, got {learning_decay!r}.")
    if not (isinstance(learning_offset, (int, float)) and learning_offset >= 0
            and math.isfinite(learning_offset)):
        raise ParameterError(f"learning_offset (t₀) must be a number >= 0, got "
                             f"{learning_offset!r}.")


@dataclass
class OnlineEM:
    """The state of a stepwise EM fit: parameters and the running average of the statistics.

    Parameters
    ----------
    model : an emkit model (see :class:`emkit.core.engine.EMModel`) with ``n_samples``
    params : its starting parameters
    learning_decay, learning_offset : float
        κ and t₀ of the step size ρ_t = (t + t₀)^(−κ).
    """

    model: Any
    params: Any
    learning_decay: float = 0.6
    learning_offset: float = 2.0
    n_steps: int = 0
    n_seen: float = 0.0
    average: Any = None  # S_t: statistics per sample

    def __post_init__(self):
        check_learning_rate(self.learning_decay, self.learning_offset)
        if not hasattr(self.model, "n_samples"):
            raise ParameterError(f"online EM needs {type(self.model).__name__}.n_samples(stats) "
                                 "to average statistics per sample.")

    def step(self, chunk: Any) -> float:
        """Update from one mini-batch; returns its log-likelihood per sample under the
        parameters before the update (NaN for a batch of total weight 0, which changes
        nothing)."""
        stats, log_likelihood = self.model.e_step(self.params, chunk)
        n_samples = float(self.model.n_samples(stats))
        if not n_samples > 0:
            return math.nan
        per_sample = scale_statistics(stats, 1.0 / n_samples)
        if self.average is None:
            self.average = per_sample
        else:
            rho = (self.n_steps + self.learning_offset) ** -self.learning_decay
            self.average = add_statistics(scale_statistics(self.average, 1.0 - rho),
                                          scale_statistics(per_sample, rho))
        self.n_steps += 1
        self.n_seen += n_samples
        self.params = self.model.m_step(scale_statistics(self.average, self.n_seen), self.params)
        return float(log_likelihood) / n_samples


def minibatches(data: Any, batch_rows: int, rng: np.random.Generator) -> Iterator[Any]:
    """Mini-batches of one epoch: the rows of an array or Batch in a random order, cut into
    batches of ``batch_rows``; a list of chunks or a streamed source batch by chunk."""
    if not in_memory(data) or not (isinstance(data, Batch) or hasattr(data, "shape")):
        yield from iter_chunks(data)
        return
    batch = data if isinstance(data, Batch) else Batch(np.asarray(data))
    order = rng.permutation(len(batch.X))
    for start in range(0, len(order), batch_rows):
        rows = np.sort(order[start:start + batch_rows])  # sorted: contiguous reads
        yield Batch(batch.X[rows],
                    None if batch.sample_weight is None else batch.sample_weight[rows],
                    None if batch.labels is None else batch.labels[rows])


def fit_online(model: Any, data: Any, *, batch_rows: int = 1000, n_epochs: int = 1,
               learning_decay: float = 0.6, learning_offset: float = 2.0, init: Any = None,
               random_state: Any = None) -> OnlineEM:
    """Mini-batch (stepwise) EM over ``n_epochs`` passes of ``data``.

    Arrays are shuffled into batches of ``batch_rows`` rows each epoch; chunked or streamed
    data use their chunks as batches. Returns the :class:`OnlineEM` state (``.params``).
    """
    if not (isinstance(batch_rows, (int, np.integer)) and batch_rows >= 1):
        raise ParameterError(f"batch_rows must be a positive integer, got {batch_rows!r}.")
    if not (isinstance(n_epochs, (int, np.integer)) and n_epochs >= 1):
        raise ParameterError(f"n_epochs must be a positive integer, got {n_epochs!r}.")
    rng = np.random.default_rng(random_state)
    params = init if init is not None else model.init_params(data, rng)
    state = OnlineEM(model, params, learning_decay, learning_offset)
    for _ in range(n_epochs):
        for batch in minibatches(data, int(batch_rows), rng):
            state.step(batch)
    return state
