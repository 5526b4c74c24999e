"""The Viterbi kernel (one-sequence tiles and lockstep blocks, every vector level) against a
frozen numpy copy of the scalar loop it replaced (issue 15, item 1): paths, log-probabilities
and statuses identical bit for bit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emx._core import _hmm

STATUS_OK = -1
# Best vector code this CPU runs (0 portable C, 1 SSE2, 2 AVX2, 3 AVX-512F): all are tested.
CPU_LEVEL = _hmm._viterbi_tune()[0]
LEVELS = range(CPU_LEVEL + 1)
# -1: the kernel's own choice; 0: one sequence at a time; 1: lockstep blocks.
CONFIGS = [(level, mode) for level in LEVELS for mode in (-1, 0, 1)]


def viterbi_reference(loglik, offsets, log_startprob, log_transmat_t):
    """Frozen copy, in numpy, of the scalar loop of ``_hmm.viterbi`` before issue 15: for
    each sequence, frame and state j, the predecessors i in increasing order, replacing the
    best one only when ``delta[i] + log a[i, j]`` is strictly greater (from -inf, i = 0);
    then ``+ loglik[t, j]``; the final state is the lowest j among equal maxima. Stops at the
    first sequence with no path of non-zero probability (or empty) and returns its index."""
    T, K = loglik.shape
    log_a = log_transmat_t.T
    path = np.full(T, -7, dtype=np.intp)
    logprob = np.full(len(offsets) - 1, 0.5)
    for n in range(len(offsets) - 1):
        t0, t1 = offsets[n], offsets[n + 1]
        if t1 <= t0:
            return n, path, logprob
        delta = log_startprob + loglik[t0]
        back = np.zeros((t1 - t0, K), dtype=np.intp)
        for t in range(t0 + 1, t1):
            best, arg = np.full(K, -np.inf), np.zeros(K, dtype=np.intp)
            for i in range(K):
                v = delta[i] + log_a[i]
                better = v > best
                best[better], arg[better] = v[better], i
            delta = best + loglik[t]
            back[t - t0] = arg
        best, s = -np.inf, 0
        for j in range(K):
            if delta[j] > best:
                best, s = delta[j], j
        if best == -np.inf:
            return n, path, logprob
        logprob[n] = best
        path[t1 - 1] = s
        for t in range(t1 - 1, t0, -1):
            path[t - 1] = back[t - t0, path[t]]
    return STATUS_OK, path, logprob


def log(p):
    with np.errstate(divide="ignore"):
        return np.log(p)


def run_kernel(loglik, offsets, log_startprob, log_tt):
    args = (loglik, offsets, log_startprob, log_tt)
    copies = [a.copy() for a in args]
    path = np.full(len(loglik), -7, dtype=np.intp)
    logprob = np.full(len(offsets) - 1, 0.5)
    status = _hmm.viterbi(*args, path, logprob)
    for a, c in zip(args, copies, strict=True):  # nothing the caller passed is mutated
        assert a.tobytes() == c.tobytes()
    return status, path, logprob


def assert_same(loglik, lengths, log_startprob, log_transmat):
    """Kernel == reference, bit for bit, for every loop and vector level: the status, and the
    path and log-probability of every sequence before the first impossible one (the
    reference stops there; the kernel leaves the impossible sequences' frames and entries as
    they were). Returns the kernel's (status, path, logprob), the same for all."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.intp)
    args = (np.ascontiguousarray(loglik, dtype=float), offsets,
            np.ascontiguousarray(log_startprob, dtype=float),
            np.ascontiguousarray(np.asarray(log_transmat, dtype=float).T))
    ref_status, ref_path, ref_logprob = viterbi_reference(*args)
    done = len(lengths) if ref_status == STATUS_OK else ref_status
    f = int(np.sum(lengths[:done]))
    results = []
    old = _hmm._viterbi_tune()
    try:
        for level, mode in CONFIGS:
            _hmm._viterbi_tune(level, mode)
            status, path, logprob = run_kernel(*args)
            assert status == ref_status, (level, mode)
            np.testing.assert_array_equal(path[:f], ref_path[:f], err_msg=f"{(level, mode)}")
            assert logprob[:done].tobytes() == ref_logprob[:done].tobytes(), (level, mode)
            if results:  # beyond the reference's stop too, every loop writes the same
                assert path.tobytes() == results[0][1].tobytes()
                assert logprob.tobytes() == results[0][2].tobytes()
            results.append((status, path, logprob))
    finally:
        _hmm._viterbi_tune(*old)
    return results[0]


def random_case(rng, K, lengths, kind):
    T = int(np.sum(lengths))
    if kind == "dense":
        loglik = rng.normal(size=(T, K)) * 3
        log_sp = np.log(rng.dirichlet(np.ones(K)))
        log_a = np.log(rng.dirichlet(np.ones(K), size=K))
    elif kind == "ties":  # integer scores: many exact ties, equal rows in the transitions
        loglik = np.round(rng.normal(size=(T, K)))
        log_sp = np.round(rng.normal(size=K))
        log_a = np.round(rng.normal(size=(K, K)))
        log_a[rng.random(K) < 0.5] = log_a[0]
    elif kind == "forbidden":  # -inf in transitions, start and emissions
        loglik = rng.normal(size=(T, K))
        loglik[rng.random((T, K)) < 0.2] = -np.inf
        log_sp = rng.normal(size=K)
        log_sp[rng.random(K) < 0.5] = -np.inf
        log_sp[rng.integers(K)] = 0.0
        log_a = np.round(rng.normal(size=(K, K)), 1)
        log_a[rng.random((K, K)) < 0.5] = -np.inf
        log_a[np.arange(K), rng.integers(K, size=K)] = -1.0
    else:  # left-to-right
        a = np.triu(rng.dirichlet(np.ones(K), size=K)) + np.eye(K)
        log_a = log(a / a.sum(axis=1, keepdims=True))
        log_sp = log(np.eye(K)[0])
        loglik = rng.normal(size=(T, K))
    return loglik, log_sp, log_a


KINDS = ["dense", "ties", "forbidden", "left-to-right"]


@pytest.mark.parametrize("K", [1, 2, 3, 7, 8, 9, 16, 17, 33])
def test_random_mixed_lengths_match_reference(K):
    rng = np.random.default_rng(K)
    for kind in KINDS:
        for _ in range(3):
            n = int(rng.integers(1, 21))
            lengths = rng.choice([1, 2, 3, 5, 9, 40], size=n)
            assert_same(*_case(rng, K, lengths, kind))


def test_long_and_short_unsorted_in_one_call():
    # Long, short, single-frame and two-frame sequences in no particular order, more than one
    # lockstep block, sequences ending while others go on.
    rng = np.random.default_rng(1)
    lengths = np.array([1, 300, 2, 7, 1, 150, 3, 2, 299, 11, 1, 1, 64, 2, 5, 40, 1, 8, 2])
    for K in (1, 2, 5, 8, 20):
        for kind in KINDS:
            status, path, logprob = assert_same(*_case(rng, K, lengths, kind))
            if kind == "dense":
                assert status == STATUS_OK
                assert np.all((path >= 0) & (path < K))


def _case(rng, K, lengths, kind):
    loglik, log_sp, log_a = random_case(rng, K, lengths, kind)
    return loglik, lengths, log_sp, log_a


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.lists(st.integers(1, 30), min_size=1, max_size=20),
       st.sampled_from(KINDS), st.integers(0, 2**32 - 1))
def test_any_lengths_any_loop_match_reference(K, lengths, kind, seed):
    rng = np.random.default_rng(seed)
    lengths = np.array(lengths)
    assert_same(*_case(rng, K, lengths, kind))


def test_ties_go_to_the_lowest_state():
    # All scores equal: every predecessor ties, every final state ties: the path is all 0.
    for K in (1, 2, 5, 8, 16, 19):
        lengths = np.array([4, 1, 9, 2, 3, 6, 5, 7, 8, 2])
        loglik = np.zeros((lengths.sum(), K))
        status, path, logprob = assert_same(
            loglik, lengths, np.full(K, -np.log(K)), np.full((K, K), -np.log(K)))
        assert status == STATUS_OK and np.all(path == 0)
    # Ties between two predecessors of different lanes: state 2 reachable from 1 and 3 with
    # the same score; 1 must win.
    K = 4
    log_a = np.full((K, K), -np.inf)
    log_a[[0, 1, 3, 2], [1, 2, 2, 2]] = 0.0
    log_a[0, 3] = 0.0
    loglik = np.zeros((3 * 9, K))
    log_sp = log(np.eye(K)[0])
    status, path, _ = assert_same(loglik, np.full(9, 3), log_sp, log_a)
    assert status == STATUS_OK
    np.testing.assert_array_equal(path.reshape(9, 3), np.tile([0, 1, 2], (9, 1)))


@pytest.mark.parametrize("K", [1, 2, 4, 12])
def test_first_impossible_sequence_in_the_callers_order(K):
    # Sequences 3 (short) and 6 (long) are impossible: a frame where every state has
    # log-likelihood -inf. Sorted by length, 6 would come first; the status is 3.
    rng = np.random.default_rng(K)
    lengths = np.array([5, 1, 30, 2, 7, 1, 50, 4, 3, 9, 2, 1])
    loglik, log_sp, log_a = random_case(rng, K, lengths, "dense")
    off = np.concatenate([[0], np.cumsum(lengths)])
    loglik[off[3] + 1] = -np.inf
    loglik[off[6] + 20] = -np.inf
    status, path, logprob = assert_same(loglik, lengths, log_sp, log_a)
    assert status == 3
    # The impossible sequences' frames and entries are left as they were.
    assert np.all(path[off[3]:off[4]] == -7) and np.all(path[off[6]:off[7]] == -7)
    assert logprob[3] == logprob[6] == 0.5
    # Only the long one impossible, at its last frame.
    loglik[off[3] + 1] = 0.0
    loglik[off[6] + 20] = 0.0
    loglik[off[7] - 1] = -np.inf
    status, *_ = assert_same(loglik, lengths, log_sp, log_a)
    assert status == 6


@pytest.mark.parametrize("K", [1, 3, 10])
def test_impossible_start_and_empty_sequences(K):
    rng = np.random.default_rng(K)
    lengths = np.array([3, 4, 2, 6, 1])
    loglik, log_sp, log_a = random_case(rng, K, lengths, "dense")
    log_sp = np.full(K, -np.inf)  # no state may start: every sequence is impossible
    status, *_ = assert_same(loglik, lengths, log_sp, log_a)
    assert status == 0
    # An empty sequence counts as impossible.
    lengths = np.array([3, 4, 0, 6, 1, 0])
    loglik, log_sp, log_a = random_case(rng, K, lengths, "dense")
    status, *_ = assert_same(loglik, lengths, log_sp, log_a)
    assert status == 2
    # No sequence at all.
    offsets = np.zeros(1, dtype=np.intp)
    status = _hmm.viterbi(np.empty((0, K)), offsets, log_sp, np.zeros((K, K)),
                          np.empty(0, dtype=np.intp), np.empty(0))
    assert status == STATUS_OK


def test_wide_state_spaces_use_wider_back_pointers():
    # K > 256: back-pointers stored as uint16; the reference still agrees.
    rng = np.random.default_rng(5)
    K = 300
    lengths = np.array([4, 1, 6, 3])
    assert_same(*_case(rng, K, lengths, "dense"))
    assert_same(*_case(rng, K, lengths, "forbidden"))


def test_tune_hook_checks_its_mode():
    with pytest.raises(ValueError, match="mode must be"):
        _hmm._viterbi_tune(mode=3)
    assert _hmm._viterbi_tune(level=99)[0] <= CPU_LEVEL  # capped at what the CPU runs
    assert _hmm._viterbi_tune()[0] == CPU_LEVEL
    _hmm._viterbi_tune(CPU_LEVEL, -1)
