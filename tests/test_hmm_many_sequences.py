"""Many sequences in one forward-backward call equal the same sequences done one by one.

A batch runs through other code than a single sequence: groups of sequences on all threads, work
arrays reused from one sequence to the next, π taken once per group, and a sequence that holds
most of the frames split between two threads. Whatever the path, each sequence's log-likelihood
and posteriors must be those of its own call, and the start and transition counts the weighted
sums of its own counts (they are sufficient statistics: they add over sequences).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from emkit.core.statistics import add_statistics
from emkit.kernels import hmm as kernels
from emkit.kernels import tiers
from emkit.models.hmm import GaussianEmission, HMMModel, Sequences

N_STATES = 4


@pytest.fixture(autouse=True, params=["numpy", "compiled"])
def form(request, monkeypatch):
    """Every test runs the kernels' numpy form (the sequences side by side) and their compiled
    form (groups of sequences on the threads)."""
    monkeypatch.setattr(tiers, "MODE", request.param)
    return request.param


def random_chain(rng, zeros=False):
    start = rng.dirichlet(np.ones(N_STATES))
    transmat = rng.dirichlet(np.ones(N_STATES), N_STATES) + 2 * np.eye(N_STATES)
    if zeros:  # a left-right chain: the lost-path checks are on
        transmat = np.triu(transmat)
    return start, transmat / transmat.sum(axis=1, keepdims=True)


def one_by_one(start, transmat, log_emission, bounds, weights):
    """Each sequence in a call of its own; counts summed with the sequences' weights."""
    n_sequences = len(bounds) - 1
    log_likelihood = np.zeros(n_sequences)
    posteriors = np.zeros_like(log_emission)
    start_counts, pair_counts = np.zeros(N_STATES), np.zeros((N_STATES, N_STATES))
    with np.errstate(divide="ignore"):
        log_start = np.log(start)
    for s in range(n_sequences):
        first, last = bounds[s], bounds[s + 1]
        ll, post, starts, pairs = kernels.forward_backward(
            log_start, transmat, log_emission[first:last], np.array([0, last - first]),
            weights[s:s + 1])
        log_likelihood[s], posteriors[first:last] = ll[0], post
        start_counts += starts
        pair_counts += pairs
    return log_likelihood, posteriors, start_counts, pair_counts


@pytest.mark.parametrize("layout", ["short", "mixed", "dominant"])
@pytest.mark.parametrize("zeros", [False, True])
def test_a_batch_equals_its_sequences_one_by_one(layout, zeros, monkeypatch, form):
    rng = np.random.default_rng(len(layout) + zeros)
    start, transmat = random_chain(rng, zeros)
    lengths = {"short": rng.integers(1, 12, 1500),  # 20,000 × 10-like: groups on all threads
               "mixed": np.concatenate([rng.integers(1, 12, 300), [3000, 5000, 1, 2000]]),
               "dominant": np.concatenate([rng.integers(1, 12, 200), [12000], [5, 7]])}[layout]
    rng.shuffle(lengths)
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    log_emission = rng.normal(0.0, 3.0, (bounds[-1], N_STATES)) - 2.0
    weights = rng.choice([0.0, 1.0, 2.5], len(lengths), p=[0.1, 0.6, 0.3])
    weights[np.argmax(lengths)] = 1.0  # (a dominant sequence of weight 0 is not split)
    grouped = []
    parallel = kernels._forward_backward_parallel
    monkeypatch.setattr(kernels, "_forward_backward_parallel",
                        lambda *args: grouped.append(1) or parallel(*args))

    batch = kernels.forward_backward(np.log(start), transmat, log_emission, bounds, weights)
    alone = one_by_one(start, transmat, log_emission, bounds, weights)

    if numba.get_num_threads() >= 2 and layout != "dominant" and form == "compiled":
        assert grouped, "the sequences were not spread over the threads"
    used = weights > 0
    np.testing.assert_allclose(batch[0][used], alone[0][used], rtol=1e-12)
    assert np.all(batch[0][~used] == 0.0)
    frame_used = np.repeat(used, lengths)
    np.testing.assert_allclose(batch[1][frame_used], alone[1][frame_used], rtol=1e-10,
                               atol=1e-13)
    assert np.all(batch[1][~frame_used] == 0.0)
    np.testing.assert_allclose(batch[1][frame_used].sum(axis=1), 1.0, rtol=1e-10)
    for counts_batch, counts_alone in zip(batch[2:], alone[2:], strict=True):
        np.testing.assert_allclose(counts_batch, counts_alone, rtol=1e-11, atol=1e-12)
    # Σ_s w_s Σ_t ξ_t has Σ_s w_s (T_s − 1) in all
    np.testing.assert_allclose(batch[3].sum(), np.dot(weights, lengths - 1), rtol=1e-12)
    if zeros:
        assert np.all(batch[3][transmat == 0] == 0.0)


def test_gaussian_hmm_statistics_of_many_sequences_add_up():
    """The model's E-step on 400 sequences (groups on all threads) equals the sum of its
    E-steps on each sequence."""
    rng = np.random.default_rng(7)
    lengths = rng.integers(5, 40, 400)
    X = rng.normal(0.0, 1.0, (lengths.sum(), 2)) + 3.0 * rng.integers(0, 2, (lengths.sum(), 1))
    model = HMMModel(N_STATES, GaussianEmission("full"))
    sequences = Sequences(X, lengths)
    params = model.init_params(sequences, np.random.default_rng(0))
    whole, whole_ll = model.e_step(params, sequences)
    total, total_ll = None, 0.0
    for s in range(len(lengths)):
        stats, ll = model.e_step(params, sequences[s:s + 1])
        total = stats if total is None else add_statistics(total, stats)
        total_ll += ll
    np.testing.assert_allclose(whole_ll, total_ll, rtol=1e-12)
    np.testing.assert_allclose(whole.start, total.start, rtol=1e-11)
    np.testing.assert_allclose(whole.transitions, total.transitions, rtol=1e-11)
    np.testing.assert_allclose(whole.n_frames, total.n_frames, rtol=1e-15)
    # the Gaussian statistics are centred (on different centres in the sum): compare what the
    # M-step makes of them
    new_whole, new_total = model.m_step(whole, params), model.m_step(total, params)
    for a, b in [(new_whole.emission.means, new_total.emission.means),
                 (new_whole.emission.covariances, new_total.emission.covariances),
                 (new_whole.transmat, new_total.transmat)]:
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
