"""The additive-statistics mixin (emx._stats) and the statistics classes built on it."""

from dataclasses import dataclass

import numpy as np
import pytest

from emx import gaussian as G
from emx._stats import AdditiveStats, fixed
from emx.factor import FactorStats
from emx.mixture import MixtureStats


@dataclass
class Inner(AdditiveStats):
    n: float
    a: np.ndarray


@dataclass
class Outer(AdditiveStats):
    loglik: float
    counts: np.ndarray
    inner: Inner
    shift: np.ndarray = fixed()
    extra: np.ndarray | None = None
    seen: set | None = None


def _outer(scale, extra=None, shift=None):
    return Outer(
        1.5 * scale, np.arange(3.0) * scale, Inner(2.0 * scale, np.ones((2, 2)) * scale),
        np.zeros(3) if shift is None else shift, extra, {int(scale)},
    )


def test_add_is_fieldwise_and_leaves_operands_alone():
    x, y = _outer(1.0), _outer(10.0)
    x_counts, y_inner_a = x.counts.copy(), y.inner.a.copy()
    z = x + y
    assert z.loglik == 16.5
    np.testing.assert_array_equal(z.counts, np.arange(3.0) * 11)
    assert z.inner.n == 22.0
    np.testing.assert_array_equal(z.inner.a, np.full((2, 2), 11.0))
    assert z.extra is None  # None + None
    assert z.seen == {1, 10}
    assert z.shift is x.shift
    np.testing.assert_array_equal(x.counts, x_counts)
    np.testing.assert_array_equal(y.inner.a, y_inner_a)
    assert z.counts is not x.counts and z.inner is not x.inner


def test_iadd_in_place_for_arrays_and_nested():
    x, y = _outer(1.0, extra=np.ones(2)), _outer(2.0, extra=np.full(2, 3.0))
    counts, inner, inner_a, extra = x.counts, x.inner, x.inner.a, x.extra
    out = x.__iadd__(y)
    assert out is x
    assert x.counts is counts and x.inner is inner and x.inner.a is inner_a
    assert x.extra is extra
    np.testing.assert_array_equal(x.counts, np.arange(3.0) * 3)
    np.testing.assert_array_equal(x.inner.a, np.full((2, 2), 3.0))
    np.testing.assert_array_equal(x.extra, np.full(2, 4.0))
    assert x.loglik == 4.5 and x.inner.n == 6.0
    np.testing.assert_array_equal(y.counts, np.arange(3.0) * 2)  # right operand untouched


def test_iadd_rebinds_when_in_place_is_impossible():
    @dataclass
    class S(AdditiveStats):
        v: np.ndarray

    ints = np.arange(3)
    s = S(ints)
    s += S(np.full(3, 0.5))  # int + float: a new float array, the caller's ints untouched
    np.testing.assert_array_equal(s.v, [0.5, 1.5, 2.5])
    np.testing.assert_array_equal(ints, [0, 1, 2])
    ro = np.zeros(2)
    ro.flags.writeable = False
    t = S(ro)
    t += S(np.ones(2))
    np.testing.assert_array_equal(t.v, [1.0, 1.0])
    np.testing.assert_array_equal(ro, [0.0, 0.0])


def test_sum_of_a_list():
    parts = [_outer(float(i)) for i in range(1, 5)]
    total = sum(parts)
    assert total.loglik == pytest.approx(1.5 * 10)
    np.testing.assert_array_equal(total.counts, np.arange(3.0) * 10)
    np.testing.assert_array_equal(parts[0].counts, np.arange(3.0))  # first not modified


def test_fixed_fields_must_match():
    x, y = _outer(1.0), _outer(2.0, shift=np.ones(3))
    with pytest.raises(ValueError, match="different 'shift'"):
        x + y
    before = x.counts.copy()
    with pytest.raises(ValueError, match="different 'shift'"):
        x += y
    np.testing.assert_array_equal(x.counts, before)  # a failed += changes nothing


def test_none_with_value_raises_before_changing_anything():
    x, y = _outer(1.0), _outer(2.0, extra=np.ones(2))
    before = x.counts.copy()
    with pytest.raises(ValueError, match="'extra' is None in one operand"):
        x + y
    with pytest.raises(ValueError, match="'extra' is None in one operand"):
        x += y
    np.testing.assert_array_equal(x.counts, before)


def test_nested_fixed_mismatch_changes_nothing():
    @dataclass
    class In(AdditiveStats):
        v: np.ndarray
        at: float = fixed()

    @dataclass
    class Out(AdditiveStats):
        w: np.ndarray
        inner: In

    x = Out(np.zeros(2), In(np.zeros(2), 0.0))
    with pytest.raises(ValueError, match="different 'at'"):
        x += Out(np.ones(2), In(np.ones(2), 1.0))
    np.testing.assert_array_equal(x.w, [0.0, 0.0])


def test_other_types_are_not_added():
    with pytest.raises(TypeError):
        _outer(1.0) + 3
    with pytest.raises(TypeError):
        _outer(1.0) + Inner(1.0, np.ones((2, 2)))


# ---------------------------------------------------------------------------- the emx classes
def _gauss_stats(rng, X, K, shift, ct="full"):
    W = rng.uniform(size=(len(X), K))
    return G.GaussianStats.from_weights(X, W, shift, ct), W


@pytest.mark.parametrize("ct", G.COVARIANCE_TYPES)
def test_gaussian_stats_chunks_add_to_the_whole(ct):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    W = rng.uniform(size=(300, 2))
    shift = rng.normal(size=(2, 3))
    whole = G.GaussianStats.from_weights(X, W, shift, ct)
    a = G.GaussianStats.from_weights(X[:100], W[:100], shift, ct)
    b = G.GaussianStats.from_weights(X[100:], W[100:], shift, ct)
    for total in (a + b, sum([a, b])):
        for name in ("post", "sum1", "sum2"):
            np.testing.assert_allclose(getattr(total, name), getattr(whole, name), rtol=1e-12)
        assert total.shift is shift
    a += b
    np.testing.assert_allclose(a.sum2, whole.sum2, rtol=1e-12)
    with pytest.raises(ValueError, match="different shifts"):
        a + G.GaussianStats.from_weights(X, W, shift + 1.0, ct)


def test_mixture_and_factor_stats_add():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 2))
    shift = np.zeros((2, 2))
    g1, _ = _gauss_stats(rng, X, 2, shift)
    g2, _ = _gauss_stats(rng, X, 2, shift)
    m = MixtureStats(-3.0, 10.0, g1) + MixtureStats(-5.0, 30.0, g2)
    assert m.loglik == pytest.approx(-8.0 / 40.0)
    np.testing.assert_allclose(m.gaussian.post, g1.post + g2.post)
    s = np.zeros(2)
    f = FactorStats(2.0, np.ones(2), np.eye(2), s, -1.0)
    f += FactorStats(3.0, np.ones(2), np.eye(2), s, -2.0)
    assert f.count == 5.0 and f.loglik == -3.0
    np.testing.assert_array_equal(f.sum2, 2 * np.eye(2))
    with pytest.raises(ValueError, match="different 'shift'"):
        f + FactorStats(1.0, np.ones(2), np.eye(2), np.ones(2))
