"""The compiled kernels cannot be driven out of bounds, and ``lengths`` is validated exactly.

Every entry point of ``_hmm``, ``_gauss`` and ``_missing`` is called directly with bad offsets
(not starting at 0, decreasing, past the end, wrapped around), wrong shapes and out-of-range
indices: each must raise a ValueError naming the kernel, before it writes any output. Every
entry point returns the shared status (STATUS_OK = -1 on success) and takes no scratch. The
models refuse ``lengths`` whose int64 sum wraps around (issue 16, finding 1), and a batch of
hostile calls runs in a child process so that a regression that crashes fails one
test instead of killing pytest.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from emx import GaussianHMM
from emx._core import STATUS_NOT_PD, STATUS_OK, _gauss, _hmm, _missing, check_ok
from emx._validation import check_lengths, offsets_from_lengths

T, K = 7, 3
IP = np.intp


def _sparse():
    src = np.array([0, 0, 1, 1, 2, 2], dtype=IP)
    dst = np.array([0, 1, 1, 2, 2, 0], dtype=IP)
    return src, dst, np.full(6, 0.5)


def _valid_calls():
    """name -> (kernel, list of positional arguments) of a call that succeeds (status -1).

    Sequences of lengths 3 and 4 (offsets [0, 3, 7]) over K = 3 states."""
    rng = np.random.default_rng(0)
    ll = rng.normal(size=(T, K))
    off = np.array([0, 3, T], dtype=IP)
    sp = np.full(K, 1.0 / K)
    tm = np.full((K, K), 1.0 / K)
    src, dst, prob = _sparse()
    return {
        "forward_backward": (_hmm.forward_backward, [
            ll, off, sp, tm, np.empty((T, K)), np.empty((K, K)), np.empty(2), np.empty(K)]),
        "forward_loglik": (_hmm.forward_loglik, [ll, off, sp, tm, np.empty(2)]),
        "viterbi": (_hmm.viterbi, [
            ll, off, np.log(sp), np.log(tm), np.empty(T, dtype=IP), np.empty(2)]),
        "forward_backward_edges": (_hmm.forward_backward_edges, [
            ll, off, sp, src, dst, prob, np.empty((T, K)), np.empty(6), np.empty(2)]),
        "viterbi_edges": (_hmm.viterbi_edges, [
            ll, off, np.log(sp), src, dst, np.log(prob), np.empty(T, dtype=IP), np.empty(2)]),
        "forward_loglik_log_edges": (_hmm.forward_loglik_log_edges, [
            ll, off, np.log(sp), src, dst, np.log(prob), np.empty(2)]),
    }


OFFSETS = 1  # position of the offsets in every call above
OUTPUTS = {  # positions of the outputs (the last arguments: IN first, then OUT)
    "forward_backward": (4, 5, 6, 7), "forward_loglik": (4,), "viterbi": (4, 5),
    "forward_backward_edges": (6, 7, 8), "viterbi_edges": (6, 7),
    "forward_loglik_log_edges": (6,),
}
EDGE_KERNELS = ("forward_backward_edges", "viterbi_edges", "forward_loglik_log_edges")
HMM_KERNELS = ("forward_backward", "forward_loglik", "viterbi", *EDGE_KERNELS)

BAD_OFFSETS = {
    "not starting at 0": [1, 3, T],
    "negative start": [-1, 3, T],
    "decreasing": [0, 5, 3, T],
    "past the end": [0, 3, T + 1],
    "short of the end": [0, 3, T - 1],
    "beyond the end then back": [0, 2**40, T],
    "wrapped around (4 x 2**62)": np.cumsum([0, 2**62, 2**62, 2**62, 2**62, T]),
    "wrapped to -1": [0, -1, T],
    "empty": [],
}


@pytest.mark.parametrize("name", HMM_KERNELS)
def test_valid_call_succeeds(name):
    kernel, args = _valid_calls()[name]
    assert kernel(*args) == STATUS_OK == -1


@pytest.mark.parametrize("name", HMM_KERNELS)
def test_kernels_take_no_scratch(name):
    # The work space the callers used to pass (frame weights, scales, back-pointers) is the
    # kernels' own: one array more is a TypeError, and the results do not depend on what the
    # output arrays held on entry.
    kernel, args = _valid_calls()[name]
    with pytest.raises(TypeError):
        kernel(*args, np.empty((T, K)))
    outs = OUTPUTS[name]
    results = []
    for fill in (0.0, np.nan):
        kernel, args = _valid_calls()[name]
        for i in outs:
            args[i].fill(fill if args[i].dtype == np.float64 else 7)
        assert kernel(*args) == STATUS_OK
        results.append([args[i].copy() for i in outs])
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", list(BAD_OFFSETS))
@pytest.mark.parametrize("name", HMM_KERNELS)
def test_bad_offsets_raise_before_writing(name, case):
    kernel, args = _valid_calls()[name]
    args[OFFSETS] = np.asarray(BAD_OFFSETS[case], dtype=IP)
    # Fill every output with a sentinel: nothing may be written when the arguments are bad.
    outs = [a for a in args[2:] if isinstance(a, np.ndarray) and a.dtype == np.float64]
    for a in outs:
        a.fill(12345.0)
    with pytest.raises(ValueError, match=rf"^{name}: offsets"):
        kernel(*args)
    for a in outs:
        assert np.all(a == 12345.0)


def test_offsets_may_hold_empty_sequences_which_report_a_status():
    # Non-decreasing offsets with a repeated value are in bounds: the empty sequence is
    # reported as a status (the Python layer never builds one: lengths are positive).
    for name in HMM_KERNELS:
        kernel, args = _valid_calls()[name]
        args[OFFSETS] = np.array([0, 3, 3, T], dtype=IP)
        for i, a in enumerate(args):
            if isinstance(a, np.ndarray) and a.shape == (2,):
                args[i] = np.empty(3)  # one log-likelihood per sequence
        assert kernel(*args) == 1, name


def _shape_mutations(args):
    """(index, replacement) pairs: each array argument but the offsets with a wrong shape (a
    row too few, or a column too few or too many; 1-D: one entry too few or too many)."""
    for i, a in enumerate(args):
        if i == OFFSETS or not isinstance(a, np.ndarray):
            continue
        shapes = []
        if a.ndim == 1:
            shapes = [(a.shape[0] - 1,), (a.shape[0] + 1,)] if a.shape[0] > 0 else [(1,)]
        else:
            r, c = a.shape
            shapes = [(r - 1, c), (r, c - 1), (r, c + 1)]
        for shape in shapes:
            yield i, np.zeros(shape, dtype=a.dtype)


@pytest.mark.parametrize("name", HMM_KERNELS)
def test_wrong_shapes_raise(name):
    kernel, valid = _valid_calls()[name]
    n = 0
    for i, bad in _shape_mutations(valid):
        args = list(valid)
        args[i] = bad
        with pytest.raises(ValueError, match=rf"^{name}: "):
            kernel(*args)
        n += 1
    assert n >= 10


@pytest.mark.parametrize("name", HMM_KERNELS)
def test_no_states_and_none_are_refused(name):
    kernel, args = _valid_calls()[name]
    bad = list(args)
    bad[0] = np.empty((T, 0))
    with pytest.raises(ValueError, match=rf"^{name}: loglik must have at least one state"):
        kernel(*bad)
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray) and not (name == "forward_backward" and i == 7):
            bad = list(args)  # (start_sum, the last argument of forward_backward, is optional)
            bad[i] = None
            with pytest.raises(TypeError, match="must not be None"):
                kernel(*bad)


@pytest.mark.parametrize("name", EDGE_KERNELS)
@pytest.mark.parametrize("which,value", [("src", K), ("src", -1), ("dst", K), ("dst", -5),
                                         ("src", 2**62)])
def test_out_of_range_edges_raise(name, which, value):
    kernel, args = _valid_calls()[name]
    pos = 3 if which == "src" else 4
    edges = args[pos].copy()
    edges[2] = value
    args[pos] = edges
    with pytest.raises(ValueError, match=rf"^{name}: edge 2 .* leaves the states \[0, {K}\)"):
        kernel(*args)


@pytest.mark.parametrize("name", EDGE_KERNELS)
def test_edge_arrays_of_different_lengths_raise(name):
    kernel, args = _valid_calls()[name]
    for pos in (4, 5):
        bad = list(args)
        bad[pos] = args[pos][:-1].copy()
        with pytest.raises(ValueError, match=rf"^{name}: (dst|prob|log_prob) has length 5"):
            kernel(*bad)


@pytest.mark.parametrize("name", ["viterbi", "viterbi_edges"])
def test_viterbi_path_may_share_memory_with_seq_logprob_without_harm(name):
    # The back-pointers live in the kernel's own buffer, so outputs overlapping each other can
    # garble values but never an index: here path and seq_logprob share memory.
    kernel, args = _valid_calls()[name]
    buf = np.zeros(T + 2, dtype=IP)
    args[-2], args[-1] = buf[:T], buf.view(np.float64)[T:]
    assert kernel(*args) == STATUS_OK
    args[-1] = buf.view(np.float64)[:2]
    assert kernel(*args) == STATUS_OK


ALIASES = {  # kernel -> (position of an output, index array position, output name, index name)
    "forward_backward": (6, OFFSETS, "seq_loglik", "offsets"),
    "forward_loglik": (4, OFFSETS, "seq_loglik", "offsets"),
    "viterbi": (5, OFFSETS, "seq_logprob", "offsets"),
    "forward_backward_edges": (7, 3, "xi_edges", "src"),
    "viterbi_edges": (7, 4, "seq_logprob", "dst"),
    "forward_loglik_log_edges": (6, 3, "seq_loglik", "src"),
}


@pytest.mark.parametrize("name", HMM_KERNELS)
def test_outputs_sharing_memory_with_index_arrays_raise(name):
    # Writing such an output would change the offsets or edges the loops index with.
    kernel, args = _valid_calls()[name]
    out, idx, out_name, idx_name = ALIASES[name]
    n = args[out].shape[0]
    index = np.zeros(max(n, args[idx].shape[0]), dtype=IP)
    index[: args[idx].shape[0]] = args[idx]
    args[idx] = index[: args[idx].shape[0]]
    args[out] = index.view(np.float64)[:n]
    with pytest.raises(ValueError, match=rf"^{name}: {out_name} shares memory with {idx_name}"):
        kernel(*args)


def test_sample_states_checks_its_arguments():
    cdf = np.cumsum(np.full(K, 1.0 / K))
    tcdf = np.cumsum(np.full((K, K), 1.0 / K), axis=1)
    u = np.random.default_rng(0).random(5)
    states = np.empty(5, dtype=IP)
    assert _hmm.sample_states(cdf, tcdf, u, -1, states) == STATUS_OK
    assert np.all((states >= 0) & (states < K))
    _hmm.sample_states(cdf, tcdf, u, K - 1, states)
    assert states[0] == K - 1
    cases = [
        ((cdf, tcdf, u, K, states), r"first_state must be < n_states = 3"),
        ((cdf, tcdf, u, 2**62, states), r"first_state"),
        ((cdf, tcdf[:2], u, -1, states), r"transmat_cdf has shape \(2, 3\)"),
        ((cdf, np.ascontiguousarray(tcdf[:, :2]), u, -1, states), r"transmat_cdf has shape"),
        ((cdf, tcdf, u[:4], -1, states), r"uniforms has length 4, expected at least 5"),
        ((np.empty(0), np.empty((0, 0)), u, -1, states), r"startprob_cdf must have at least one"),
    ]
    for args, msg in cases:
        with pytest.raises(ValueError, match=rf"^sample_states: {msg}"):
            _hmm.sample_states(*args)


# ------------------------------------------------------------------------------ _missing
MISSING_OUTS = ("loglik", "fill", "post", "sum1", "sum2")


def _missing_call():
    """A valid conditional_pass call, (positional IN arrays, keyword arrays): 6 rows in two
    patterns (runs [0, 3) and [3, 6)), every output asked for."""
    rng = np.random.default_rng(1)
    D = 3
    X = rng.normal(size=(6, D))
    X[3:, 1] = np.nan
    A = rng.normal(size=(D, D))
    cov = A @ A.T + D * np.eye(D)
    args = [X, np.arange(6, dtype=IP), np.array([0, 3, 6], dtype=IP), np.zeros(D), cov]
    kw = {"weights": np.ones(6), "shift": np.zeros(D), "loglik": np.empty(6),
          "fill": np.empty((6, D)), "post": np.zeros(1), "sum1": np.zeros(D),
          "sum2": np.zeros((D, D))}
    return args, kw


def test_conditional_pass_valid_call():
    args, kw = _missing_call()
    assert _missing.conditional_pass(*args, **kw) == STATUS_OK
    assert kw["post"][0] == 6.0  # every row counted once


def test_conditional_pass_reports_a_covariance_that_is_not_positive_definite():
    args, kw = _missing_call()
    args[4] = -np.eye(3)
    assert _missing.conditional_pass(*args, **kw) == STATUS_NOT_PD == -2


def test_conditional_pass_options_are_keyword_only():
    args, kw = _missing_call()
    with pytest.raises(TypeError):
        _missing.conditional_pass(*args, kw["weights"])


BAD_STARTS = {
    "not starting at 0": ([1, 3, 6], r"starts must start at 0"),
    "negative": ([-3, 3, 6], r"starts must start at 0"),
    "decreasing": ([0, 4, 3, 6], r"starts must be non-decreasing"),
    "past the end": ([0, 3, 7], r"starts must end at len\(order\) = 6"),
    "wrapped": (list(np.cumsum([0, 2**62, 2**62, 2**62, 2**62, 6])),
                r"starts must be non-decreasing"),
    "empty": ([], r"starts must have n_runs \+ 1 >= 1 entries"),
}


@pytest.mark.parametrize("case", list(BAD_STARTS))
def test_conditional_pass_bad_starts(case):
    starts, msg = BAD_STARTS[case]
    args, kw = _missing_call()
    args[2] = np.asarray(starts, dtype=IP)
    kw["sum1"].fill(7.0)
    with pytest.raises(ValueError, match=rf"^conditional_pass: {msg}"):
        _missing.conditional_pass(*args, **kw)
    assert np.all(kw["sum1"] == 7.0) and kw["post"][0] == 0.0  # nothing written


@pytest.mark.parametrize("row", [-1, 6, 2**62])
def test_conditional_pass_row_index_out_of_range(row):
    args, kw = _missing_call()
    args[1] = args[1].copy()
    args[1][4] = row
    with pytest.raises(ValueError, match=rf"^conditional_pass: order\[4\] = {row} is not a row"):
        _missing.conditional_pass(*args, **kw)


def test_conditional_pass_wrong_shapes():
    valid, valid_kw = _missing_call()
    n = 0
    for i in (3, 4):
        for bad in _shape_mutations_any(valid[i]):
            args = list(valid)
            args[i] = bad
            with pytest.raises(ValueError, match=r"^conditional_pass: \w+ has (shape|length)"):
                _missing.conditional_pass(*args, **valid_kw)
            n += 1
    for name in valid_kw:
        for bad in _shape_mutations_any(valid_kw[name]):
            kw = dict(valid_kw, **{name: bad})
            with pytest.raises(ValueError, match=rf"^conditional_pass: {name} has (shape|length)"):
                _missing.conditional_pass(*valid, **kw)
            n += 1
    assert n >= 18
    args = list(valid)
    args[0] = np.empty((6, 0))
    with pytest.raises(ValueError, match="at least one feature"):
        _missing.conditional_pass(*args, **valid_kw)


def _shape_mutations_any(a):
    if a.ndim == 1:
        return [np.zeros(a.shape[0] - 1), np.zeros(a.shape[0] + 1)]
    r, c = a.shape
    return [np.zeros((r - 1, c)), np.zeros((r, c + 1))]


def test_conditional_pass_computes_exactly_the_outputs_given():
    args, kw = _missing_call()
    assert _missing.conditional_pass(*args, **kw) == STATUS_OK
    for name in ("loglik", "fill"):
        out = np.full_like(kw[name], 12345.0)
        assert _missing.conditional_pass(*args, **{name: out}) == STATUS_OK
        np.testing.assert_array_equal(out, kw[name])  # the same numbers alone as together
    moments = {k: np.zeros_like(kw[k]) if k in ("post", "sum1", "sum2") else kw[k]
               for k in ("weights", "shift", "post", "sum1", "sum2")}
    assert _missing.conditional_pass(*args, **moments) == STATUS_OK
    for k in ("post", "sum1", "sum2"):
        np.testing.assert_array_equal(moments[k], kw[k])
    assert _missing.conditional_pass(*args) == STATUS_OK  # nothing asked, nothing done


@pytest.mark.parametrize("missing", ["weights", "shift", "sum1", "sum2"])
def test_conditional_pass_moments_come_as_a_group(missing):
    args, kw = _missing_call()
    part = {k: kw[k] for k in ("weights", "shift", "post", "sum1", "sum2") if k != missing}
    with pytest.raises(ValueError, match=rf"^conditional_pass: {missing} is required with post"):
        _missing.conditional_pass(*args, **part)
    del part["post"]
    with pytest.raises(ValueError, match=r"^conditional_pass: \w+ was given without post"):
        _missing.conditional_pass(*args, **part)


def test_conditional_pass_outputs_sharing_memory_with_order_raise():
    args, kw = _missing_call()
    order = np.arange(6, dtype=IP)
    args[1] = order
    kw["loglik"] = order.view(np.float64)  # loglik written over the row indices
    with pytest.raises(ValueError, match=r"^conditional_pass: loglik shares memory with order"):
        _missing.conditional_pass(*args, **kw)
    args, kw = _missing_call()
    args[2] = args[2].copy()
    kw["sum1"] = args[2].view(np.float64)  # 3 entries, as D = 3
    with pytest.raises(ValueError, match=r"^conditional_pass: sum1 shares memory with starts"):
        _missing.conditional_pass(*args, **kw)


def test_conditional_pass_rows_must_share_their_runs_pattern():
    args, kw = _missing_call()
    args[0] = args[0].copy()
    args[0][4, 1] = 1.0  # row 4 is complete but sits in the run of rows missing feature 1
    with pytest.raises(ValueError, match=r"row 4 does not have the missingness pattern .*row 3"):
        _missing.conditional_pass(*args, **kw)
    args, kw = _missing_call()
    args[0] = args[0].copy()
    args[0][1, 2] = np.nan
    with pytest.raises(ValueError, match=r"row 1 does not have the missingness pattern"):
        _missing.conditional_pass(*args, **kw)


# -------------------------------------------------------------------------------- _gauss
N_ROWS, N_COMP, N_FEAT = 5, 2, 3


def _gauss_calls():
    """name -> (kernel, positional arguments) of valid calls: 5 rows, K = 2, D = 3."""
    rng = np.random.default_rng(3)
    n, k, d = N_ROWS, N_COMP, N_FEAT
    X = rng.normal(size=(n, d))
    Xn = X.copy()
    Xn[1, 2] = np.nan
    means, prec = rng.normal(size=(k, d)), np.ones((k, d))
    chol = np.ascontiguousarray(np.broadcast_to(np.eye(d), (k, d, d)))
    W = rng.dirichlet(np.ones(k), size=n)
    return {
        "log_density_diag": (_gauss.log_density_diag, [X, means, prec, np.zeros(k),
                                                       np.empty((n, k))]),
        "log_density_diag_nan": (_gauss.log_density_diag_nan, [
            Xn, means, prec, np.zeros(k), np.zeros((k, d)), np.empty((n, k))]),
        "log_density_chol": (_gauss.log_density_chol, [X, means, chol, np.zeros(k),
                                                       np.empty((n, k))]),
        "accumulate_moments": (_gauss.accumulate_moments, [
            X, W, np.zeros((1, d)), 0, np.zeros(k), np.zeros((k, d)), np.zeros((k, d))]),
        "accumulate_moments_nan_diag": (_gauss.accumulate_moments_nan_diag, [
            Xn, W, np.zeros((k, d)), np.zeros(k), np.zeros((k, d)), np.zeros((k, d)),
            np.zeros((k, d))]),
        "responsibilities": (_gauss.responsibilities, [
            rng.normal(size=(n, k)), np.log(np.full(k, 0.5)), np.empty((n, 1))]),
    }


GAUSS_KERNELS = tuple(_gauss_calls())


@pytest.mark.parametrize("name", GAUSS_KERNELS)
def test_gauss_valid_call_returns_status_ok(name):
    kernel, args = _gauss_calls()[name]
    assert kernel(*args) == STATUS_OK


def _gauss_mutations(a):
    """Wrong shapes of one array: each dimension one too few and one too many."""
    for axis in range(a.ndim):
        for delta in (-1, 1):
            shape = list(a.shape)
            shape[axis] += delta
            if shape[axis] >= 0:
                yield np.zeros(shape)


@pytest.mark.parametrize("name", GAUSS_KERNELS)
def test_gauss_wrong_shapes_raise_before_writing(name):
    kernel, valid = _gauss_calls()[name]
    n = 0
    for i, a in enumerate(valid):
        if not isinstance(a, np.ndarray) or i == 0:
            continue  # X fixes n and D; every other shape is checked against it
        for bad in _gauss_mutations(a):
            if name == "accumulate_moments" and i == 2 and bad.shape == (2, N_FEAT):
                continue  # shift may be (1, D) or (K, D) = (2, 3): valid
            if name == "accumulate_moments_nan_diag" and i == 2 and bad.shape == (1, N_FEAT):
                continue  # likewise (1, D)
            if name == "responsibilities" and i == 2 and bad.shape == (N_ROWS, 2):
                continue  # two groups of one column: valid
            kernel, args = _gauss_calls()[name]
            args[i] = bad
            outs = [b for b in args if isinstance(b, np.ndarray) and b is not bad
                    and b.flags.writeable and b is not args[0]]
            before = [b.copy() for b in outs]
            with pytest.raises(ValueError, match=rf"^{name}: \w+ has"):
                kernel(*args)
            for b, c in zip(outs, before, strict=True):
                np.testing.assert_array_equal(b, c)  # nothing written
            n += 1
    assert n >= 5


@pytest.mark.parametrize("name", GAUSS_KERNELS)
def test_gauss_none_is_refused(name):
    kernel, valid = _gauss_calls()[name]
    for i, a in enumerate(valid):
        if isinstance(a, np.ndarray):
            args = list(valid)
            args[i] = None
            with pytest.raises(TypeError, match="must not be None"):
                kernel(*args)


def test_gauss_bad_kind_and_groups_raise():
    kernel, args = _gauss_calls()["accumulate_moments"]
    for kind in (-1, 3):
        bad = list(args)
        bad[3] = kind
        with pytest.raises(ValueError, match=r"^accumulate_moments: kind must be 0"):
            kernel(*bad)
    kernel, args = _gauss_calls()["responsibilities"]
    for log_norm in (np.empty((N_ROWS, 0)), np.empty((N_ROWS, 3))):
        with pytest.raises(ValueError, match=r"^responsibilities: log_norm has \d+ columns"):
            kernel(args[0], args[1], log_norm)


def test_gauss_kernels_take_no_scratch():
    for name in ("log_density_chol", "accumulate_moments", "accumulate_moments_nan_diag"):
        kernel, args = _gauss_calls()[name]
        with pytest.raises(TypeError):
            kernel(*args, np.empty((384, N_FEAT)))


def test_check_ok_accepts_only_status_ok():
    check_ok(STATUS_OK)
    for status in (0, 3, STATUS_NOT_PD):
        with pytest.raises(RuntimeError, match=f"status {status}"):
            check_ok(status)


# ------------------------------------------------------------------------------- lengths
N = 10
GOOD_LENGTHS = [[N], [3, 7], np.array([3, 7], dtype=np.uint8), np.array([5, 5], np.uint64),
                [np.int32(4), np.int64(6)], np.array([2**3, 2], dtype=object), (1,) * N,
                [np.int32(5)] * 2, (np.uint16(9), np.uint16(1)), list(range(1, 5))]


@pytest.mark.parametrize("lengths", GOOD_LENGTHS, ids=repr)
def test_check_lengths_accepts_integers(lengths):
    before = np.array(lengths, dtype=object).copy()
    out = check_lengths(lengths, N)
    assert out.dtype == np.int64 and out.sum() == N
    assert np.array_equal(np.array(lengths, dtype=object), before)  # input untouched
    np.testing.assert_array_equal(offsets_from_lengths(out),
                                  np.concatenate([[0], np.cumsum(out)]))


BAD_LENGTHS = {
    "4 x 2**62 (+N wraps to N)": ([2**62] * 4 + [N], r"lengths must not exceed the 10"),
    "2 x (2**63-1) (+N+2 wraps to N)": ([2**63 - 1] * 2 + [N + 2], r"must not exceed"),
    "int64 array wrapping": (np.array([2**62] * 4 + [N], dtype=np.int64), r"must not exceed"),
    "uint64 2**64-1 (wraps to -1)": (np.array([2**64 - 1, N + 1], np.uint64), r"not exceed"),
    "Python 2**64-1": ([2**64 - 1, N + 1], r"must not exceed"),
    "-1 and N+1": ([-1, N + 1], r"lengths must be positive"),
    "zero": ([0, N], r"lengths must be positive"),
    "beyond int64": ([2**70, N], r"must not exceed"),
    "beyond int64, negative": ([-(2**70), N], r"must be positive"),
    "sum too small": ([3, 3], r"lengths sum to 6 but X has 10 samples"),
    "sum too large": ([6, 6], r"lengths sum to more than the 10 samples"),
    "too many ones": ([1] * (N + 1), r"11 sequences"),
    "float": ([5.0, 5.0], r"lengths must hold integers, got the floating-point value 5.0"),
    "float array": (np.array([5.0, 5.0]), r"floating-point"),
    "nan": ([np.nan, N], r"floating-point"),
    "inf": ([np.inf, N], r"floating-point"),
    "bool": ([True, N - 1], r"lengths must hold integers, got the boolean True"),
    "bool object": (np.array([True, 9], dtype=object), r"got the boolean True"),
    "bool array": (np.array([True, True]), r"got the booleans \[True, True\]"),
    "numpy bools in a list": ([np.bool_(True)] * N, r"got the boolean True"),
    "numpy ints, negative": ([np.int32(-1), np.int32(N + 1)], r"must be positive"),
    "numpy uint64 beyond int64": ([np.uint64(2**64 - 1), np.uint64(N + 1)], r"not exceed"),
    "float object": (np.array([5.0, 5], dtype=object), r"floating-point value 5.0"),
    "numpy float in a list": ([np.float64(5), 5], r"floating-point value 5.0"),
    "string": (["5", "5"], r"lengths must hold integers"),
    "complex": ([5 + 0j, 5], r"lengths must hold integers"),
    "2-D": ([[5, 5]], r"non-empty 1-D"),
    "scalar": (N, r"non-empty 1-D"),
    "empty": ([], r"non-empty 1-D"),
    "ragged": ([[1], [2, 3]], r"lengths must be"),
    "str": ("10", r"lengths must be a 1-D array of ints"),
}


@pytest.mark.parametrize("case", list(BAD_LENGTHS))
def test_check_lengths_refuses(case):
    lengths, msg = BAD_LENGTHS[case]
    with pytest.raises(ValueError, match=msg):
        check_lengths(lengths, N)


def test_offsets_from_lengths_refuses_wrapping_sums():
    with pytest.raises(ValueError, match="largest array index"):
        offsets_from_lengths(np.array([2**62] * 4, dtype=np.int64))
    with pytest.raises(ValueError, match="non-negative"):
        offsets_from_lengths(np.array([-1, 3]))
    with pytest.raises(ValueError, match="non-negative"):
        offsets_from_lengths(np.array([2**64 - 1], dtype=np.uint64))
    with pytest.raises(ValueError, match="1-D array of ints"):
        offsets_from_lengths(np.array([1.0]))


@pytest.fixture(scope="module")
def fitted():
    X = np.random.default_rng(0).normal(size=(N, 2))
    return GaussianHMM(2, n_iter=2, random_state=0).fit(X), X


MODEL_LENGTHS = ["4 x 2**62 (+N wraps to N)", "2 x (2**63-1) (+N+2 wraps to N)",
                 "int64 array wrapping", "uint64 2**64-1 (wraps to -1)", "beyond int64",
                 "float", "nan", "bool"]


@pytest.mark.parametrize("method", ["fit", "decode", "predict", "predict_proba",
                                    "score_samples", "score_sequences", "score"])
@pytest.mark.parametrize("case", MODEL_LENGTHS)
def test_models_refuse_hostile_lengths(fitted, method, case):
    model, X = fitted
    lengths, msg = BAD_LENGTHS[case]
    with pytest.raises(ValueError, match=msg):
        getattr(model, method)(X, lengths)


def test_list_of_sequences_with_hostile_lengths(fitted):
    model, X = fitted
    seqs = [X[:4], X[4:]]
    assert model.score_sequences(seqs, [4, 6]).shape == (2,)
    for lengths in ([2**62] * 4 + [N], [4.0, 6.0], [6, 4], [2**70]):
        with pytest.raises(ValueError, match="lengths was given together with a list"):
            model.score_sequences(seqs, lengths)


# ------------------------------------------------------------------ subprocess crash test
CHILD = textwrap.dedent(r"""
    import faulthandler, sys, warnings
    faulthandler.enable()
    warnings.simplefilter("ignore")
    import numpy as np
    from emx import GaussianHMM
    from emx._core import _hmm, _missing
    sys.path.insert(0, {tests!r})
    import test_kernel_safety as S

    refused, accepted = 0, []

    def hostile(label, fn, *args):
        global refused
        try:
            fn(*args)
        except (ValueError, TypeError):
            refused += 1
        else:
            accepted.append(label)

    # 1. lengths probes of finding 1 against every model entry point
    X = np.random.default_rng(0).normal(size=(S.N, 2))
    model = GaussianHMM(2, n_iter=2, random_state=0).fit(X)
    for case in S.MODEL_LENGTHS + ["Python 2**64-1", "-1 and N+1", "beyond int64, negative"]:
        lengths = S.BAD_LENGTHS[case][0]
        for method in ("fit", "decode", "predict_proba", "score_samples", "score_sequences"):
            hostile(f"{{method}} {{case}}", getattr(model, method), X, lengths)

    # 2. every HMM kernel with bad offsets, and random offsets / edges (seeded fuzz)
    rng = np.random.default_rng(2024)
    for name in S.HMM_KERNELS:
        for case, off in S.BAD_OFFSETS.items():
            kernel, args = S._valid_calls()[name]
            args[S.OFFSETS] = np.asarray(off, dtype=np.intp)
            hostile(f"{{name}} {{case}}", kernel, *args)
        for _ in range(200):
            kernel, args = S._valid_calls()[name]
            off = np.sort(rng.integers(-3, S.T + 3, size=3))
            off = np.concatenate([[0], off if rng.random() < 0.5 else off[::-1]])
            args[S.OFFSETS] = off.astype(np.intp)
            if name in S.EDGE_KERNELS and rng.random() < 0.5:
                args[3] = rng.integers(-2, S.K + 2, size=6).astype(np.intp)
            try:
                kernel(*args)  # in bounds: a status; out of bounds: a ValueError
            except ValueError:
                pass

    # outputs sharing memory with index arrays, and a back-pointer overwritten mid-call
    for name, (out, idx, _, _) in S.ALIASES.items():
        kernel, args = S._valid_calls()[name]
        index = np.zeros(max(args[out].shape[0], args[idx].shape[0]), dtype=np.intp)
        index[: args[idx].shape[0]] = args[idx]
        n = args[out].shape[0]
        args[idx], args[out] = index[: args[idx].shape[0]], index.view(np.float64)[:n]
        hostile(f"{{name}} aliased output", kernel, *args)

    # every _gauss kernel with wrong shapes
    for name in S.GAUSS_KERNELS:
        kernel, valid = S._gauss_calls()[name]
        for i, a in enumerate(valid):
            if isinstance(a, np.ndarray) and i > 0:
                for bad in S._gauss_mutations(a):
                    args = list(valid)
                    args[i] = bad
                    try:
                        kernel(*args)
                    except ValueError:
                        pass

    # 3. conditional_pass with bad starts and rows, and fuzzed run starts
    for case, (starts, _) in S.BAD_STARTS.items():
        args, kw = S._missing_call()
        args[2] = np.asarray(starts, dtype=np.intp)
        hostile(f"conditional_pass {{case}}", lambda *a: _missing.conditional_pass(*a, **kw),
                *args)
    for _ in range(200):
        args, kw = S._missing_call()
        args[1] = rng.integers(-2, 8, size=6).astype(np.intp)
        args[2] = np.concatenate([[0], np.sort(rng.integers(-1, 8, size=2)), [6]]).astype(np.intp)
        try:
            _missing.conditional_pass(*args, **kw)
        except ValueError:
            pass

    # 4. the model still works afterwards (memory intact)
    assert np.isfinite(model.score(X))
    print("refused", refused, "accepted", accepted)
    sys.exit(1 if accepted else 0)
""")


def test_hostile_batch_in_a_child_process_exits_normally():
    import os

    code = CHILD.format(tests=os.path.dirname(os.path.abspath(__file__)))
    # run from tests/ so the child imports the installed emx, not the source folder
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert r.returncode >= 0, f"child killed by signal {-r.returncode}:\n{r.stderr[-3000:]}"
    assert r.returncode == 0, f"child exit {r.returncode}:\n{r.stdout}\n{r.stderr[-3000:]}"
    assert "accepted []" in r.stdout


# ------------------------------------------------------------------------ one convention
def test_every_kernel_module_shares_the_status_codes_and_documents_them():
    from emx._core import _discrete

    modules = (_hmm, _gauss, _missing, _discrete)
    for mod in modules:
        assert (mod.STATUS_OK, mod.STATUS_NOT_PD) == (STATUS_OK, STATUS_NOT_PD) == (-1, -2)
        assert "Status:" in mod.__doc__ and "STATUS_OK (-1)" in mod.__doc__, mod.__name__
        entry_points = [getattr(mod, n) for n in dir(mod)
                        if not n.startswith("_") and callable(getattr(mod, n))]
        assert entry_points, mod.__name__
        for fn in entry_points:
            doc = fn.__doc__ or ""
            # inputs and outputs marked, and the status the caller must check
            assert "IN" in doc and "OUT" in doc and "STATUS_OK" in doc, fn.__name__


def _kernel_calls():
    """(file, line, module, kernel, call node, parent node) of every call of a compiled kernel
    (``_hmm.f(...)``, ``_gauss.f(...)``, ...) in emx's Python source."""
    import ast
    from pathlib import Path

    import emx

    for path in sorted(Path(emx.__file__).parent.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {ch: node for node in ast.walk(tree) for ch in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            f = getattr(node, "func", None)
            if (isinstance(node, ast.Call) and isinstance(f, ast.Attribute)
                    and isinstance(f.value, ast.Name)
                    and f.value.id in ("_hmm", "_gauss", "_missing", "_discrete")):
                yield path.name, node.lineno, f.value.id, f.attr, node, parents[node]


def test_every_kernel_call_in_emx_matches_its_signature_and_checks_the_status():
    # Kernel signatures changed (no scratch, IN then OUT, keyword-only options): a call written
    # against an old signature elsewhere in emx would only fail when that path runs. Bind
    # every call site to the compiled signature, and require that its status is used: passed
    # to check_ok, assigned (then turned into a ValueError), or compared.
    import ast
    import inspect

    from emx._core import _discrete

    modules = {"_hmm": _hmm, "_gauss": _gauss, "_missing": _missing, "_discrete": _discrete}
    n = 0
    for fname, line, mod, name, call, parent in _kernel_calls():
        where = f"{fname}:{line} {mod}.{name}"
        sig = inspect.signature(getattr(modules[mod], name))
        kw = {k.arg: None for k in call.keywords if k.arg is not None}
        if any(isinstance(a, ast.Starred) for a in call.args):
            assert kw.keys() <= sig.parameters.keys(), where  # (count unknown statically)
        else:
            try:
                sig.bind(*range(len(call.args)), **kw)
            except TypeError as e:
                raise AssertionError(f"{where}: {e}") from None
        checked = (isinstance(parent, ast.Call) and getattr(parent.func, "id", "") == "check_ok"
                   or isinstance(parent, (ast.Assign, ast.Compare)))
        assert checked, f"{where}: the kernel's status is not checked"
        n += 1
    assert n >= 20
