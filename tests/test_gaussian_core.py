"""The one Gaussian core (emx.gaussian): every M-step, prior and floor of GaussianHMM, GMMHMM,
GaussianMixture and MixtureOfFactorAnalyzers.

The references below are frozen copies of the formulas the models used before the core was
shared (GMMHMM._update_covars, ._floor and ._log_prior_emission from emx/hmm.py at 32d1270,
gaussian.update_covars and log_prior as GaussianHMM called them, GaussianMixture._estimate),
written out with explicit arguments: the core must give the same values (rtol 1e-12).
"""

import numpy as np
import pytest

from emx import gaussian as G

EMPTY = 1e-10
CTS = ("diag", "spherical", "full", "tied")


# ============================================================================ references
def ref_gmmhmm_update_covars(ct, gs, flat_means, lam, mu0, pri, old, K, M, D):
    kind = "full" if ct == "tied" else ct
    scatter = G._scatter(gs, flat_means, kind)
    d = flat_means - mu0
    n = gs.post
    if ct == "diag":
        alpha = pri["covars_prior"].reshape(K * M, D)
        beta = pri["covars_weight"].reshape(K * M, D)
        c_n = G.weighted_square(lam[:, None], d) + 2 * beta + scatter
        c_d = n[:, None] + 1 + 2 * (alpha + 1)
        new = c_n / np.where(c_d > EMPTY, c_d, 1.0)
        keep = (c_d <= EMPTY) | (n[:, None] <= EMPTY)
        return np.where(keep, old.reshape(K * M, D), new).reshape(K, M, D)
    if ct == "spherical":
        alpha = pri["covars_prior"].reshape(K * M)
        beta = pri["covars_weight"].reshape(K * M)
        c_n = G.weighted_square(lam[:, None], d).sum(axis=1) + 2 * beta + scatter.sum(axis=1)
        c_d = D * (n + 1) + 2 * (alpha + 1)
        new = c_n / np.where(c_d > EMPTY, c_d, 1.0)
        keep = (c_d <= EMPTY) | (n <= EMPTY)
        return np.where(keep, old.reshape(K * M), new).reshape(K, M)
    wd = lam[:, None] * d
    outer = np.einsum("kd,ke->kde", wd, d)
    if ct == "full":
        psi = pri["covars_prior"].reshape(K * M, D, D)
        nu = pri["covars_weight"].reshape(K * M)
        c_n = np.swapaxes(psi, 1, 2) + outer + scatter
        c_d = n + 1 + nu + D + 1
        keep = (c_d <= EMPTY) | (n <= EMPTY)
        new = c_n / np.where(keep, 1.0, c_d)[:, None, None]
        new[keep] = old.reshape(K * M, D, D)[keep]
        return new.reshape(K, M, D, D)
    psi, nu = pri["covars_prior"], pri["covars_weight"]
    n_k = n.reshape(K, M).sum(axis=1)
    c_n = np.swapaxes(psi, 1, 2) + (outer + scatter).reshape(K, M, D, D).sum(axis=1)
    c_d = n_k + M + nu + D + 1
    keep = (c_d <= EMPTY) | (n_k <= EMPTY)
    new = c_n / np.where(keep, 1.0, c_d)[:, None, None]
    new[keep] = old[keep]
    return new


def ref_gmmhmm_floor(ct, covars, fl):
    if ct == "diag":
        return np.maximum(covars, fl)
    if ct == "spherical":
        return np.maximum(covars, fl.mean())
    shape = covars.shape
    D = shape[-1]
    s = 1.0 / np.sqrt(fl)
    scaled = covars.reshape(-1, D, D) * s[:, None] * s[None, :]
    floored = G._floor_eigenvalues(scaled, 1.0)
    return (floored / (s[:, None] * s[None, :])).reshape(shape)


def ref_gmmhmm_log_prior(ct, means, covars, pri, K, M, D):
    """The Gaussian part of GMMHMM._log_prior_emission (no weights term)."""
    lam = pri["means_weight"].reshape(K * M)
    d = means.reshape(K * M, D) - pri["means_prior"].reshape(K * M, D)
    if ct == "diag":
        var = covars.reshape(K * M, D)
        alpha = pri["covars_prior"].reshape(K * M, D)
        beta = pri["covars_weight"].reshape(K * M, D)
        return float(np.sum(-(alpha + 1.5) * np.log(var)
                            - (beta + 0.5 * G.weighted_square(lam[:, None], d)) / var))
    if ct == "spherical":
        var = covars.reshape(K * M)
        c = D + 2 * (pri["covars_prior"].reshape(K * M) + 1)
        beta = pri["covars_weight"].reshape(K * M)
        return float(np.sum(-0.5 * c * np.log(var)
                            - (beta + 0.5 * G.weighted_square(lam[:, None], d).sum(axis=1))
                            / var))
    if ct == "full":
        mats = covars.reshape(K * M, D, D)
        c = pri["covars_weight"].reshape(K * M) + D + 2
        psi = np.swapaxes(pri["covars_prior"].reshape(K * M, D, D), 1, 2)
    else:
        mats = covars
        c = pri["covars_weight"] + M + D + 1
        psi = np.swapaxes(pri["covars_prior"], 1, 2)
    inv = np.linalg.inv(mats)
    logdet = np.linalg.slogdet(mats)[1]
    inv_m = np.repeat(inv, M, axis=0) if ct == "tied" else inv
    wd = lam[:, None] * d
    quad = np.einsum("kd,kde,ke->", wd, inv_m, np.where(wd != 0, d, 0.0))
    return float(np.sum(-0.5 * c * logdet - 0.5 * np.einsum("kde,ked->k", psi, inv))
                 - 0.5 * quad)


def ref_gaussianhmm_update_covars(stats, means, old, ct, mp, mw, cp, cw, min_covar):
    """gaussian.update_covars as it was (GaussianHMM's M-step)."""
    K, D = means.shape
    w = G._as_k_by(mw, K, 1)
    diff = means - G._as_k_by(mp, K, D)
    scatter = G._scatter(stats, means, ct)
    if ct in ("diag", "spherical"):
        c_n = G._as_k_by(cp, K, D) + G.weighted_square(w, diff) + scatter
        c_d = np.maximum(G._as_k_by(cw, K, 1) - 1.0, 0.0) + stats.post[:, None]
        covars = c_n / np.maximum(c_d, 1e-5)
        if ct == "spherical":
            covars = covars.mean(axis=1)
        empty = stats.post <= EMPTY
        covars[empty] = old[empty]
        return np.maximum(covars, min_covar)
    prior_w = np.einsum("kd,ke->kde", w * diff, diff)
    if ct == "full":
        c_n = G._as_k_by(cp, K, D, D) + prior_w + scatter
        c_d = np.maximum(np.asarray(cw, dtype=float) - D, 0.0)
        c_d = G._as_k_by(c_d, K, 1, 1) + stats.post[:, None, None]
        empty = c_d[:, 0, 0] <= EMPTY
        covars = c_n / np.where(empty[:, None, None], 1.0, c_d)
        covars[empty] = old[empty]
    else:
        c_n = np.broadcast_to(np.asarray(cp, dtype=float), (D, D)) + prior_w.sum(0) + scatter
        c_d = max(float(np.max(cw)) - D, 0.0) + stats.post.sum()
        covars = c_n / c_d if c_d > EMPTY else old.copy()
    return G._floor_eigenvalues(covars, min_covar)


def ref_gaussianhmm_log_prior(means, covars, ct, mp, mw, cp, cw):
    K, D = means.shape
    w = G._as_k_by(mw, K, 1)
    diff = means - G._as_k_by(mp, K, D)
    if ct in ("diag", "spherical"):
        var = np.broadcast_to(covars[:, None], (K, D)) if ct == "spherical" else covars
        a = np.maximum(G._as_k_by(cw, K, 1) - 1.0, 0.0)
        return float(np.sum(-0.5 * a * np.log(var)
                            - 0.5 * (G._as_k_by(cp, K, D) + G.weighted_square(w, diff)) / var))
    mats = np.broadcast_to(covars, (K, D, D)) if ct == "tied" else covars
    chol = np.linalg.cholesky(mats)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    inv = np.linalg.inv(mats)
    wd = w * diff
    quad = np.einsum("kd,kde,ke->k", wd, inv, np.where(wd != 0, diff, 0.0))
    if ct == "full":
        a = np.maximum(G._as_k_by(cw, K) - D, 0.0)
        psi = G._as_k_by(cp, K, D, D)
        return float(np.sum(-0.5 * a * logdet - 0.5 * np.einsum("kde,ked->k", psi, inv))
                     - 0.5 * quad.sum())
    a = max(float(np.max(cw)) - D, 0.0)
    psi = np.broadcast_to(np.asarray(cp, dtype=float), (D, D))
    return float(-0.5 * a * logdet[0] - 0.5 * np.sum(psi * inv[0].T) - 0.5 * quad.sum())


def ref_mixture_estimate(gs, ct, reg, old_means, old_covs):
    """GaussianMixture._estimate as it was (scikit-learn's M-step)."""
    K, D = gs.sum1.shape
    nk = gs.post + 10 * np.finfo(float).eps
    means = gs.shift + gs.sum1 / nk[:, None]
    empty = gs.post <= EMPTY
    if old_means is not None:
        means[empty] = old_means[empty]
    scatter = G._scatter(gs, means, ct)
    if ct in ("diag", "spherical"):
        covs = scatter / nk[:, None] + reg
        if ct == "spherical":
            covs = covs.mean(axis=1)
        covs = np.maximum(covs, np.finfo(float).tiny)
    elif ct == "full":
        covs = G._floor_eigenvalues(scatter / nk[:, None, None] + reg * np.eye(D), 0.0)
    else:
        covs = G._floor_eigenvalues(scatter / nk.sum() + reg * np.eye(D), 0.0)
    if old_covs is not None and ct != "tied":
        covs[empty] = old_covs[empty]
    return means, covs


# ============================================================================ fixtures
def _spd(rng, *lead, D):
    A = rng.normal(size=(*lead, D, D))
    return A @ np.swapaxes(A, -1, -2) + D * np.eye(D)


def _covars(rng, ct, lead, D):
    if ct == "diag":
        return rng.uniform(0.5, 2.0, size=(*lead, D))
    if ct == "spherical":
        return rng.uniform(0.5, 2.0, size=lead)
    return _spd(rng, *lead, D=D)


def _gmmhmm_case(ct, seed=0, K=3, M=2, D=3, empty=True):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, D)) * [1.0, 3.0, 0.5][:D]
    resp = rng.uniform(size=(200, K * M)) ** 3
    if empty:
        resp[:, 1] = 0.0  # one Gaussian without data
        if ct == "tied":
            resp[:, 2 * M : 3 * M] = 0.0  # one state without data
    kind = "full" if ct == "tied" else ct
    means = rng.normal(size=(K * M, D))
    gs = G.GaussianStats.from_weights(X, resp, np.ascontiguousarray(means), kind)
    new_means = G.update_means(gs, means)
    pri = dict(
        means_prior=rng.normal(size=(K, M, D)),
        means_weight=rng.uniform(0.0, 2.0, size=(K, M)),
    )
    pri["means_weight"][0, 0] = 0.0
    if ct == "diag":
        pri["covars_prior"] = rng.uniform(-0.5, 1.0, size=(K, M, D))
        pri["covars_weight"] = rng.uniform(0.0, 1.0, size=(K, M, D))
    elif ct == "spherical":
        pri["covars_prior"] = rng.uniform(-0.5, 1.0, size=(K, M))
        pri["covars_weight"] = rng.uniform(0.0, 1.0, size=(K, M))
    elif ct == "full":
        pri["covars_prior"] = _spd(rng, K, M, D=D) * 0.1 + rng.normal(size=(K, M, D, D)) * 0.01
        pri["covars_weight"] = rng.uniform(0.0, 3.0, size=(K, M))
    else:
        pri["covars_prior"] = _spd(rng, K, D=D) * 0.1 + rng.normal(size=(K, D, D)) * 0.01
        pri["covars_weight"] = rng.uniform(0.0, 3.0, size=K)
    old = _covars(rng, ct, (K,) if ct == "tied" else (K, M), D)
    var_floor = rng.uniform(0.05, 0.5, size=D)
    return gs, new_means, pri, old, var_floor, (K, M, D)


def _kw(pri):
    return {k: pri[k] for k in ("means_prior", "means_weight", "covars_prior", "covars_weight")}


# ============================================================================ GMMHMM
@pytest.mark.parametrize("ct", CTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gmmhmm_covariance_mstep(ct, seed):
    gs, means, pri, old, fl, (K, M, D) = _gmmhmm_case(ct, seed)
    lam = pri["means_weight"].reshape(K * M)
    mu0 = pri["means_prior"].reshape(K * M, D)
    ref = ref_gmmhmm_update_covars(ct, gs, means, lam, mu0, pri, old, K, M, D)
    got = G.update_covars(gs, means, old, ct, **_kw(pri), min_covar=None,
                          convention="gmmhmm", n_mix=M)
    assert got.shape == old.shape
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    # floored: GMMHMM._floor(GMMHMM._update_covars(...)) in one call
    got_f = G.update_covars(gs, means, old, ct, **_kw(pri), min_covar=fl,
                            convention="gmmhmm", n_mix=M)
    np.testing.assert_allclose(got_f, ref_gmmhmm_floor(ct, ref, fl), rtol=1e-12, atol=0)
    # an empty Gaussian (state, for 'tied') keeps its previous covariance exactly
    if ct == "tied":
        np.testing.assert_array_equal(got[2], old[2])
    else:
        np.testing.assert_array_equal(got[0, 1], old[0, 1])


@pytest.mark.parametrize("ct", CTS)
def test_gmmhmm_covariance_mstep_default_priors(ct):
    gs, means, pri, old, fl, (K, M, D) = _gmmhmm_case(ct, 5)
    a, b = G._gmmhmm_defaults(ct, D, M)
    shapes = {"diag": ((K, M, D),) * 2, "spherical": ((K, M),) * 2,
              "full": ((K, M, D, D), (K, M)), "tied": ((K, D, D), (K,))}[ct]
    full_pri = dict(pri, covars_prior=np.full(shapes[0], a), covars_weight=np.full(shapes[1], b))
    lam = pri["means_weight"].reshape(K * M)
    mu0 = pri["means_prior"].reshape(K * M, D)
    ref = ref_gmmhmm_update_covars(ct, gs, means, lam, mu0, full_pri, old, K, M, D)
    got = G.update_covars(gs, means, old, ct, means_prior=pri["means_prior"],
                          means_weight=pri["means_weight"], covars_prior=None,
                          covars_weight=None, min_covar=None, convention="gmmhmm", n_mix=M)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    np.testing.assert_allclose(
        G.log_prior(means, old, ct, means_prior=pri["means_prior"],
                    means_weight=pri["means_weight"], covars_prior=None, covars_weight=None,
                    convention="gmmhmm", n_mix=M),
        ref_gmmhmm_log_prior(ct, means, old, full_pri, K, M, D), rtol=1e-12,
    )


@pytest.mark.parametrize("ct", CTS)
@pytest.mark.parametrize("seed", [0, 3])
def test_gmmhmm_log_prior(ct, seed):
    gs, means, pri, old, fl, (K, M, D) = _gmmhmm_case(ct, seed)
    for covars in (old, G.update_covars(gs, means, old, ct, **_kw(pri), min_covar=fl,
                                        convention="gmmhmm", n_mix=M)):
        ref = ref_gmmhmm_log_prior(ct, means, covars, pri, K, M, D)
        got = G.log_prior(means, covars, ct, **_kw(pri), convention="gmmhmm", n_mix=M)
        np.testing.assert_allclose(got, ref, rtol=1e-12)


@pytest.mark.parametrize("ct", CTS)
def test_gmmhmm_mstep_maximises_expected_loglik_plus_prior(ct):
    """The MAP step (without floors) is the maximiser of Q + log prior: moving each
    covariance a little never raises it (checks the prior and the M-step agree)."""
    gs, means, pri, old, fl, (K, M, D) = _gmmhmm_case(ct, 4, empty=False)
    kw = dict(**_kw(pri), convention="gmmhmm", n_mix=M)
    new = G.update_covars(gs, means, old, ct, **kw, min_covar=None)
    flat_type = "full" if ct == "tied" else ct

    def objective(c):
        flat = np.repeat(c, M, axis=0) if ct == "tied" else c.reshape((K * M,) + c.shape[2:])
        q = G.expected_loglik(gs, means, flat, flat_type).sum()
        return q + G.log_prior(means, c, ct, **kw)

    best = objective(new)
    rng = np.random.default_rng(0)
    for _ in range(5):
        if ct in ("diag", "spherical"):
            moved = new * np.exp(rng.normal(scale=1e-3, size=new.shape))
        else:
            E = rng.normal(scale=1e-3, size=new.shape)
            moved = new + E @ np.swapaxes(E, -1, -2) - np.mean(E * E) * np.eye(D)
        assert objective(moved) <= best + 1e-9 * abs(best)


@pytest.mark.parametrize("ct", CTS)
def test_gmm_emission_mstep_is_the_frozen_gmmhmm_mstep(ct):
    """GMMHMM's emission (emx.emissions.GMMEmission, which calls the core) gives what the
    old GMMHMM methods gave: the floored MAP covariances (or, where they would lower EM's
    objective, the previous ones), and the same log prior."""
    from emx.emissions import GMMEmission

    gs, means, pri, old, fl, (K, M, D) = _gmmhmm_case(ct, 7)
    em = GMMEmission(K, M, covariance_type=ct, **_kw(pri))
    em.covars_, em.var_floor_ = old.copy(), fl
    em.means_ = means.reshape(K, M, D).copy()
    em.weights_ = np.full((K, M), 1.0 / M)
    np.testing.assert_allclose(em.log_prior("mc"),
                               ref_gmmhmm_log_prior(ct, means, old, pri, K, M, D), rtol=1e-12)
    lam, mu0 = pri["means_weight"].reshape(K * M), pri["means_prior"].reshape(K * M, D)
    ref = ref_gmmhmm_floor(ct, ref_gmmhmm_update_covars(ct, gs, means, lam, mu0, pri, old,
                                                        K, M, D), fl)
    em.mstep(gs, "c")
    assert not np.array_equal(em.covars_, old)  # the step was taken (the objective rose)
    np.testing.assert_allclose(em.covars_, ref, rtol=1e-12, atol=0)


# ============================================================================ floors
@pytest.mark.parametrize("ct", CTS)
def test_floor_covars_vector_and_scalar(ct):
    rng = np.random.default_rng(3)
    D = 3
    lead = (2, 3) if ct != "tied" else (2,)
    c = _covars(rng, ct, lead, D) * 1e-3
    fl = np.array([0.01, 0.1, 0.02])
    out = G.floor_covars(c, ct, fl)
    np.testing.assert_allclose(out, ref_gmmhmm_floor(ct, c, fl), rtol=1e-12, atol=0)
    assert out.shape == c.shape
    if ct in ("full", "tied"):
        s = 1 / np.sqrt(fl)
        ev = np.linalg.eigvalsh(out * s[:, None] * s[None, :])
        assert ev.min() >= 1 - 1e-9  # eigenvalues at least 1 in units of the floor
        # a scalar floor is the absolute eigenvalue floor
        ev2 = np.linalg.eigvalsh(G.floor_covars(c, ct, 0.05))
        assert ev2.min() >= 0.05 * (1 - 1e-9)
    else:
        assert np.all(out >= (fl if ct == "diag" else fl.mean()))
    np.testing.assert_array_equal(c, _covars(np.random.default_rng(3), ct, lead, D) * 1e-3)


# ============================================================================ GaussianHMM
@pytest.mark.parametrize("ct", CTS)
@pytest.mark.parametrize("priors", ["none", "scalar", "per_component"])
def test_gaussianhmm_convention_unchanged(ct, priors):
    rng = np.random.default_rng(11)
    K, D = 3, 3
    X = rng.normal(size=(150, D))
    resp = rng.uniform(size=(150, K)) ** 2
    resp[:, 2] = 0.0
    means0 = rng.normal(size=(K, D))
    gs = G.GaussianStats.from_weights(X, resp, np.ascontiguousarray(means0), ct)
    old = _covars(rng, ct, () if ct == "tied" else (K,), D)
    if priors == "none":
        kw = dict(means_prior=0.0, means_weight=0.0, covars_prior=0.0, covars_weight=0.0)
    elif priors == "scalar":
        kw = dict(means_prior=0.3, means_weight=0.5,
                  covars_prior=0.2 if ct in ("diag", "spherical") else 0.2 * np.eye(D),
                  covars_weight=2.5 if ct in ("diag", "spherical") else D + 1.5)
    else:
        cp = {"diag": rng.uniform(0.1, 1, (K, D)), "spherical": rng.uniform(0.1, 1, K),
              "full": _spd(rng, K, D=D) * 0.1, "tied": _spd(rng, D=D) * 0.1}[ct]
        cw = rng.uniform(1.0, 3.0, K) + (0 if ct in ("diag", "spherical") else D)
        kw = dict(means_prior=rng.normal(size=(K, D)), means_weight=rng.uniform(0, 1, K),
                  covars_prior=cp, covars_weight=cw)
    means = G.update_means(gs, means0, kw["means_prior"], kw["means_weight"])
    ref = ref_gaussianhmm_update_covars(gs, means, old, ct, kw["means_prior"],
                                        kw["means_weight"], kw["covars_prior"],
                                        kw["covars_weight"], 1e-3)
    got = G.update_covars(gs, means, old, ct, **kw, min_covar=1e-3)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    for c in (old, got):
        np.testing.assert_allclose(
            G.log_prior(means, c, ct, **kw),
            ref_gaussianhmm_log_prior(means, c, ct, kw["means_prior"], kw["means_weight"],
                                      kw["covars_prior"], kw["covars_weight"]),
            rtol=1e-12, atol=1e-300)


# ============================================================================ mixtures
@pytest.mark.parametrize("ct", CTS)
@pytest.mark.parametrize("reg", [0.0, 1e-6, 0.1])
def test_mixture_estimate(ct, reg):
    rng = np.random.default_rng(2)
    K, D = 4, 3
    X = rng.normal(size=(120, D)) * [1.0, 10.0, 0.1]
    resp = rng.uniform(size=(120, K))
    resp[:, 3] = 0.0
    shift = np.ascontiguousarray(rng.normal(size=(K, D)))
    gs = G.GaussianStats.from_weights(X, resp, shift, ct)
    old_m = rng.normal(size=(K, D))
    old_c = _covars(rng, ct, () if ct == "tied" else (K,), D)
    for om, oc in ((None, None), (old_m, old_c)):
        rm, rc = ref_mixture_estimate(gs, ct, reg, om, oc)
        m, c = G.estimate_gaussians(gs, ct, reg_covar=reg, old_means=om, old_covars=oc)
        np.testing.assert_allclose(m, rm, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(c, rc, rtol=1e-12, atol=1e-300)
        assert c.shape == rc.shape


def test_map_covars_rejects_bad_groups():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 2))
    gs = G.GaussianStats.from_weights(X, rng.uniform(size=(20, 3)), None, "full")
    with pytest.raises(ValueError, match="group_size"):
        G.map_covars(gs, gs.means, "tied", group_size=2)
    with pytest.raises(ValueError, match="convention"):
        G.update_covars(gs, gs.means, np.ones((3, 2, 2)), "full", convention="hmm")
