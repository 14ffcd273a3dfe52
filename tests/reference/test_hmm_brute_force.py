"""The forward-backward and Viterbi kernels against enumeration of every state path.

For K states and T frames there are K^T paths; for each, p(x, z) = π_{z_1} b_{z_1}(x_1)
Π_t A_{z_{t−1} z_t} b_{z_t}(x_t). Summing gives p(x), the posterior marginals and the pairwise
marginals; the largest term is the Viterbi path. Nothing here shares code with the kernels.
Every test runs the kernels' numpy form and their compiled form (emkit.kernels.tiers).
"""

from __future__ import annotations

import itertools

import numba
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

from emkit.kernels import hmm as kernels
from emkit.kernels import tiers
from emkit.kernels.hmm import forward_backward, viterbi


@pytest.fixture(params=["numpy", "compiled"])
def form(request, monkeypatch):
    """Run a test with the kernels' numpy form and again with their compiled form."""
    monkeypatch.setattr(tiers, "MODE", request.param)
    return request.param


@pytest.fixture(params=["numpy", "serial", "split"])
def recursions(request, monkeypatch):
    """Run a test with the numpy form, with the compiled serial forward-backward of one
    sequence, and again with its two recursions on two threads (used for long sequences; here
    forced on short ones). Yields a list that records the split passes."""
    split_calls = []
    monkeypatch.setattr(tiers, "MODE", "numpy" if request.param == "numpy" else "compiled")
    if request.param in ("numpy", "serial"):
        monkeypatch.setattr(kernels, "_PARALLEL_MIN_FRAMES", 1 << 62)
    else:
        if numba.get_num_threads() < 2:
            pytest.skip("the split recursions need two numba threads")
        monkeypatch.setattr(kernels, "_PARALLEL_MIN_FRAMES", 1)
        split = kernels._split_sequence
        monkeypatch.setattr(kernels, "_split_sequence",
                            lambda *args: split_calls.append(1) or split(*args))
    yield split_calls
    assert bool(split_calls) == (request.param == "split")


def enumerate_paths(log_start, log_transmat, log_emission):
    """log p(x, z) of every path z, and the paths, shape (K^T,), (K^T, T)."""
    n_frames, n_states = log_emission.shape
    paths = np.array(list(itertools.product(range(n_states), repeat=n_frames)))
    with np.errstate(divide="ignore"):
        log_joint = log_start[paths[:, 0]] + log_emission[0, paths[:, 0]]
        for t in range(1, n_frames):
            log_joint = (log_joint + log_transmat[paths[:, t - 1], paths[:, t]]
                         + log_emission[t, paths[:, t]])
    return log_joint, paths


def brute_force(start, transmat, log_emission):
    with np.errstate(divide="ignore"):
        log_joint, paths = enumerate_paths(np.log(start), np.log(transmat), log_emission)
    log_likelihood = logsumexp(log_joint)
    weights = np.exp(log_joint - log_likelihood)
    n_frames, n_states = log_emission.shape
    posteriors = np.zeros((n_frames, n_states))
    pairs = np.zeros((n_states, n_states))
    for t in range(n_frames):
        np.add.at(posteriors[t], paths[:, t], weights)
        if t:
            np.add.at(pairs, (paths[:, t - 1], paths[:, t]), weights)
    best = int(np.argmax(log_joint))
    return log_likelihood, posteriors, pairs, paths[best], log_joint[best]


def random_chain(rng, n_states, zeros=False):
    start = rng.dirichlet(np.ones(n_states))
    transmat = rng.dirichlet(np.ones(n_states), size=n_states)
    if zeros:  # left-right: no way back
        transmat = np.triu(transmat)
        transmat /= transmat.sum(axis=1, keepdims=True)
        start = np.eye(n_states)[0] * 0.8 + start * 0.2
    return start, transmat


@pytest.mark.parametrize("n_states, n_frames, zeros", [(2, 1, False), (2, 7, False),
                                                       (3, 6, False), (4, 5, False),
                                                       (3, 6, True)])
def test_forward_backward_and_viterbi_match_enumeration(n_states, n_frames, zeros, recursions):
    rng = np.random.default_rng(n_states * 100 + n_frames + zeros)
    start, transmat = random_chain(rng, n_states, zeros)
    # Gaussian log-densities of real frames, so the scale differs strongly between frames.
    means = rng.normal(0, 2, size=(n_states, 2))
    X = rng.normal(0, 2, size=(n_frames, 2))
    log_emission = np.column_stack([multivariate_normal(m, np.eye(2)).logpdf(X).reshape(-1)
                                    for m in means])
    expected_ll, expected_post, expected_pairs, expected_path, expected_best = brute_force(
        start, transmat, log_emission)
    with np.errstate(divide="ignore"):
        log_start = np.log(start)
        log_transmat = np.log(transmat)
    ll, post, start_counts, pairs = forward_backward(log_start, transmat, log_emission,
                                                     np.array([0, n_frames]))
    np.testing.assert_allclose(ll[0], expected_ll, rtol=1e-12)
    np.testing.assert_allclose(post, expected_post, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(pairs, expected_pairs, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(start_counts, expected_post[0], rtol=1e-10, atol=1e-13)
    path, log_probability = viterbi(log_start, log_transmat, log_emission,
                                    np.array([0, n_frames]))
    np.testing.assert_array_equal(path, expected_path)
    np.testing.assert_allclose(log_probability[0], expected_best, rtol=1e-12)


def test_batch_of_sequences_equals_each_alone(form):
    """Sequences back to back (the threaded path: thousands of sequences) give each sequence's
    own result; weights scale the counts; weight 0 skips a sequence."""
    rng = np.random.default_rng(0)
    start, transmat = random_chain(rng, 3)
    lengths = rng.integers(1, 6, size=3000)  # > 8192 frames: the parallel path
    bounds = np.r_[0, np.cumsum(lengths)]
    log_emission = rng.normal(-3, 2, size=(bounds[-1], 3))
    weights = rng.uniform(0, 2, size=len(lengths))
    weights[::7] = 0.0
    ll, post, start_counts, pairs = forward_backward(np.log(start), transmat, log_emission,
                                                     bounds, weights)
    paths, best = viterbi(np.log(start), np.log(transmat), log_emission, bounds)
    expected_start = np.zeros(3)
    expected_pairs = np.zeros((3, 3))
    for s in range(len(lengths)):
        frames = slice(bounds[s], bounds[s + 1])
        if weights[s] == 0:
            assert ll[s] == 0 and np.all(post[frames] == 0)
            continue
        alone = forward_backward(np.log(start), transmat, log_emission[frames], [0, lengths[s]])
        np.testing.assert_allclose(ll[s], alone[0][0], rtol=1e-13)
        np.testing.assert_allclose(post[frames], alone[1], rtol=1e-12, atol=1e-15)
        expected_start += weights[s] * alone[2]
        expected_pairs += weights[s] * alone[3]
        if s % 100 == 1:  # and the single-sequence path against enumeration
            e_ll, e_post, e_pairs, e_path, e_best = brute_force(start, transmat,
                                                                log_emission[frames])
            np.testing.assert_allclose(ll[s], e_ll, rtol=1e-12)
            np.testing.assert_allclose(post[frames], e_post, rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(alone[3], e_pairs, rtol=1e-10, atol=1e-13)
            np.testing.assert_array_equal(paths[frames], e_path)
            np.testing.assert_allclose(best[s], e_best, rtol=1e-12)
    np.testing.assert_allclose(start_counts, expected_start, rtol=1e-10)
    np.testing.assert_allclose(pairs, expected_pairs, rtol=1e-10)


def test_missing_frame_and_extreme_outlier(recursions):
    """A frame with log-density 0 for every state (nothing observed) and a frame where every
    reachable state's density is ~1000 nats below an unreachable one's (the rescue path; the
    split recursions hand it to the serial pass)."""
    start = np.array([1.0, 0.0, 0.0])
    transmat = np.array([[0.7, 0.3, 0.0], [0.0, 0.6, 0.4], [0.0, 0.0, 1.0]])
    log_emission = np.log(np.array([[0.5, 0.2, 0.1], [0.3, 0.3, 0.3], [0.2, 0.4, 0.1],
                                    [0.1, 0.2, 0.6], [0.3, 0.1, 0.5]]))
    log_emission[1] = [-1000.0, -1001.0, 0.0]  # state 2 cannot be reached by frame 2
    log_emission[2] = 0.0  # nothing observed
    expected_ll, expected_post, expected_pairs, expected_path, expected_best = brute_force(
        start, transmat, log_emission)
    with np.errstate(divide="ignore"):
        ll, post, _, pairs = forward_backward(np.log(start), transmat, log_emission,
                                              np.array([0, 5]))
        path, best = viterbi(np.log(start), np.log(transmat), log_emission, np.array([0, 5]))
    np.testing.assert_allclose(ll[0], expected_ll, rtol=1e-12)
    np.testing.assert_allclose(post, expected_post, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(pairs, expected_pairs, rtol=1e-10, atol=1e-13)
    np.testing.assert_array_equal(path, expected_path)
    np.testing.assert_allclose(best[0], expected_best, rtol=1e-12)


def test_unreachable_state_that_fits_better_does_not_swamp_the_backward_pass(recursions):
    """Two absorbing states, the chain starts in state 0 and state 1 fits every frame 5 nats
    better: the backward vectors of state 1 dwarf those of state 0 by e^(5 T). The exact answer:
    the chain stays in state 0, log L = Σ log b_0 = 0."""
    n_frames = 20_000
    log_emission = np.zeros((n_frames, 2))
    log_emission[:, 1] = 5.0
    with np.errstate(divide="ignore"):
        ll, post, start_counts, pairs = forward_backward(np.log([1.0, 0.0]), np.eye(2),
                                                         log_emission, np.array([0, n_frames]))
    assert ll[0] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(post, np.tile([1.0, 0.0], (n_frames, 1)), atol=1e-12)
    np.testing.assert_allclose(pairs, [[n_frames - 1, 0.0], [0.0, 0.0]], rtol=1e-12)
    np.testing.assert_allclose(start_counts, [1.0, 0.0], atol=1e-12)



def test_impossible_sequences_among_possible_ones(recursions):
    """In a chain that mixes: a sequence with a frame no state can emit, one whose only
    possible start state cannot emit its first frame, and possible ones around them (short, and
    long enough for the numpy form's blocks): the impossible ones get log L = −inf, posteriors
    0 and add nothing; the others are those of enumeration or of the log-space recursions."""
    rng = np.random.default_rng(8)
    start, transmat = np.array([0.0, 0.6, 0.4]), 0.8 * random_chain(rng, 3)[1] + 0.2 / 3
    lengths = np.array([6, 5, 4, 300, 7])
    bounds = np.r_[0, np.cumsum(lengths)]
    log_emission = rng.normal(-1.0, 2.0, size=(bounds[-1], 3))
    log_emission[bounds[1] + 2] = -np.inf
    log_emission[bounds[2], 1:] = -np.inf
    weights = np.array([1.0, 2.0, 0.5, 1.5, 3.0])
    with np.errstate(divide="ignore"):
        ll, post, start_counts, pairs = forward_backward(np.log(start), transmat, log_emission,
                                                         bounds, weights)
    _assert_matches_log_space(start, transmat, log_emission, bounds, weights, ll, post,
                              start_counts, pairs, impossible=(1, 2))


@pytest.mark.parametrize("gap", [3.0, 3.5, 4.0, 10.0])
def test_two_absorbing_paths_hundreds_of_nats_apart_in_the_middle(gap, recursions):
    """Two absorbing states, equally likely: state 0 fits the first 200 frames better by ``gap``
    nats each, state 1 the last 200. Exactly: both paths have probability ½, log L = −200·gap.
    In the middle the forward and backward vectors each favour a different state by e^(200·gap)
    — e^-700 at gap 3.5, near the end of double precision, and far beyond it at gaps 4 and 10,
    where the scaled recursions lose the second path and the log-space pass takes over (the
    scaled pass alone once gave log L = −2000, not −1000 − log 2, at gap 10)."""
    n_frames = 400
    log_emission = np.zeros((n_frames, 2))
    log_emission[:200, 1] = -gap
    log_emission[200:, 0] = -gap
    ll, post, start_counts, pairs = forward_backward(np.log([0.5, 0.5]), np.eye(2),
                                                     log_emission, np.array([0, n_frames]))
    # log L = log(½ e^{−200 gap} + ½ e^{−200 gap})
    assert ll[0] == pytest.approx(-200 * gap, rel=1e-12)
    np.testing.assert_allclose(post, 0.5, rtol=1e-9)
    np.testing.assert_allclose(pairs, [[199.5, 0.0], [0.0, 199.5]], rtol=1e-9)
    np.testing.assert_allclose(start_counts, [0.5, 0.5], rtol=1e-9)


@pytest.mark.parametrize("switch", [1e-300, 1e-200, 1e-150])
def test_tiny_transition_probabilities_match_the_log_space_recursions(switch, recursions):
    """As above (gap 10), with a switch probability between the two states instead of none: a
    transition below 1e-190 can let a scaled entry fall below 1e-290, so such a chain is
    watched; one above cannot, and is not (the bound in kernels/hmm.py)."""
    n_frames = 400
    log_emission = np.zeros((n_frames, 2))
    log_emission[:200, 1] = -10.0
    log_emission[200:, 0] = -10.0
    transmat = np.array([[1.0 - switch, switch], [switch, 1.0 - switch]])
    expected = log_space_forward_backward(np.log([0.5, 0.5]), np.log(transmat), log_emission)
    ll, post, start_counts, pairs = forward_backward(np.log([0.5, 0.5]), transmat,
                                                     log_emission, np.array([0, n_frames]))
    np.testing.assert_allclose(ll[0], expected[0], rtol=1e-12)
    np.testing.assert_allclose(post, expected[1], atol=1e-9)
    np.testing.assert_allclose(pairs, expected[2], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(start_counts, expected[1][0], atol=1e-9)


def log_space_forward_backward(log_start, log_transmat, log_emission):
    """The textbook recursions in log space (logsumexp at every step): slow, but with no range
    limit — the reference for chains too long to enumerate."""
    n_frames, n_states = log_emission.shape
    log_alpha, log_beta = np.empty((n_frames, n_states)), np.zeros((n_frames, n_states))
    log_alpha[0] = log_start + log_emission[0]
    for t in range(1, n_frames):
        log_alpha[t] = (logsumexp(log_alpha[t - 1][:, None] + log_transmat, axis=0)
                        + log_emission[t])
    for t in range(n_frames - 2, -1, -1):
        log_beta[t] = logsumexp(log_transmat + log_emission[t + 1] + log_beta[t + 1], axis=1)
    log_likelihood = logsumexp(log_alpha[-1])
    pairs = sum(np.exp(log_alpha[t][:, None] + log_transmat + log_emission[t + 1]
                       + log_beta[t + 1] - log_likelihood) for t in range(n_frames - 1))
    return log_likelihood, np.exp(log_alpha + log_beta - log_likelihood), pairs



def test_long_mixing_sequences_match_the_log_space_recursions(form, monkeypatch):
    """Sequences of hundreds to thousands of frames through a chain that mixes, weighted: the
    numpy form cuts the long ones into blocks joined by transfer matrices (checked: it does, and
    keeps the result), with frames that cross blocks' boundaries, a frame with nothing observed, a
    state that cannot emit a frame and outliers hundreds of nats below the best state."""
    rng = np.random.default_rng(21)
    start, transmat = random_chain(rng, 3)
    transmat = 0.9 * transmat + 0.1 * np.eye(3)
    lengths = np.array([1000, 3, 700, 1, 300])
    bounds = np.r_[0, np.cumsum(lengths)]
    log_emission = rng.normal(-2.0, 4.0, size=(bounds[-1], 3))
    log_emission[5] = 0.0
    log_emission[400, 1] = -np.inf
    log_emission[rng.integers(0, bounds[-1], 20), rng.integers(0, 3, 20)] -= 500.0
    weights = np.array([1.5, 0.5, 2.0, 1.0, 0.25])
    blocked = []
    blocks = kernels._blocks_numpy
    monkeypatch.setattr(kernels, "_blocks_numpy", lambda *args: blocked.append(
        (args[6], blocks(*args))) or blocked[-1][1])
    with np.errstate(divide="ignore"):
        ll, post, start_counts, pairs = forward_backward(np.log(start), transmat, log_emission,
                                                         bounds, weights)
    if form == "numpy":  # sequences of similar lengths together, in blocks of ⌈√(2 T)⌉ frames
        assert blocked == [(45, True), (25, True), (3, True), (1, True)]
    _assert_matches_log_space(start, transmat, log_emission, bounds, weights, ll, post,
                              start_counts, pairs)


ABSORBING = np.array([[0.2, 0.6, 0.2], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("seed", range(4))
def test_absorbing_chain_matches_the_log_space_recursions(seed, recursions):
    """A transient state and two absorbing ones, log-densities tens of nats apart."""
    log_emission = np.random.default_rng(seed).normal(0.0, 10.0, size=(300, 3))
    with np.errstate(divide="ignore"):
        expected = log_space_forward_backward(np.log([0.4, 0.3, 0.3]), np.log(ABSORBING),
                                              log_emission)
    ll, post, _, pairs = forward_backward(np.log([0.4, 0.3, 0.3]), ABSORBING, log_emission,
                                          np.array([0, 300]))
    np.testing.assert_allclose(ll[0], expected[0], rtol=1e-12)
    np.testing.assert_allclose(post, expected[1], atol=1e-9)
    np.testing.assert_allclose(pairs, expected[2], atol=1e-8)


@pytest.mark.parametrize("seed", [0, 1, 10, 11])
def test_absorbing_chain_beyond_double_range_matches_the_log_space_recursions(seed, recursions):
    """Log-densities hundreds of nats apart: in double precision the scaled forward vector drops
    a state more than e^-708 behind the leader, which later wins. The kernel sees it and redoes
    the sequence in log space (docs/hmm.md). The scaled pass alone gave a log-likelihood 55.8
    nats low at seed 0 (400.63 instead of 456.43) and 569 nats low at seed 1; seeds 1, 10, 11
    once gave NaN transition counts."""
    log_emission = np.random.default_rng(seed).normal(0.0, 60.0, size=(300, 3))
    with np.errstate(divide="ignore"):
        expected = log_space_forward_backward(np.log([0.4, 0.3, 0.3]), np.log(ABSORBING),
                                              log_emission)
    ll, post, start_counts, pairs = forward_backward(np.log([0.4, 0.3, 0.3]), ABSORBING,
                                                     log_emission, np.array([0, 300]))
    np.testing.assert_allclose(ll[0], expected[0], rtol=1e-12)
    np.testing.assert_allclose(post, expected[1], atol=1e-9)
    np.testing.assert_allclose(pairs, expected[2], atol=1e-8)
    np.testing.assert_allclose(start_counts, expected[1][0], atol=1e-9)
    assert np.all(pairs[ABSORBING == 0] == 0)


def test_fifty_six_nats_low_regression(form):
    """The case of issue 14: the scaled recursions alone put this sequence's log-likelihood
    55.79 nats below the exact value, 456.4292316713850 (scipy's logsumexp recursions)."""
    log_emission = np.random.default_rng(0).normal(0.0, 60.0, size=(300, 3))
    ll, _, _, _ = forward_backward(np.log([0.4, 0.3, 0.3]), ABSORBING, log_emission,
                                   np.array([0, 300]))
    assert ll[0] == pytest.approx(456.4292316713850, rel=1e-12)


def lost_path_chain(rng, kind, n_states):
    """π, A of a left-right chain (upper triangular) or of one transient state and K − 1
    absorbing ones: chains in which a state left behind (state 0 of the left-right chain,
    states 0 and 1 of the absorbing one) can only come back through its own path."""
    if kind == "left-right":
        transmat = np.triu(rng.dirichlet(np.ones(n_states), size=n_states))
        transmat /= transmat.sum(axis=1, keepdims=True)
        start = 0.7 * np.eye(n_states)[0] + 0.3 * rng.dirichlet(np.ones(n_states))
    else:
        transmat = np.eye(n_states)
        transmat[0] = rng.dirichlet(np.ones(n_states))
        start = rng.dirichlet(np.ones(n_states))
    return start, transmat


@pytest.mark.parametrize("kind", ["left-right", "absorbing"])
@pytest.mark.parametrize("seed", range(4))
def test_paths_hundreds_of_nats_apart_match_enumeration(kind, seed, recursions):
    """Three weighted sequences back to back (the first holds most frames: the split pass),
    log-densities hundreds of nats apart: the state left behind trails by 1000 nats over the
    first frames and leads by 1100 over the last ones, so that the path the scaled forward pass
    drops wins. Frames with nothing observed and, in some, a state that cannot emit a frame:
    log L, γ, Σ w ξ and Σ w γ_1 against enumeration."""
    rng = np.random.default_rng(seed)
    n_states = 3 + seed % 2
    start, transmat = lost_path_chain(rng, kind, n_states)
    behind = [0] if kind == "left-right" else [0, 1]
    lengths = np.array([8, 3, 2])
    bounds = np.r_[0, np.cumsum(lengths)]
    log_emission = rng.normal(0.0, 30.0, size=(bounds[-1], n_states))
    for first, last in zip(bounds[:-1], bounds[1:], strict=True):
        middle = (first + last) // 2
        log_emission[first:middle, behind] -= 1000.0 / (middle - first)
        if last - middle >= 2:  # a frame with nothing observed, the others lead by 1100
            missing = rng.integers(middle, last)
            log_emission[missing] = 0.0
            log_emission[middle:last, behind] += 1100.0 / (last - middle - 1)
            log_emission[missing, behind] = 0.0
        else:
            log_emission[middle:last, behind] += 1100.0
    if seed >= 2:
        log_emission[2, -1] = -np.inf  # the last state cannot emit frame 2
    weights = np.array([1.5, 0.5, 2.0])
    with np.errstate(divide="ignore"):
        ll, post, start_counts, pairs = forward_backward(np.log(start), transmat, log_emission,
                                                         bounds, weights)
    expected_start, expected_pairs = np.zeros(n_states), np.zeros((n_states, n_states))
    for s in range(len(lengths)):
        frames = slice(bounds[s], bounds[s + 1])
        e_ll, e_post, e_pairs, _, _ = brute_force(start, transmat, log_emission[frames])
        np.testing.assert_allclose(ll[s], e_ll, rtol=1e-12)
        np.testing.assert_allclose(post[frames], e_post, rtol=1e-9, atol=1e-12)
        expected_start += weights[s] * e_post[0]
        expected_pairs += weights[s] * e_pairs
    np.testing.assert_allclose(start_counts, expected_start, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pairs, expected_pairs, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n_states", [3, 70])
def test_long_left_right_sequence_matches_the_log_space_recursions(n_states, form):
    """One long sequence through a left-right chain whose first state trails by 4 nats a frame
    in its first half and leads by 5 in its second: the path staying there, which the scaled
    forward pass drops, wins (with threads, the split pass detects the lost path and hands the
    sequence on). Among short ones; 70 states follow the chain's support in two 64-bit
    words."""
    rng = np.random.default_rng(n_states)
    start, transmat = lost_path_chain(rng, "left-right", n_states)
    transmat = 0.01 * transmat + 0.99 * np.eye(n_states)
    n_frames = 9000 if n_states == 3 else 600
    lengths = np.array([5, n_frames, 4])
    bounds = np.r_[0, np.cumsum(lengths)]
    log_emission = rng.normal(0.0, 1.0, size=(bounds[-1], n_states))
    log_emission[bounds[1]:bounds[1] + n_frames // 2, 0] -= 4.0
    log_emission[bounds[1] + n_frames // 2:bounds[2], 0] += 5.0
    log_emission[bounds[1] + 17] = 0.0
    weights = np.array([1.0, 0.7, 3.0])
    ll, post, start_counts, pairs = forward_backward(np.log(start), transmat, log_emission,
                                                     bounds, weights)
    expected_start, expected_pairs = np.zeros(n_states), np.zeros((n_states, n_states))
    for s in range(len(lengths)):
        frames = slice(bounds[s], bounds[s + 1])
        with np.errstate(divide="ignore"):
            e_ll, e_post, e_pairs = log_space_forward_backward(
                np.log(start), np.log(transmat), log_emission[frames])
        np.testing.assert_allclose(ll[s], e_ll, rtol=1e-11)
        np.testing.assert_allclose(post[frames], e_post, atol=1e-9)
        expected_start += weights[s] * e_post[0]
        expected_pairs += weights[s] * e_pairs
    np.testing.assert_allclose(start_counts, expected_start, atol=1e-9)
    np.testing.assert_allclose(pairs, expected_pairs, rtol=1e-9, atol=1e-8)


def test_gaussian_hmm_with_missing_values_matches_enumeration(form):
    """Frames with NaN: an empty frame has no emission term, a partial frame the marginal
    density of its observed coordinates (scipy, on the observed block of each covariance)."""
    import emkit

    rng = np.random.default_rng(3)
    start, transmat = random_chain(rng, 3)
    means = rng.normal(0, 2, size=(3, 3))
    factors = rng.normal(0, 0.5, size=(3, 3, 3))
    covariances = factors @ np.swapaxes(factors, 1, 2) + np.eye(3)
    X = rng.normal(0, 2, size=(6, 3))
    X[1] = np.nan
    X[2, 0] = np.nan
    X[4, [1, 2]] = np.nan
    log_emission = np.zeros((6, 3))
    for t in range(6):
        observed = ~np.isnan(X[t])
        for k in range(3):
            if observed.any():
                log_emission[t, k] = multivariate_normal(
                    means[k, observed], covariances[k][np.ix_(observed, observed)]).logpdf(
                    X[t, observed])
    expected_ll, expected_post, _, expected_path, expected_best = brute_force(
        start, transmat, log_emission)
    model = emkit.GaussianHMM(3)
    model.startprob_, model.transmat_ = start, transmat
    model.means_, model.covars_ = means, covariances
    model.n_features_in_ = 3
    ll, post = model.score_samples(X)
    np.testing.assert_allclose(ll, expected_ll, rtol=1e-12)
    np.testing.assert_allclose(post, expected_post, rtol=1e-9, atol=1e-12)
    best, path = model.decode(X)
    np.testing.assert_array_equal(path, expected_path)
    np.testing.assert_allclose(best, expected_best, rtol=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_split_recursions_equal_the_serial_pass(seed, monkeypatch):
    """Random chains with impossible starts and transitions, a weighted sequence, frames where
    one state is hundreds of nats ahead and frames nobody can emit: the two-thread pass of one
    long sequence (forced here on a short one) gives the serial pass's results."""
    monkeypatch.setattr(tiers, "MODE", "compiled")
    if numba.get_num_threads() < 2:
        pytest.skip("the split recursions need two numba threads")
    rng = np.random.default_rng(seed)
    n_states, n_frames = int(rng.integers(2, 6)), int(rng.integers(2, 300))
    start, transmat = random_chain(rng, n_states, zeros=bool(seed % 2))
    log_emission = rng.normal(-5.0, 3.0, size=(n_frames, n_states))
    outliers = rng.uniform(size=n_frames) < 0.05
    log_emission[outliers] -= rng.uniform(0.0, 900.0, size=(outliers.sum(), n_states))
    if seed % 4 == 3:
        log_emission[n_frames // 3] = -np.inf  # an impossible sequence
    weight = np.array([rng.uniform(0.5, 3.0)])
    bounds = np.array([0, n_frames])
    results = {}
    for mode, min_frames in (("serial", 1 << 62), ("split", 1)):
        monkeypatch.setattr(kernels, "_PARALLEL_MIN_FRAMES", min_frames)
        with np.errstate(divide="ignore"):
            results[mode] = forward_backward(np.log(start), transmat, log_emission, bounds,
                                             weight)
    for serial, split in zip(results["serial"], results["split"], strict=True):
        np.testing.assert_allclose(split, serial, rtol=1e-9, atol=1e-12)


def test_dominant_sequence_among_short_ones(monkeypatch):
    """One sequence with most of the frames gets the two-thread pass, the short ones around it
    the usual one; each equals its own serial pass, and the counts add up with the weights."""
    monkeypatch.setattr(tiers, "MODE", "compiled")
    rng = np.random.default_rng(5)
    start, transmat = random_chain(rng, 3)
    lengths = np.concatenate([rng.integers(1, 6, size=200), [20_000],
                              rng.integers(1, 6, size=3000)])  # > 8192 frames: threads
    bounds = np.r_[0, np.cumsum(lengths)]
    log_emission = rng.normal(-3, 2, size=(bounds[-1], 3))
    weights = rng.uniform(0, 2, size=len(lengths))
    weights[::9] = 0.0
    split = kernels._split_sequence
    split_calls = []
    monkeypatch.setattr(kernels, "_split_sequence",
                        lambda *args: split_calls.append(1) or split(*args))
    ll, post, start_counts, pairs = forward_backward(np.log(start), transmat, log_emission,
                                                     bounds, weights)
    assert len(split_calls) == (numba.get_num_threads() >= 2)
    monkeypatch.setattr(kernels, "_PARALLEL_MIN_FRAMES", 1 << 62)  # serial from here on
    expected_start, expected_pairs = np.zeros(3), np.zeros((3, 3))
    for s in range(len(lengths)):
        frames = slice(bounds[s], bounds[s + 1])
        if weights[s] == 0:
            assert ll[s] == 0 and np.all(post[frames] == 0)
            continue
        alone = forward_backward(np.log(start), transmat, log_emission[frames], [0, lengths[s]])
        np.testing.assert_allclose(ll[s], alone[0][0], rtol=1e-12)
        np.testing.assert_allclose(post[frames], alone[1], rtol=1e-9, atol=1e-14)
        expected_start += weights[s] * alone[2]
        expected_pairs += weights[s] * alone[3]
    np.testing.assert_allclose(start_counts, expected_start, rtol=1e-10)
    np.testing.assert_allclose(pairs, expected_pairs, rtol=1e-10)


def test_em_on_an_absorbing_chain_with_lost_paths_is_monotone_and_exact(form):
    """Baum-Welch through the engine on sequences that sit near 0, then near 10 (one frame
    missing in each, weighted), with a transient state at 50 and absorbing states at 0 and 10,
    σ = 0.5 (means held): each frame puts the absorbing states 200 nats apart, so the scaled
    forward pass drops "stay at 10" over the first block, which then wins. The monitored
    objective is the exact weighted log-likelihood (the log-space recursions at the start and
    at the fit; the scaled pass alone started 3,579 nats low and ended at −518.46, not
    −500.62) and never decreases."""
    import emkit

    rng = np.random.default_rng(0)
    sequences = []
    for _ in range(6):
        first, second = rng.integers(8, 12), rng.integers(12, 18)
        x = np.r_[0.5 * rng.standard_normal(first), 10.0 + 0.5 * rng.standard_normal(second)]
        x[rng.integers(0, first + second)] = np.nan
        sequences.append(x)
    lengths = np.array([len(x) for x in sequences])
    X = np.concatenate(sequences)[:, None]
    weights = rng.uniform(0.5, 2.0, size=len(lengths))
    start, transmat = np.array([0.2, 0.4, 0.4]), ABSORBING
    means, variances = np.array([50.0, 0.0, 10.0]), np.full(3, 0.25)

    def exact_objective(start, transmat, variances):
        log_emission = np.nan_to_num(norm(means, np.sqrt(variances)).logpdf(X), nan=0.0)
        bounds = np.r_[0, np.cumsum(lengths)]
        with np.errstate(divide="ignore"):
            return sum(w * log_space_forward_backward(np.log(start), np.log(transmat),
                                                      log_emission[a:b])[0]
                       for w, a, b in zip(weights, bounds[:-1], bounds[1:], strict=True))

    model = emkit.GaussianHMM(3, covariance_type="diag", init_params="", params="stc",
                              max_iter=30, tol=0.0)
    model.startprob_, model.transmat_ = start, transmat
    model.means_, model.covars_ = means[:, None], variances[:, None]
    model.fit(X, lengths, sample_weight=weights)
    history = model.history_
    assert history[0] == pytest.approx(exact_objective(start, transmat, variances), rel=1e-12)
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:]))
    assert history[-1] == pytest.approx(
        exact_objective(model.startprob_, model.transmat_, model.covars_[:, 0]), rel=1e-10)


def _assert_matches_log_space(start, transmat, log_emission, bounds, weights, ll, post,
                              start_counts, pairs, impossible=()):
    """forward_backward's outputs for a batch of sequences against the log-space recursions,
    sequence by sequence; the sequences in ``impossible`` must come out −inf with posteriors 0."""
    K = len(start)
    expected_start, expected_pairs = np.zeros(K), np.zeros((K, K))
    for s in range(len(bounds) - 1):
        frames = slice(bounds[s], bounds[s + 1])
        if s in impossible:
            assert ll[s] == -np.inf and np.all(post[frames] == 0.0)
            continue
        with np.errstate(divide="ignore"):
            e_ll, e_post, e_pairs = log_space_forward_backward(
                np.log(start), np.log(transmat), log_emission[frames])
        np.testing.assert_allclose(ll[s], e_ll, rtol=1e-12)
        np.testing.assert_allclose(post[frames], e_post, rtol=1e-9, atol=1e-12)
        expected_start += weights[s] * e_post[0]
        expected_pairs += weights[s] * e_pairs
    np.testing.assert_allclose(start_counts, expected_start, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(pairs, expected_pairs, rtol=1e-10)
