"""Compiled forward-backward and Viterbi passes for hidden Markov models.

One kernel serves every emission type: the emission family computes the log-densities
log p(x_t | z_t = k) of all frames (an n_frames × K array, 0 for a frame with nothing observed),
and the kernels here run the chain. Sequences are stored back to back; ``bounds[s]:bounds[s + 1]``
are the frames of sequence s. The loop over sequences runs inside the compiled code and sets up
nothing per sequence (work arrays and π once per group of sequences), so 50 × 4,000 frames cost
what 1 × 200,000 frames cost, and 20,000 × 10 about a quarter more (single thread, K = 8: 21.2,
21.5 and 26.7 ms of CPU time); with many sequences (and enough frames) the work is split into
contiguous groups of sequences of about equal numbers of frames, one group per task
(``prange``), each with its own K × K accumulator.

Forward-backward (normalised, never in log space in the inner loop)
-------------------------------------------------------------------
With e_t(j) = exp(log p(x_t | j) − m_t) (m_t the largest log-density of frame t, so e_t ≤ 1),

    â_t = (â_{t−1} A) ∘ e_t / c_t,   c_t = Σ_j ((â_{t−1} A) ∘ e_t)_j,   log L = Σ_t (log c_t + m_t)

(â_1 = π ∘ e_1 / c_1). Backwards, u_{t+1} = e_{t+1} ∘ b̂_{t+1} and v_t = A u_{t+1} give

    γ_t(i) = â_t(i) v_t(i) / Z_t,   ξ_t(i, j) = â_t(i) A_ij u_{t+1}(j) / Z_t,
    Z_t = Σ_i â_t(i) v_t(i)

and b̂_t = v_t / max v_t. The vectors are renormalised whenever they get small (below 1e−100;
they never grow, as e_t ≤ 1 and A is stochastic), and γ_t and ξ_t are normalised by their own
Z_t, which does not depend on those scales: nothing under- or overflows however long the
sequence is, and no division sits on the recursion's critical path at every step. Only Σ_t ξ_t
(K × K) is formed, never ξ per step: summed in the backward pass, where A has zeros or tiny
entries each term A_ij (w â_t(i) / Z_t) u_{t+1}(j) with A_ij inside, so that a transition of
probability 0 adds an exact 0 however large the other factors get; where the chain mixes, as
A ∘ Σ_t (â_t / Z_t) u_{t+1}ᵀ in blocks of frames (dot products over the frames, vectorised).
The matrix-vector products take A and Aᵀ with zero rows appended up to a multiple of four
(:func:`_padded_rows`), four rows per pass. The e_t are
computed by the forward recursion as it goes, frame by frame (in the same time as a pass of
their own before it, measured, with the frames read once and no parallel region of their own;
a sequence with most of the frames is split between two threads: see "one long sequence"
below). In the rare
frame where every reachable state's scaled density underflows (an outlier hundreds of nats from
the best state), the frame is redone with the shift m_t = max_j (log p(x_t | j) +
log (â_{t−1} A)_j). States the forward pass cannot reach (â_t(j) = 0) get u_t(j) = 0, so their
arbitrary scale never swamps the others.

Lost paths, and the log-space pass
----------------------------------
Scaling keeps each vector's largest entries in range, not its smallest: a state more than about
e^-700 behind the leader underflows. Where the chain mixes (every A_ij ≥ 1e-190) that loses
nothing — the state is fed again from the leader at the next step, far above the underflow —
and the kernels check nothing. In a left-right or absorbing chain (zeros in A) or one with
tiny transitions, a state that trails by hundreds of nats can only come back through its own
path, which the scaled pass has dropped; if the later frames favour it, the log-likelihood
comes out hundreds of nats low. There the recursions check each frame for an entry of a state
the chain can be in that fell below 1e-290 (where its relative error would begin to grow), and
such a sequence — only it — is redone in log space (log-sum-exp at every step, each sum
shifted by its own largest term: exact whatever the distances; about three times the
exponentials, serial).

Small inputs
------------
Both passes also have a numpy form (below, "the numpy form"), chosen by :mod:`emkit.kernels.tiers`
on small inputs (work = frames × K²) until the compiled form is in numba's cache or has paid for
its compilation: a first small fit in a new environment compiles nothing here. The two forms
agree to rounding (the tests run both against the same references).
"""

from __future__ import annotations

import math
import threading

import numba
import numpy as np

from emkit.kernels import tiers
from emkit.kernels.fastmath import exp_nonpositive

_SERIAL = dict(nogil=True, cache=True, fastmath={"contract"})
_PARALLEL = dict(nogil=True, cache=True, parallel=True)
# Below this many frames one serial pass is faster than starting threads (and one sequence
# cannot be split).
_PARALLEL_MIN_FRAMES = 8192
_TINY = 1e-280
_NORM_MIN = 1e-307  # the smallest normal numbers: a smaller Z_t has lost its precision
_RESCALE = 1e-100
# A forward (before the emission) or backward entry of a state that the chain can be in, below
# this, has lost its relative precision to underflow (its absolute error, up to K·2^-1074, is
# 1e-33 of it here): the sequence is redone in log space (see "lost paths" below).
_LOST = 1e-290
# Work (frames × K²) from which the compiled passes always run (the numpy forms are below).
# Measured (one pass, 2 cores): numpy forward-backward 3.4 ms on 1 × 2,000 frames at K = 2 (the
# compiled pass 0.15 ms), 27 ms on 1 × 20,000, 11 ms on 200 × 50, 72 ms on 1 × 20,000 at K = 8;
# compiling the pass with its callees takes about 5 s in a new environment. At this work a
# numpy pass costs 30–100 ms (K = 2 … 8): some fifty of them cost what compiling does.
NUMPY_MAX_WORK = 1 << 18


@numba.njit(inline="always", **_SERIAL)
def _backward_lost(forward_t, v):
    """Whether a state the forward pass reached has a backward entry below ``_LOST``."""
    for i in range(len(forward_t)):  # (v may be longer: K⁺)
        if forward_t[i] != 0.0 and v[i] < _LOST:
            return True
    return False


@numba.njit(inline="always", **_SERIAL)
def _padded_rows(matrix):
    """The K × K ``matrix`` with zero rows appended up to a multiple of four, K⁺ × K: the form
    in which the recursions take A and Aᵀ (for :func:`_times_vector`)."""
    n = matrix.shape[0]
    out = np.zeros(((n + 3) // 4 * 4, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = matrix[i, j]
    return out


@numba.njit(inline="always", **_SERIAL)
def _times_vector(matrix, vector, out):
    """out = matrix @ vector for a matrix padded by :func:`_padded_rows` (``out`` K⁺ long),
    each row's sum kept in a register: K independent chains of multiply-adds that the processor
    overlaps, four rows per pass over the vector (a quarter of the loop overhead, which is most
    of the cost at small K: measured 15% faster forward recursions at K = 8 than a row per
    pass). (Summing into ``out`` column by column instead makes every step wait for the previous
    store: measured 1.5× slower recursions.)"""
    n_rows, n = matrix.shape
    for i in range(0, n_rows, 4):
        s0 = s1 = s2 = s3 = 0.0
        for j in range(n):
            x = vector[j]
            s0 += matrix[i, j] * x
            s1 += matrix[i + 1, j] * x
            s2 += matrix[i + 2, j] * x
            s3 += matrix[i + 3, j] * x
        out[i] = s0
        out[i + 1] = s1
        out[i + 2] = s2
        out[i + 3] = s3


# ------------------------------------------------------------------------------ lost paths
# The scaled vectors are kept with their largest sums at least _RESCALE, so a predicted
# forward entry (â_{t−1} A)_j ≥ min_i A_ij · _RESCALE and a backward one (A u)_i ≥ min_j A_ij ·
# _RESCALE: where every A_ij is at least _LOST / _RESCALE (1e-190) no entry can be lost, and
# the kernels check nothing (the usual case). Otherwise they check every entry of a state the
# chain can be in at frame t (log α_t(j) > −inf), which follows from the zeros of π and A (and
# the −inf log-densities, left out here: a larger set only makes the check stricter). That set
# is followed frame by frame as a bit set (64 states a word) until it stops changing, within a
# few frames (K word operations a frame until then, nothing after).
_WATCH_BELOW = _LOST / _RESCALE


def successor_sets(transmat: np.ndarray) -> np.ndarray:
    """(K, ⌈K/64⌉) uint64 bit sets: bit j of row i is set when A_ij > 0. (K, 0) when every A_ij
    is at least ``_WATCH_BELOW``: then no path can be lost and the kernels check nothing."""
    n_states = transmat.shape[0]
    if np.all(transmat >= _WATCH_BELOW):
        return np.zeros((n_states, 0), dtype=np.uint64)
    n_words = (n_states + 63) // 64
    bits = np.zeros((n_states, n_words * 64), dtype=bool)
    bits[:, :n_states] = transmat > 0.0
    weights = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))
    return (bits.reshape(n_states, n_words, 64) * weights).sum(axis=2, dtype=np.uint64)


@numba.njit(inline="always", **_SERIAL)
def _has(bits, j):
    return (bits[j >> 6] >> np.uint64(j & 63)) & np.uint64(1) != 0


@numba.njit(**_SERIAL)
def _start_support(log_start, support, barrier):
    """The states the chain can start in (π_j > 0); ``barrier`` as in :func:`_next_support`."""
    support[:] = 0
    for j in range(len(log_start)):
        if log_start[j] != -np.inf:
            support[j >> 6] |= np.uint64(1) << np.uint64(j & 63)
        barrier[j] = 0.0 if log_start[j] != -np.inf else np.inf


@numba.njit(**_SERIAL)
def _next_support(successors, support, barrier):
    """Moves ``support`` on by one frame (to the successors of its states) and sets ``barrier``
    to 0 for the states in it and +inf for the others, so that min_j (predicted_j +
    barrier_j) is the smallest entry that ought to be positive. Returns True when the set no
    longer changes (it is closed under A's transitions: the caller stops following it)."""
    n_states, n_words = successors.shape
    settled = True
    for w in range(n_words):
        word = np.uint64(0)
        for i in range(n_states):  # branch-free: the OR of the successors of the states in it
            bit = (support[i >> 6] >> np.uint64(i & 63)) & np.uint64(1)
            word |= successors[i, w] & (np.uint64(0) - bit)
        settled &= word == support[w]
        support[w] = word
    for j in range(n_states):
        barrier[j] = 0.0 if _has(support, j) else np.inf
    return settled


# ------------------------------------------------------------------------- the log-space pass
@numba.njit(inline="always", **_SERIAL)
def _log_sum_exp(values):
    top = -np.inf
    for x in values:
        top = max(top, x)
    if top == -np.inf:
        return top
    total = 0.0
    for x in values:
        total += exp_nonpositive(x - top)
    return top + math.log(total)


@numba.njit(**_SERIAL)
def _log_space_one(log_start, log_transmat, log_emission, first, last, weight, posteriors,
                   log_forward, pair_counts, start_counts):
    """Forward-backward of frames first..last−1 in logarithms, for the sequences where the
    scaled pass lost a path (:func:`_forward` and :func:`_backward_statistics` say so):

        log α_t(j) = log Σ_i exp(log α_{t−1}(i) + log A_ij) + log p(x_t | j),
        log β_t(i) = log Σ_j exp(log A_ij + log p(x_{t+1} | j) + log β_{t+1}(j)),

    every sum shifted by its own largest term, so that no path is dropped whatever the
    distances between them; γ_t and ξ_t are normalised by their frame's own log Z_t (as in
    the scaled pass). About three times the exponentials of the scaled pass, so it runs only
    where it is needed. Fills γ_t into ``posteriors``, adds w Σ_t ξ_t and w γ_1; returns log L
    (−inf for an impossible sequence, which then adds nothing)."""
    n_states = log_transmat.shape[0]
    terms = np.empty(n_states)
    for j in range(n_states):
        log_forward[first, j] = log_start[j] + log_emission[first, j]
    for t in range(first + 1, last):
        for j in range(n_states):
            for i in range(n_states):
                terms[i] = log_forward[t - 1, i] + log_transmat[i, j]
            log_forward[t, j] = _log_sum_exp(terms) + log_emission[t, j]
    log_likelihood = _log_sum_exp(log_forward[last - 1])
    if log_likelihood == -np.inf:
        return log_likelihood
    log_backward = np.zeros(n_states)  # log β_T = 0
    previous = np.empty(n_states)
    ahead = np.empty(n_states)
    pairs = np.zeros((n_states, n_states))
    for t in range(last - 1, first - 1, -1):
        for i in range(n_states):
            terms[i] = log_forward[t, i] + log_backward[i]
        log_z = _log_sum_exp(terms)
        for i in range(n_states):
            posteriors[t, i] = exp_nonpositive(min(terms[i] - log_z, 0.0))
        if t == first:
            break
        # log β_{t−1}, then ξ_{t−1}(i, j) = exp(log α_{t−1}(i) + log A_ij + ahead_j − log Z_{t−1})
        for j in range(n_states):
            ahead[j] = log_emission[t, j] + log_backward[j]
        for i in range(n_states):
            for j in range(n_states):
                terms[j] = log_transmat[i, j] + ahead[j]
            previous[i] = _log_sum_exp(terms)
        for i in range(n_states):
            terms[i] = log_forward[t - 1, i] + previous[i]
        log_z = _log_sum_exp(terms)
        for i in range(n_states):
            a = log_forward[t - 1, i] - log_z
            if a == -np.inf:
                continue
            for j in range(n_states):
                pairs[i, j] += weight * exp_nonpositive(
                    min(a + log_transmat[i, j] + ahead[j], 0.0))
        for i in range(n_states):
            log_backward[i] = previous[i]
    pair_counts += pairs
    for j in range(n_states):
        start_counts[j] += weight * posteriors[first, j]
    return log_likelihood


def _redo_lost(log_start, transmat, log_emission, bounds, weights, posteriors, forward,
               pair_counts, log_likelihood, start_counts, first_sequence, last_sequence):
    """The sequences among first_sequence..last_sequence−1 whose scaled pass lost a path
    (log-likelihood NaN), redone in log space (:func:`_log_space_one`)."""
    lost = first_sequence + np.flatnonzero(np.isnan(log_likelihood[first_sequence:
                                                                   last_sequence]))
    if len(lost) == 0:
        return
    with np.errstate(divide="ignore"):
        log_transmat = np.log(transmat)
    for s in lost:
        first, last = bounds[s], bounds[s + 1]
        log_likelihood[s] = _log_space_one(log_start, log_transmat, log_emission, first, last,
                                           weights[s], posteriors, forward, pair_counts,
                                           start_counts)
        if log_likelihood[s] == -np.inf:  # an impossible sequence contributes nothing
            posteriors[first:last] = 0.0


@numba.njit(inline="always", **_SERIAL)
def _start_probabilities(log_start):
    """π from log π, once per group of sequences rather than once per sequence."""
    start = np.empty(len(log_start))
    for j in range(len(log_start)):
        start[j] = math.exp(log_start[j])
    return start


@numba.njit(**_SERIAL)
def _forward(log_start, start, transmat_t, successors, log_emission, shifts, first, last,
             scaled, forward, predicted, barrier, support, scale=False):
    """The forward recursion over frames first..last−1 (``scaled`` holds the e_t; a rescued
    frame's row is rewritten with its new shift). Returns log L (−inf for an impossible
    sequence), whether any frame had to be rescued, and whether a path was lost (a state the
    chain can be in predicted below ``_LOST``: it stops there). ``support`` gets (a superset
    of) the states the chain can be in at the last frame (followed only where A has zeros:
    ``successors``; ``barrier`` is a work vector).
    With ``scale`` it computes the e_t and
    m_t itself (:func:`_scale_frame`): off the recursion's critical path, they cost little
    there. The loops over states have no branches, so that they vectorise; the rare cases
    (underflow, impossible frames) are handled per frame. ``transmat_t`` is Aᵀ padded by
    :func:`_padded_rows`, and ``predicted`` K⁺ long."""
    n_states = transmat_t.shape[1]
    watch = successors.shape[1] > 0
    barrier[:] = 0.0
    settled = not watch
    log_likelihood = 0.0
    any_rescued = False
    for t in range(first, last):
        if scale:
            _scale_frame(log_emission, scaled, shifts, t)
        if t == first:
            for j in range(n_states):
                predicted[j] = start[j]
            if watch:
                _start_support(log_start, support, barrier)
        else:
            _times_vector(transmat_t, forward[t - 1], predicted)
            if not settled:
                settled = _next_support(successors, support, barrier)
        shift = shifts[t]
        if shift == -np.inf:
            return -np.inf, any_rescued, False  # a frame no state can emit: probability 0
        total = 0.0
        for j in range(n_states):
            f = predicted[j] * scaled[t, j]
            forward[t, j] = f
            total += f
        if watch and t > first:  # (π is exact: what it loses is seen one frame on)
            low = np.inf
            for j in range(n_states):
                low = min(low, predicted[j] + barrier[j])
            if low < _LOST:
                return log_likelihood, any_rescued, True
        rescued = False
        if total < _TINY:  # the rare underflow: shift by the best reachable state instead
            best = -np.inf
            for j in range(n_states):
                if predicted[j] > 0.0:
                    best = max(best, log_emission[t, j] + math.log(predicted[j]))
            if best == -np.inf:
                return -np.inf, any_rescued, False
            shift = best
            total = 0.0
            for j in range(n_states):
                # the cap keeps unreachable states' densities finite (they are multiplied by 0)
                e = math.exp(min(log_emission[t, j] - shift, 700.0))
                scaled[t, j] = e
                forward[t, j] = predicted[j] * e
                total += forward[t, j]
            if not total > 0.0:
                return -np.inf, any_rescued, False
            rescued = any_rescued = True
        log_likelihood += shift
        # Renormalising costs a division on the recursion's critical path, so it is done only
        # when the vector gets small (it never grows: e_t ≤ 1 and A is stochastic), and at the
        # end; the backward pass is invariant to the scale of each α_t.
        if rescued or total < _RESCALE or t == last - 1:
            log_likelihood += math.log(total)
            inverse = 1.0 / total
            for j in range(n_states):
                forward[t, j] *= inverse
    return log_likelihood, any_rescued, False


# Σ_t ξ_t of a chain that mixes is summed as A ∘ Σ_t (â_t / Z_t) u_{t+1}ᵀ: the backward pass
# stores the two vectors of _PAIR_BLOCK frames side by side, and each such block is added as K²
# dot products over its frames (vectorised, see :func:`_add_block_pairs`) instead of a K × K
# update at every frame (measured: that update was 40% of the backward pass at K = 8).
_PAIR_BLOCK = 64


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def _add_block_pairs(blocks, n_frames, pairs):
    """pairs[i, j] += Σ_c blocks[0, i, c] blocks[1, j, c] over the first ``n_frames`` columns
    (reassociated: each sum runs in several SIMD lanes), four j at a time, sharing the loads
    of blocks[0, i]."""
    n_states = pairs.shape[0]
    for i in range(n_states):
        j = 0
        while j + 4 <= n_states:
            t0 = t1 = t2 = t3 = 0.0
            for c in range(n_frames):
                a = blocks[0, i, c]
                t0 += a * blocks[1, j, c]
                t1 += a * blocks[1, j + 1, c]
                t2 += a * blocks[1, j + 2, c]
                t3 += a * blocks[1, j + 3, c]
            pairs[i, j] += t0
            pairs[i, j + 1] += t1
            pairs[i, j + 2] += t2
            pairs[i, j + 3] += t3
            j += 4
        while j < n_states:
            total = 0.0
            for c in range(n_frames):
                total += blocks[0, i, c] * blocks[1, j, c]
            pairs[i, j] += total
            j += 1


@numba.njit(**_SERIAL)
def _backward_statistics(transmat, first, last, weight, posteriors, forward, pair_counts,
                         start_counts, u, v, pairs, blocks, watch):
    """The backward recursion after :func:`_forward`, with γ_t written over the e_t in
    ``posteriors`` and the ξ outer products summed into ``pair_counts``. Returns False, having
    added nothing, where it lost a path (the backward vector of a state the forward pass
    reached below ``_LOST``, checked with ``watch``, or a Z_t below the normal numbers): the
    caller redoes the sequence in log space. ``transmat`` is A padded by :func:`_padded_rows`,
    ``v`` K⁺ long, ``blocks`` (2, K, ``_PAIR_BLOCK``) work space."""
    n_states = transmat.shape[1]
    pairs[:] = 0.0
    filled = 0
    t = last - 1
    top = 0.0
    for j in range(n_states):
        # b̂_T = 1; a state the forward pass cannot reach gets u = 0: it could only enter
        # through transitions from states of zero probability, and its (arbitrary) scale must
        # not swamp the others when u is normalised
        u[j] = posteriors[t, j] if forward[t, j] != 0.0 else 0.0
        top = max(top, u[j])
        posteriors[t, j] = forward[t, j]  # γ_T = â_T
    inverse = 1.0 / top  # top > 0: some state is reachable, or the forward pass returned −inf
    for j in range(n_states):
        u[j] *= inverse
    # u is renormalised only when it gets small (it never grows); γ_t and ξ_t are invariant to
    # the scales of α_t and u_{t+1}.
    for t in range(last - 2, first - 1, -1):
        _times_vector(transmat, u, v)
        norm = 0.0
        for i in range(n_states):
            norm += forward[t, i] * v[i]
        if not norm > _NORM_MIN:
            return False
        if watch and _backward_lost(forward[t], v):
            return False
        inverse = 1.0 / norm
        if watch:
            # ξ_t(i, j) = w â_t(i) A_ij u_{t+1}(j) / Z_t, multiplied in this order: the product
            # of the first three is at most Z_t, so nothing overflows however small Z_t is,
            # and a zero A_ij adds an exact 0
            scale = weight * inverse
            for i in range(n_states):
                a = forward[t, i]
                for j in range(n_states):
                    pairs[i, j] += a * transmat[i, j] * u[j] * scale
        else:
            # every A_ij ≥ _WATCH_BELOW: â_t(i) u_{t+1}(j) / Z_t ≤ 1 / A_ij ≤ 1e190, so the sums
            # without A (and w, multiplied in at the end) cannot overflow
            for i in range(n_states):
                blocks[0, i, filled] = forward[t, i] * inverse
                blocks[1, i, filled] = u[i]
            filled += 1
            if filled == _PAIR_BLOCK:
                _add_block_pairs(blocks, filled, pairs)
                filled = 0
        top = 0.0
        for i in range(n_states):
            f = forward[t, i]
            e = posteriors[t, i]
            posteriors[t, i] = f * v[i] * inverse
            ui = e * v[i] if f != 0.0 else 0.0
            u[i] = ui
            top = max(top, ui)
        # u shrinks (e_t ≤ 1, A stochastic) except at a rescued frame, whose e_t can be huge
        # for states the forward pass found nearly impossible: rescaled in both cases
        if (top < _RESCALE or top > 1.0) and top > 0.0:
            inverse = 1.0 / top
            for i in range(n_states):
                u[i] *= inverse
    if watch:
        for i in range(n_states):
            for j in range(n_states):
                pair_counts[i, j] += pairs[i, j]
    else:
        if filled:
            _add_block_pairs(blocks, filled, pairs)
        for i in range(n_states):
            for j in range(n_states):
                pair_counts[i, j] += weight * (transmat[i, j] * pairs[i, j])
    for j in range(n_states):
        start_counts[j] += weight * posteriors[first, j]
    return True


@numba.njit(inline="always", **_SERIAL)
def _scale_frame(log_emission, scaled, shifts, t):
    """e_t = exp(log p(x_t | ·) − m_t) with m_t the row maximum, of frame t (the forward
    recursions compute them as they go)."""
    n_states = log_emission.shape[1]
    shift = -np.inf
    for j in range(n_states):
        shift = max(shift, log_emission[t, j])
    shifts[t] = shift
    if shift == -np.inf:
        shift = 0.0  # every density is 0 (the forward pass stops there)
    for j in range(n_states):
        scaled[t, j] = exp_nonpositive(log_emission[t, j] - shift)


@numba.njit(**_SERIAL)
def _forward_backward_range(log_start, transmat, successors, log_emission, shifts,
                            bounds, weights, posteriors, forward, pair_counts, log_likelihood,
                            start_counts, first_sequence, last_sequence):
    """Sequences first_sequence..last_sequence−1, one after the other: each fills its rows of
    ``posteriors`` with γ_t, of ``forward`` with â_t, adds w Σ_t ξ_t to ``pair_counts`` and
    w γ_1 to ``start_counts``, and gets its log L. Where the scaled recursions lose a path the
    sequence gets NaN, having added nothing: the caller redoes it in log space
    (:func:`_redo_lost`; compiled apart, and only when some sequence needs it). The forward
    recursion writes the scaled densities e_t into ``posteriors`` and the m_t into ``shifts``
    as it goes (:func:`_scale_frame`); the backward one overwrites them with γ_t.
    """
    n_states = transmat.shape[0]
    rows, rows_t = _padded_rows(transmat), _padded_rows(transmat.T)
    width = rows.shape[0]
    predicted, u, v = np.empty(width), np.empty(n_states), np.empty(width)
    barrier, support = np.empty(n_states), np.empty(successors.shape[1], dtype=np.uint64)
    pairs = np.empty((n_states, n_states))
    blocks = np.empty((2, n_states, _PAIR_BLOCK))
    start = _start_probabilities(log_start)
    watch = successors.shape[1] > 0
    for s in range(first_sequence, last_sequence):
        first, last = bounds[s], bounds[s + 1]
        if weights[s] != 0.0 and first < last:
            value, _, lost = _forward(log_start, start, rows_t, successors, log_emission,
                                      shifts, first, last, posteriors, forward, predicted,
                                      barrier, support, True)
            if value != -np.inf and not lost:
                lost = not _backward_statistics(rows, first, last, weights[s], posteriors,
                                                forward, pair_counts, start_counts, u, v, pairs,
                                                blocks, watch)
            log_likelihood[s] = np.nan if lost else value
            if log_likelihood[s] != -np.inf:  # (NaN included)
                continue
        else:
            log_likelihood[s] = 0.0  # a dropped sequence: nothing to compute
        for t in range(first, last):  # a dropped or impossible sequence contributes nothing
            for j in range(n_states):
                posteriors[t, j] = 0.0


@numba.njit(**_PARALLEL)
def _forward_backward_parallel(log_start, transmat, successors, log_emission,
                               shifts, bounds, weights, posteriors, forward, pair_parts,
                               log_likelihood, start_parts, groups):
    for g in numba.prange(len(groups) - 1):
        _forward_backward_range(log_start, transmat, successors, log_emission,
                                shifts, bounds, weights, posteriors, forward, pair_parts[g],
                                log_likelihood, start_parts[g], groups[g], groups[g + 1])


# --------------------------------------------------------------------------- one long sequence
# A sequence holding more than half of the frames (one thread would still be on it long after
# the others are done) has its recursions split between two threads, which meet in the middle
# (frame m): first the forward recursion runs over frames < m while the backward one runs over
# frames ≥ m, each storing its vectors; then each runs on through the other half, where the
# other's vectors are ready, and combines them into γ_t and Σ ξ_t as it goes (nothing of the
# second halves is stored). The backward vectors are scaled on their own:
# with B_t ∝ β_t and u_t = ρ_t e_t ∘ B_t (ρ_t a rescaling, 1 mostly) the recursion is
# B_t = A u_{t+1}, and
#
#     γ_t = â_t ∘ B_t / Z_t,   ξ_t(i, j) = â_t(i) A_ij u_{t+1}(j) / Z_t,   Z_t = Σ_i â_t(i) B_t(i).
#
# Going forward, with ã_t = (â_{t−1} A) ∘ e_t the unnormalised forward vector, Z_{t−1} =
# ρ_t Σ_j ã_t(j) B_t(j), so ξ_{t−1}(i, j) = â_{t−1}(i) A_ij e_t(j) B_t(j) / Σ_j ã_t(j) B_t(j).
#
# What the serial pass guards against, the split one detects and hands back to it: a rescued
# forward frame (its e_t changed under the backward recursion), a Z_t dwarfed by the
# backward vector's largest entry — a state the forward pass cannot reach (â_t(j) = 0), whose
# arbitrary backward scale swamped the others (the serial pass zeroes those states' u_t) —
# and a lost path (an entry below ``_LOST``, as in the serial pass; the split backward
# recursion, not knowing yet which states the forward one reaches, checks them all). The
# serial pass then redoes the sequence, in log space where it loses a path too.
_DWARFED = 1e-200


@numba.njit(**_SERIAL)
def _backward(transmat, log_emission, shifts, scaled, first, last, backward, u, watch):
    """B_t for frames first..last−1 (B_{last−1} = 1), from the scaled densities alone, which it
    computes as it goes (as :func:`_forward` with ``scale``); leaves u_first in ``u``. Returns
    False where, with ``watch``, an entry of some B_t fell below ``_LOST`` (it stops there).
    ``transmat`` is A padded by :func:`_padded_rows`."""
    n_states = transmat.shape[1]
    v = np.empty(transmat.shape[0])
    t = last - 1
    _scale_frame(log_emission, scaled, shifts, t)
    top = 0.0
    for j in range(n_states):
        backward[t, j] = 1.0
        top = max(top, scaled[t, j])
    inverse = 1.0 / top if top > 0.0 else 1.0
    for j in range(n_states):
        u[j] = scaled[t, j] * inverse
    for t in range(last - 2, first - 1, -1):
        _scale_frame(log_emission, scaled, shifts, t)
        _times_vector(transmat, u, v)
        top = 0.0
        for i in range(n_states):
            backward[t, i] = v[i]
            ui = scaled[t, i] * v[i]
            u[i] = ui
            top = max(top, ui)
        if watch:
            low = np.inf
            for i in range(n_states):
                low = min(low, backward[t, i])
            if low < _LOST:
                return False
        if top < _RESCALE and top > 0.0:  # u never grows, so it is rescaled only when small
            inverse = 1.0 / top
            for i in range(n_states):
                u[i] *= inverse
    return True


@numba.njit(**_SERIAL)
def _forward_combining(transmat, transmat_t, successors, log_emission, shifts, middle, last,
                       scaled, forward, backward, weight, posteriors, pair_counts, support):
    """The forward recursion through frames middle..last−1 from â_{middle−1} (in ``forward``;
    the states the chain can be in there in ``support``), writing γ_t and adding Σ ξ_{t−1}
    with the stored B_t (A and Aᵀ padded by :func:`_padded_rows`). Returns (log-likelihood
    part, trusted)."""
    n_states = transmat_t.shape[1]
    log_likelihood = 0.0
    # Sums and products in arrays of the function's own, which cannot alias its arguments, so
    # that the compiler keeps them in registers and vectorises the loops.
    pairs = np.zeros((n_states, n_states))
    w = np.empty(n_states)
    previous, predicted = np.empty(n_states), np.empty(transmat_t.shape[0])
    watch = successors.shape[1] > 0
    barrier = np.zeros(n_states)
    settled = not watch
    for j in range(n_states):
        previous[j] = forward[middle - 1, j]
    for t in range(middle, last):
        _times_vector(transmat_t, previous, predicted)
        if not settled:
            settled = _next_support(successors, support, barrier)
        shift = shifts[t]
        if shift == -np.inf:
            return -np.inf, True  # a frame no state can emit: the sequence has probability 0
        low = np.inf
        if watch:
            for j in range(n_states):
                low = min(low, predicted[j] + barrier[j])
        total, norm, top = 0.0, 0.0, 0.0
        for j in range(n_states):
            f = predicted[j] * scaled[t, j]
            predicted[j] = f
            total += f
            norm += f * backward[t, j]
            top = max(top, backward[t, j])
        if (total < _TINY or low < _LOST
                or not (norm > _DWARFED * total * top and norm > _TINY)):
            return log_likelihood, False  # a rescue, a lost path or an untrustworthy B_t
        log_likelihood += shift
        inverse = 1.0 / norm
        scale = weight * inverse
        for j in range(n_states):
            w[j] = scaled[t, j] * backward[t, j] * scale
        for i in range(n_states):
            a = previous[i]
            for j in range(n_states):
                pairs[i, j] += a * transmat[i, j] * w[j]
        for j in range(n_states):
            posteriors[t, j] = predicted[j] * backward[t, j] * inverse
        if total < _RESCALE or t == last - 1:
            log_likelihood += math.log(total)
            inverse = 1.0 / total
            for j in range(n_states):
                predicted[j] *= inverse
        for j in range(n_states):
            previous[j] = predicted[j]
    pair_counts += pairs
    return log_likelihood, True


@numba.njit(**_SERIAL)
def _backward_combining(transmat, first, middle, scaled, forward, u, weight, posteriors,
                        pair_counts, v, watch):
    """The backward recursion through frames middle−1 … first from u_middle (in ``u``), writing
    γ_t and adding Σ ξ_t (t < middle − 1; ξ_{middle−1} is the forward side's; A padded by
    :func:`_padded_rows`, ``v`` K⁺ long). Returns trusted."""
    n_states = transmat.shape[1]
    pairs = np.zeros((n_states, n_states))  # not an argument: see _forward_combining
    for t in range(middle - 1, first - 1, -1):
        _times_vector(transmat, u, v)
        norm, mass, top = 0.0, 0.0, 0.0
        for i in range(n_states):
            norm += forward[t, i] * v[i]
            mass += forward[t, i]
            top = max(top, v[i])
        if not (norm > _DWARFED * mass * top and norm > _TINY):
            return False
        if watch and _backward_lost(forward[t], v):
            return False
        inverse = 1.0 / norm
        if t < middle - 1:
            scale = weight * inverse
            for i in range(n_states):
                a = forward[t, i] * scale
                for j in range(n_states):
                    pairs[i, j] += a * transmat[i, j] * u[j]
        top = 0.0
        for i in range(n_states):
            ui = scaled[t, i] * v[i]
            u[i] = ui
            top = max(top, ui)
            posteriors[t, i] = forward[t, i] * v[i] * inverse  # after e_t is read: same array
        if top < _RESCALE and top > 0.0:
            inverse = 1.0 / top
            for i in range(n_states):
                u[i] *= inverse
    pair_counts += pairs
    return True


@numba.njit(**_PARALLEL)
def _meet_in_the_middle(log_start, transmat, transmat_t, successors, log_emission, shifts, first,
                        middle, last, weight, scaled, forward, backward, pair_parts, result):
    """The two stages of :func:`_split_sequence`, each a task per thread: the recursions up to
    the middle, then on through the other half, combining. ``result`` gets (log L, 1.0 if the
    split pass can be trusted)."""
    n_states = transmat.shape[0]
    width = (n_states + 3) // 4 * 4
    transmat, transmat_t = _padded_rows(transmat), _padded_rows(transmat_t)
    u = np.empty(n_states)
    support = np.empty(successors.shape[1], dtype=np.uint64)
    # (what the tasks of a prange return goes through arrays: its scalars are thread-private)
    parts = np.zeros(2)
    trusted = np.zeros(2, dtype=np.bool_)
    for task in numba.prange(2):
        if task == 0:
            parts[0], rescued, lost = _forward(log_start, _start_probabilities(log_start),
                                               transmat_t, successors, log_emission, shifts,
                                               first, middle, scaled, forward,
                                               np.empty(width), np.empty(n_states), support,
                                               True)
            trusted[0] = not (rescued or lost)
        else:
            trusted[1] = _backward(transmat, log_emission, shifts, scaled, middle, last,
                                   backward, u, successors.shape[1] > 0)
    result[0], result[1] = parts[0], 0.0
    if not (trusted[0] and trusted[1]) or parts[0] == -np.inf:
        return
    for task in numba.prange(2):
        if task == 0:
            parts[1], trusted[0] = _forward_combining(
                transmat, transmat_t, successors, log_emission, shifts, middle, last, scaled,
                forward, backward, weight, scaled, pair_parts[0], support)
        else:
            trusted[1] = _backward_combining(transmat, first, middle, scaled, forward, u,
                                             weight, scaled, pair_parts[1], np.empty(width),
                                             successors.shape[1] > 0)
    result[0] = parts[0] + parts[1]
    result[1] = 1.0 if trusted[0] and trusted[1] else 0.0


def _split_sequence(log_start, transmat, successors, log_emission, shifts, first,
                    last, weight, posteriors, forward, pair_counts, start_counts) -> float:
    """Forward-backward of frames first..last−1 on two threads (see above), which compute the
    e_t (into ``posteriors``) and m_t as they go. Falls back to the serial pass when the split
    one cannot be trusted. Returns log L."""
    n_states = len(log_start)
    transmat_t = np.ascontiguousarray(transmat.T)
    if last - first >= 2:
        # (the middle itself balances best: measured against 0.35 … 0.75 of the frames first)
        middle = (first + last) // 2
        backward = _scratch(len(forward), n_states, "backward")
        pair_parts = np.zeros((2, n_states, n_states))
        result = np.empty(2)
        _meet_in_the_middle(log_start, transmat, transmat_t, successors, log_emission, shifts,
                            first, middle, last, weight, posteriors, forward, backward,
                            pair_parts, result)
        if result[0] == -np.inf:
            return result[0]  # an impossible sequence: the caller zeroes its posteriors
        if result[1] == 1.0:
            pair_counts += pair_parts.sum(axis=0)
            start_counts += weight * posteriors[first]
            return result[0]
    # the rare case: serially (its forward recursion computes the scaled densities anew)
    bounds, weights = np.array([first, last], dtype=np.int64), np.array([weight])
    log_likelihood = np.zeros(1)
    _forward_backward_range(log_start, transmat, successors, log_emission, shifts, bounds,
                            weights, posteriors, forward, pair_counts, log_likelihood,
                            start_counts, 0, 1)
    _redo_lost(log_start, transmat, log_emission, bounds, weights, posteriors, forward,
               pair_counts, log_likelihood, start_counts, 0, 1)
    return log_likelihood[0]


# ------------------------------------------------------------------------------ the numpy form
# The same pass in numpy, for small inputs (kernels.tiers), with a Python loop over frames in
# which each step is done for many rows at once. A row is a block of frames of one sequence:
# the sequences (weight > 0, at least one frame), in groups of similar lengths
# (:func:`_length_groups`), are cut into blocks of about √(2 T) frames (T the group's longest),
# laid side by side, longest first, in (frames, blocks, K) arrays; past its end a
# block continues with frames of log-density 0 (finite work whose results are dropped). What a
# block needs from the others is found first, from each block's transfer matrix (a product of
# A diag(e_t) over its frames, K × K, all blocks side by side): the predicted vector entering it
# (â_{t−1} A, π for a sequence's first block) and the backward vector at its last frame (1 at a
# sequence's end); then the recursions run through all blocks at once. About 3√(2 T) steps
# instead of 2 T: a 2,000-frame sequence (K = 2) costs 3.4 ms, not 28.
#
# Blocks are made only where A mixes (every A_ij ≥ _WATCH_BELOW): there no entry of a normalised
# vector or a transfer matrix can fall far enough to lose a path (see "lost paths" above), and no
# frame needs the rescue of :func:`_forward` after the first (the predicted vector is at least
# min A_ij everywhere). Otherwise each sequence is one block, every frame's vectors are kept,
# and the checks of the compiled pass (a predicted or backward entry of a state the chain can be
# in below ``_LOST``, or Z_t below ``_NORM_MIN``) are made on them after the loops: such a
# sequence is redone in log space (:func:`_log_space_numpy`). A blocked pass that meets anything
# unusual (an impossible sequence, a rescued or lost frame) is redone unblocked.
_NUMPY_BLOCK_MIN_FRAMES = 256  # shorter sequences are one block each


def _side_by_side(first, lengths, order, values, fill):
    """(frames, rows) layout of ``values`` (n_frames, K) for the blocks ``first[order]`` of
    ``lengths[order]`` frames (longest first); ``fill`` past each block's end. Also returns the
    mask of real frames and their rows in ``values``."""
    steps = np.arange(lengths[order[0]])[:, None]
    real = steps < lengths[order]
    rows = (first[order] + steps)[real]
    out = np.full((len(steps), len(order), values.shape[1]), fill)
    out[real] = values[rows]
    return out, real, rows


def _reachable(log_start, transmat, n_frames):
    """(n_frames, K): the states the chain can be in at each frame (from the zeros of π, A)."""
    reach = np.empty((n_frames, len(log_start)), dtype=bool)
    reach[0] = log_start != -np.inf
    step = transmat > 0.0
    for t in range(1, n_frames):
        reach[t] = (reach[t - 1].astype(np.int64) @ step) > 0
        if np.array_equal(reach[t], reach[t - 1]):
            reach[t + 1:] = reach[t]
            break
    return reach


def _length_groups(lengths, selected):
    """The sequences ``selected``, longest first, in groups whose lengths are within a factor
    of two of the group's longest: laid side by side, a group's arrays are at most about twice
    its frames (one 60,000-frame sequence beside thousands of short ones would otherwise pad
    them all to 60,000), for at most twice the steps of one group."""
    order = selected[np.argsort(-lengths[selected], kind="stable")]
    descending = -lengths[order]
    groups, first = [], 0
    while first < len(order):
        last = int(np.searchsorted(descending, descending[first] / 2.0, side="left"))
        groups.append(order[first:last])
        first = last
    return groups


def _forward_backward_numpy(log_start, transmat, watch, log_emission, bounds, weights):
    n_sequences = len(bounds) - 1
    n_states = len(log_start)
    results = (np.zeros(n_sequences), np.zeros_like(log_emission), np.zeros(n_states),
               np.zeros((n_states, n_states)))
    lengths = np.diff(bounds)
    used = np.flatnonzero((weights != 0.0) & (lengths > 0))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for group in _length_groups(lengths, used):
            group, longest = np.sort(group), int(lengths[group[0]])
            block = longest
            if not watch and longest >= _NUMPY_BLOCK_MIN_FRAMES:
                block = int(np.ceil(np.sqrt(2.0 * longest)))
            if block < longest and _blocks_numpy(log_start, transmat, log_emission, bounds,
                                                 weights, group, block, results):
                continue
            _blocks_numpy(log_start, transmat, log_emission, bounds, weights, group, longest,
                          results, watch)
    return results


def _blocks_numpy(log_start, transmat, log_emission, bounds, weights, used, block, results,
                  watch=None):
    """The pass over the sequences ``used`` cut into blocks of ``block`` frames, into
    ``results`` (log L, γ, start counts, transition counts). With ``watch`` None (blocks of
    a mixing chain) it returns False, having changed nothing, where anything unusual
    happened; otherwise it handles everything."""
    n_states = len(log_start)
    # the blocks, sequence by sequence: first frame, length, sequence, index in the sequence
    n_blocks = -(-np.diff(bounds)[used] // block)
    sequence = np.repeat(used, n_blocks)
    index = np.arange(len(sequence)) - np.repeat(np.cumsum(n_blocks) - n_blocks, n_blocks)
    first = bounds[sequence] + index * block
    length = np.minimum(bounds[sequence + 1] - first, block)
    last_block = index == n_blocks[np.searchsorted(used, sequence)] - 1
    order = np.argsort(-length, kind="stable")
    log_e, real, rows = _side_by_side(first, length, order, log_emission, 0.0)
    n_frames, n_rows = real.shape
    shifts = log_e.max(axis=2)
    shifts[shifts == -np.inf] = 0.0  # no state can emit: the forward pass finds it
    scaled = np.exp(log_e - shifts[:, :, None])
    start = np.exp(log_start)
    entering = np.broadcast_to(start, (n_rows, n_states))
    leaving = np.ones((n_rows, n_states))
    if watch is None:
        entering, leaving = _block_boundaries(start, transmat, scaled, order, index,
                                              last_block)
        if not (np.isfinite(entering).all() and np.isfinite(leaving).all()):
            return False
    # forwards: â_t ∝ (â_{t−1} A) ∘ e_t, normalised at every frame
    forward, predicted = np.empty_like(scaled), np.empty_like(scaled)
    totals = np.empty((n_frames, n_rows))
    impossible = np.zeros(n_rows, dtype=bool)
    for t in range(n_frames):
        p = predicted[t]
        if t == 0:
            p[:] = entering
        else:
            np.matmul(forward[t - 1], transmat, out=p)
        f = np.multiply(p, scaled[t], out=forward[t])
        total = np.add.reduce(f, axis=1, out=totals[t])
        if total.min() < _TINY:
            if watch is None:
                return False
            _rescue_numpy(p, log_e[t], scaled[t], f, shifts[t], total, impossible)
        f /= total[:, None]
    # backwards: v_t = A u_{t+1} (``leaving`` at a block's last frame), u_t = e_t ∘ v_t
    active = real.sum(axis=1)  # the blocks still running at each frame: the first ones
    backward, ahead = np.empty_like(scaled), np.empty_like(scaled)
    transmat_t = transmat.T
    for t in range(n_frames - 1, -1, -1):
        v = backward[t]
        if t == n_frames - 1:
            v[:] = leaving
        else:
            np.matmul(ahead[t + 1], transmat_t, out=v)
            ending = slice(active[t + 1], active[t])  # the blocks whose last frame is t
            v[ending] = leaving[ending]
        u = np.multiply(scaled[t], v, out=ahead[t])
        if watch:  # states the forward pass cannot reach: see _backward_statistics
            u[forward[t] == 0.0] = 0.0
        u /= np.maximum.reduce(u, axis=1)[:, None]
    norms = np.einsum("tsk,tsk->ts", forward, backward)
    lost = np.any(real & ~(norms > _NORM_MIN), axis=0)
    if watch:
        final = np.zeros_like(real)
        final[length[order] - 1, np.arange(n_rows)] = True
        reach = _reachable(log_start, transmat, n_frames)
        low = np.where(reach[1:, None, :], predicted[1:], np.inf).min(axis=2)
        lost |= np.any(real[1:] & (low < _LOST), axis=0)
        low = np.where(forward != 0.0, backward, np.inf).min(axis=2)
        lost |= np.any(real & ~final & (low < _LOST), axis=0)
    elif watch is None and (lost.any() or impossible.any()):
        return False
    log_likelihood, posteriors, start_counts, pair_counts = results
    sequence = sequence[order]
    good = ~(lost | impossible)
    log_likelihood[sequence[impossible & ~lost]] = -np.inf
    if not good.all():  # (one block per sequence here)
        forward, backward, ahead, norms, real, totals, shifts = (
            a[:, good] for a in (forward, backward, ahead, norms, real, totals, shifts))
        rows = (first[order[good]] + np.arange(n_frames)[:, None])[real]
    kept = sequence[good]
    w = weights[kept]
    np.add.at(log_likelihood, kept,
              np.where(real, np.log(totals) + shifts, 0.0).sum(axis=0))
    gamma = forward * backward / norms[:, :, None]  # (â ∘ v ≤ Z: no overflow)
    posteriors[rows] = gamma[real]
    opening = index[order[good]] == 0
    start_counts += w[opening] @ gamma[0, opening]
    # Σ_t ξ_t(i, j) = A_ij Σ_t (w â_t(i) / Z_t) u_{t+1}(j), over frames with a successor in the
    # block, then over the frames that end a block that is not the sequence's last
    scale = np.where(real[1:], w / norms[:-1], 0.0)
    within = np.einsum("tsi,tsj->ij", forward[:-1] * scale[:, :, None], ahead[1:])
    pair_counts += transmat * within
    if watch is None:
        inner = np.flatnonzero(~last_block)  # (by sequence and index: its successor is next)
        where = np.argsort(order)
        before, after = where[inner], where[inner + 1]
        a, u = forward[block - 1, before], ahead[0, after]
        z = np.einsum("ri,ri->r", a, u @ transmat_t)
        pair_counts += transmat * ((a * (weights[sequence[before]] / z)[:, None]).T @ u)
    else:
        for s in sequence[lost]:
            _log_space_numpy(log_start, transmat, log_emission, bounds[s], bounds[s + 1],
                             weights[s], log_likelihood, s, posteriors, start_counts,
                             pair_counts)
    return True


def _block_boundaries(start, transmat, scaled, order, index, last_block):
    """The predicted vector entering each block and the backward vector at its last frame, in
    the layout's order (rows ``order``), from the blocks' transfer matrices: with Q the product
    of A diag(e_t) over a block's frames after its first, the vector entering the next block is
    ∝ (entering ∘ e_first) Q A, and the backward vector at the end of the previous one ∝
    A diag(e_first) Q (backward vector at this block's end). Both chains run over the blocks'
    index in their sequence, all sequences at once (a missing block: Q = 1, e = 1)."""
    n_frames, n_rows, n_states = scaled.shape
    product = np.broadcast_to(np.eye(n_states), (n_rows, n_states, n_states)).copy()
    step = np.empty_like(product)
    for t in range(1, n_frames):  # (blocks shorter than the longest: only their last one)
        np.matmul(product, transmat, out=step)
        np.multiply(step, scaled[t][:, None, :], out=product)
        product /= np.maximum.reduce(product, axis=(1, 2))[:, None, None]
    # (index in the sequence, sequence) grids; blocks are listed sequence by sequence
    sequence = np.cumsum(index == 0) - 1
    grid = (index.max() + 1, sequence[-1] + 1)
    products = np.broadcast_to(np.eye(n_states), (*grid, n_states, n_states)).copy()
    e_first = np.ones((*grid, n_states))
    where = np.argsort(order)  # the layout's row of each block
    products[index, sequence], e_first[index, sequence] = product[where], scaled[0][where]
    ends = np.zeros(grid, dtype=bool)
    ends[index[last_block], sequence[last_block]] = True
    entering, leaving = np.empty((*grid, n_states)), np.empty((*grid, n_states))
    entering[0] = start
    for j in range(1, grid[0]):
        p = np.matmul((entering[j - 1] * e_first[j - 1])[:, None, :], products[j - 1])[:, 0]
        p = p @ transmat
        entering[j] = p / np.add.reduce(p, axis=1)[:, None]
    leaving[-1] = 1.0
    for j in range(grid[0] - 2, -1, -1):
        b = np.matmul(products[j + 1], leaving[j + 1][:, :, None])[:, :, 0] * e_first[j + 1]
        b = b @ transmat.T
        b /= np.maximum.reduce(b, axis=1)[:, None]
        leaving[j] = np.where(ends[j][:, None], 1.0, b)
    return entering[index, sequence][order], leaving[index, sequence][order]


def _rescue_numpy(predicted, log_e, scaled, f, shifts, total, impossible):
    """A frame where every reachable state's scaled density underflowed (as in :func:`_forward`):
    shifted by the best reachable state instead; a sequence where no state it can be in can emit
    the frame is impossible (its row is kept finite, and dropped later)."""
    low = total < _TINY
    p = predicted[low]
    best = np.where(p > 0.0, log_e[low] + np.log(p), -np.inf).max(axis=1)
    best_safe = np.where(best == -np.inf, 0.0, best)
    e = np.exp(np.minimum(log_e[low] - best_safe[:, None], 700.0))
    rescued = p * e
    sums = rescued.sum(axis=1)
    dead = ~(sums > 0.0) | (best == -np.inf)
    rescued[dead], sums[dead], best_safe[dead] = 1.0, len(log_e[0]), 0.0
    scaled[low], f[low], total[low], shifts[low] = e, rescued, sums, best_safe
    impossible[np.flatnonzero(low)[dead]] = True


def _log_sum_exp_numpy(values, axis):
    top = values.max(axis=axis, keepdims=True)
    top[top == -np.inf] = 0.0
    return np.log(np.exp(values - top).sum(axis=axis)) + np.squeeze(top, axis)


def _log_space_numpy(log_start, transmat, log_emission, first, last, weight, log_likelihood, s,
                     posteriors, start_counts, pair_counts):
    """:func:`_log_space_one` in numpy, for the sequences where the numpy pass lost a path."""
    log_transmat = np.log(transmat)
    log_e = log_emission[first:last]
    n_frames, n_states = log_e.shape
    log_forward, log_backward = np.empty_like(log_e), np.zeros_like(log_e)
    log_forward[0] = log_start + log_e[0]
    for t in range(1, n_frames):
        log_forward[t] = _log_sum_exp_numpy(log_forward[t - 1][:, None] + log_transmat,
                                            0) + log_e[t]
    log_likelihood[s] = _log_sum_exp_numpy(log_forward[-1], 0)
    if log_likelihood[s] == -np.inf:
        return  # an impossible sequence contributes nothing (its posteriors stay 0)
    ahead = log_e + log_backward  # log p(x_t | j) + log β_t(j), row t updated as β_t is known
    for t in range(n_frames - 2, -1, -1):
        ahead[t + 1] = log_e[t + 1] + log_backward[t + 1]
        log_backward[t] = _log_sum_exp_numpy(log_transmat + ahead[t + 1], 1)
    ahead[0] = log_e[0] + log_backward[0]
    log_gamma = log_forward + log_backward
    log_z = _log_sum_exp_numpy(log_gamma, 1)
    gamma = np.exp(np.minimum(log_gamma - log_z[:, None], 0.0))
    posteriors[first:last] = gamma
    start_counts += weight * gamma[0]
    terms = (log_forward[:-1, :, None] - log_z[:-1, None, None] + log_transmat
             + ahead[1:, None, :])
    pair_counts += weight * np.exp(np.minimum(terms, 0.0)).sum(axis=0)


def forward_backward(log_start: np.ndarray, transmat: np.ndarray, log_emission: np.ndarray,
                     bounds: np.ndarray, weights: np.ndarray | None = None,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Posterior state marginals and expected transition counts of a batch of sequences.

    Parameters
    ----------
    log_start : (K,) log π (−inf for an impossible start state)
    transmat : (K, K) transition probabilities A (rows sum to 1; zeros allowed)
    log_emission : (n_frames, K) log p(x_t | z_t = k) of all sequences, back to back
    bounds : (n_sequences + 1,) int, frames of sequence s are ``bounds[s]:bounds[s + 1]``
    weights : (n_sequences,) non-negative sequence weights (default 1); weight 0 skips a sequence

    Returns
    -------
    log_likelihood : (n_sequences,) log p(x_s) of each sequence (unweighted; 0 where weight 0)
    posteriors : (n_frames, K) γ_t(k) = p(z_t = k | x_s) (unweighted; 0 where weight 0)
    start_counts : (K,) Σ_s w_s γ_{s,1}
    transition_counts : (K, K) Σ_s w_s Σ_t ξ_t(i, j)
    """
    log_start = np.ascontiguousarray(log_start, dtype=np.float64)
    transmat = np.ascontiguousarray(transmat, dtype=np.float64)
    log_emission = np.ascontiguousarray(log_emission, dtype=np.float64)
    bounds = np.ascontiguousarray(bounds, dtype=np.int64)
    n_sequences = len(bounds) - 1
    n_states = len(log_start)
    weights = (np.ones(n_sequences) if weights is None
               else np.ascontiguousarray(weights, dtype=np.float64))
    posteriors = np.empty_like(log_emission)  # first the scaled densities e_t, then γ_t
    forward = _scratch(len(log_emission), n_states)
    shifts = np.empty(len(log_emission))
    log_likelihood = np.zeros(n_sequences)
    start_counts, pair_counts = np.zeros(n_states), np.zeros((n_states, n_states))
    chain = (log_start, transmat, successor_sets(transmat))
    arguments = (*chain, log_emission, shifts, bounds, weights, posteriors, forward, pair_counts,
                 log_likelihood, start_counts, 0, n_sequences)
    if not _FORWARD_BACKWARD.use_compiled("d", len(log_emission) * n_states**2, arguments):
        return _FORWARD_BACKWARD.run_numpy(_forward_backward_numpy, log_start, transmat,
                                           chain[2].shape[1] > 0, log_emission, bounds, weights)
    dominant = _dominant_sequence(bounds, weights)
    if dominant < 0:
        ranges = [(0, n_sequences)]
    else:  # it gets both threads to itself; the others are done as usual, before and after it
        first, last = bounds[dominant], bounds[dominant + 1]
        log_likelihood[dominant] = _split_sequence(
            *chain, log_emission, shifts, first, last, weights[dominant], posteriors, forward,
            pair_counts, start_counts)
        if log_likelihood[dominant] == -np.inf:  # an impossible sequence contributes nothing
            posteriors[first:last] = 0.0
        ranges = [(0, dominant), (dominant + 1, n_sequences)]
    for first_sequence, last_sequence in ranges:
        if first_sequence < last_sequence:
            _sequences_as_usual(chain, log_emission, shifts, bounds, weights, posteriors,
                                forward, pair_counts, log_likelihood, start_counts,
                                first_sequence, last_sequence)
    return log_likelihood, posteriors, start_counts, pair_counts


def _dominant_sequence(bounds: np.ndarray, weights: np.ndarray) -> int:
    """The sequence holding more than half of all frames (at least ``_PARALLEL_MIN_FRAMES``),
    which would keep one thread busy long after the others are done: it gets the two-thread
    pass. −1 when there is none, or only one thread."""
    if numba.get_num_threads() < 2 or len(bounds) < 2:
        return -1
    lengths = np.diff(bounds)
    longest = int(np.argmax(lengths))
    if (2 * lengths[longest] > bounds[-1] and lengths[longest] >= _PARALLEL_MIN_FRAMES
            and weights[longest] != 0.0):
        return longest
    return -1


def _sequences_as_usual(chain, log_emission, shifts, bounds, weights, posteriors, forward,
                        pair_counts, log_likelihood, start_counts, first_sequence, last_sequence):
    """Sequences first_sequence..last_sequence−1: each sequence's serial pass, in groups of
    sequences on all threads when there are enough frames. Adds to ``pair_counts`` and
    ``start_counts``. ``chain`` is (log π, A, :func:`successor_sets` of A)."""
    log_start = chain[0]
    first_frame, last_frame = bounds[first_sequence], bounds[last_sequence]
    n_frames = last_frame - first_frame
    n_states = len(log_start)
    if last_sequence - first_sequence < 2 or n_frames < _PARALLEL_MIN_FRAMES:
        _forward_backward_range(*chain, log_emission, shifts, bounds, weights, posteriors,
                                forward, pair_counts, log_likelihood, start_counts,
                                first_sequence, last_sequence)
    else:
        groups = _sequence_groups(bounds, numba.get_num_threads(), first_sequence,
                                  last_sequence)
        start_parts = np.zeros((len(groups) - 1, n_states))
        pair_parts = np.zeros((len(groups) - 1, n_states, n_states))
        _forward_backward_parallel(*chain, log_emission, shifts, bounds, weights, posteriors,
                                   forward, pair_parts, log_likelihood, start_parts, groups)
        start_counts += start_parts.sum(axis=0)
        pair_counts += pair_parts.sum(axis=0)
    _redo_lost(log_start, chain[1], log_emission, bounds, weights, posteriors, forward,
               pair_counts, log_likelihood, start_counts, first_sequence, last_sequence)


_WORKSPACE = threading.local()
_WORKSPACE_MAX_BYTES = 1 << 28


def _scratch(n_frames: int, n_states: int, name: str = "forward") -> np.ndarray:
    """An (n_frames, K) scratch array, reused by later calls in the same thread: EM calls the
    E-step with the same sizes every iteration, and fresh arrays of this size cost page faults
    every time (measured: a quarter of the pass on 200,000 frames). Thread-local, so concurrent
    E-steps never share it; one per ``name``; arrays over 256 MB are not kept."""
    size = n_frames * n_states
    if size * 8 > _WORKSPACE_MAX_BYTES:
        return np.empty((n_frames, n_states))
    buffers = getattr(_WORKSPACE, "buffers", None)
    if buffers is None:
        buffers = _WORKSPACE.buffers = {}
    buffer = buffers.get(name)
    if buffer is None or buffer.size < size:
        buffer = buffers[name] = np.empty(size)
    return buffer[:size].reshape(n_frames, n_states)


def _sequence_groups(bounds: np.ndarray, n_threads: int, first_sequence: int = 0,
                     last_sequence: int | None = None) -> np.ndarray:
    """Boundaries of contiguous groups of the sequences first_sequence..last_sequence−1 with
    about equal numbers of frames (several groups per thread, so one long sequence does not
    leave the other threads idle)."""
    last_sequence = len(bounds) - 1 if last_sequence is None else last_sequence
    n_groups = min(last_sequence - first_sequence, 4 * max(1, n_threads))
    targets = np.linspace(bounds[first_sequence], bounds[last_sequence], n_groups + 1)
    groups = np.clip(np.searchsorted(bounds, targets), first_sequence, last_sequence)
    groups[0], groups[-1] = first_sequence, last_sequence
    return np.unique(groups).astype(np.int64)


@numba.njit(**_SERIAL)
def _viterbi_range(log_start, log_transmat, log_emission, bounds, paths, log_probability,
                   back, first_sequence, last_sequence):
    n_states = log_transmat.shape[0]
    delta = np.empty(n_states)
    previous = np.empty(n_states)
    for s in range(first_sequence, last_sequence):
        first, last = bounds[s], bounds[s + 1]
        if first == last:
            log_probability[s] = 0.0
            continue
        for j in range(n_states):
            delta[j] = log_start[j] + log_emission[first, j]
        for t in range(first + 1, last):
            for j in range(n_states):
                previous[j] = delta[j]
            for j in range(n_states):
                best, arg = -np.inf, 0
                for i in range(n_states):
                    score = previous[i] + log_transmat[i, j]
                    if score > best:
                        best, arg = score, i
                delta[j] = best + log_emission[t, j]
                back[t, j] = arg
        best, arg = -np.inf, 0
        for j in range(n_states):
            if delta[j] > best:
                best, arg = delta[j], j
        log_probability[s] = best
        paths[last - 1] = arg
        for t in range(last - 1, first, -1):
            arg = back[t, arg]
            paths[t - 1] = arg


@numba.njit(**_PARALLEL)
def _viterbi_parallel(log_start, log_transmat, log_emission, bounds, paths, log_probability,
                      back, groups):
    for g in numba.prange(len(groups) - 1):
        _viterbi_range(log_start, log_transmat, log_emission, bounds, paths, log_probability,
                       back, groups[g], groups[g + 1])


def _viterbi_numpy(log_start, log_transmat, log_emission, bounds):
    """:func:`_viterbi_range` in numpy, the sequences side by side (as the numpy forward-backward:
    longest first, in groups of similar lengths); each sequence's best last state is taken at
    its own last frame."""
    n_sequences = len(bounds) - 1
    path = [0] * len(log_emission)
    log_probability = np.zeros(n_sequences)
    lengths = np.diff(bounds)
    for order in _length_groups(lengths, np.flatnonzero(lengths > 0)):
        log_e, real, _ = _side_by_side(bounds, lengths, order, log_emission, 0.0)
        n_frames, n_used = real.shape
        active = real.sum(axis=1)  # the sequences still running at each frame: the first ones
        back = np.empty((n_frames, n_used, len(log_start)), dtype=np.int64)
        best_last = np.empty((n_used, len(log_start)))
        delta = log_start + log_e[0]
        scores = np.empty((n_used, len(log_start), len(log_start)))
        for t in range(1, n_frames + 1):
            if t == n_frames or active[t] < active[t - 1]:  # sequences whose last frame is t − 1
                ending = slice(active[t] if t < n_frames else 0, active[t - 1])
                best_last[ending] = delta[ending]
            if t == n_frames:
                break
            scores = np.add(delta[:, :, None], log_transmat, out=scores)  # (sequence, from, to)
            np.argmax(scores, axis=1, out=back[t])  # the first best, as the compiled loop's >
            delta = np.maximum.reduce(scores, axis=1) + log_e[t]
        state = best_last.argmax(axis=1)
        log_probability[order] = best_last[np.arange(n_used), state]
        # back along the pointers: a walk through Python lists costs a tenth of a numpy step
        back = back.tolist()
        for r, s in enumerate(order.tolist()):
            best, first = int(state[r]), int(bounds[s])
            for t in range(int(lengths[s]) - 1, 0, -1):
                path[first + t] = best
                best = back[t][r][best]
            path[first] = best
    return np.array(path, dtype=np.int64), log_probability


def viterbi(log_start: np.ndarray, log_transmat: np.ndarray, log_emission: np.ndarray,
            bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The most probable state path of every sequence, in log space.

    Parameters
    ----------
    log_start : (K,) log π
    log_transmat : (K, K) log A
    log_emission : (n_frames, K)
    bounds : (n_sequences + 1,) int

    Returns
    -------
    paths : (n_frames,) int, the best path of each sequence, back to back
    log_probability : (n_sequences,) log p(x_s, best path) (−inf when no path is possible)
    """
    log_start = np.ascontiguousarray(log_start, dtype=np.float64)
    log_transmat = np.ascontiguousarray(log_transmat, dtype=np.float64)
    log_emission = np.ascontiguousarray(log_emission, dtype=np.float64)
    bounds = np.ascontiguousarray(bounds, dtype=np.int64)
    n_sequences = len(bounds) - 1
    paths = np.zeros(len(log_emission), dtype=np.int64)
    log_probability = np.zeros(n_sequences)
    # Back-pointers fit in 32 bits (K is small); one (n_frames, K) table for all sequences.
    back = np.zeros(log_emission.shape, dtype=np.int32)
    arguments = (log_start, log_transmat, log_emission, bounds, paths, log_probability, back, 0,
                 n_sequences)
    if not _VITERBI.use_compiled("d", len(log_emission) * len(log_start)**2, arguments):
        return _VITERBI.run_numpy(_viterbi_numpy, log_start, log_transmat, log_emission, bounds)
    if n_sequences < 2 or bounds[-1] < _PARALLEL_MIN_FRAMES:
        _viterbi_range(log_start, log_transmat, log_emission, bounds, paths, log_probability,
                       back, 0, n_sequences)
    else:
        groups = _sequence_groups(bounds, numba.get_num_threads())
        _viterbi_parallel(log_start, log_transmat, log_emission, bounds, paths, log_probability,
                          back, groups)
    return paths, log_probability


# (the last argument: seconds that compiling the pass with its callees took in a new
# environment: numba's compile events of the five dispatchers of a first GaussianHMM fit, 5.3 s;
# Viterbi's, about 1 s. The numpy Viterbi, one step per frame, costs 35 ms on 2,000 frames.)
_FORWARD_BACKWARD = tiers.TwoForms(_forward_backward_range, NUMPY_MAX_WORK, 5.0)
_VITERBI = tiers.TwoForms(_viterbi_range, NUMPY_MAX_WORK, 1.0)
