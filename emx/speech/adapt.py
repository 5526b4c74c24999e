"""Adaptation of a trained :class:`~emx.speech.Recognizer` to one speaker, by EM.

Three methods, all EM on the same statistics: the posteriors ``gamma[t, g]`` of every
Gaussian ``g`` of the model's pool at every frame ``t`` of the adaptation data, from
forward-backward over the composite model of each utterance's transcript (the network
:meth:`Recognizer.fit` trains with: optional silence around and between the words), times
the within-state mixture responsibilities. Transcripts are given (supervised) or are the
model's own hypotheses (unsupervised: decode, adapt, decode again with the adapted model ...).

``'cmllr'`` (constrained MLLR, also called feature-space MLLR, fMLLR)
    One affine transform of the features, ``x -> A x + b``, for all Gaussians: equivalent to
    transforming every Gaussian's mean *and* covariance. Written ``W = [A, b]`` of shape
    ``(D, D + 1)`` acting on the extended vector ``xi = [x; 1]``, so ``A x + b = W xi``. The
    log-likelihood of a frame is ``log N(W xi; mu, Sigma) + log |det A|``. With diagonal
    covariances ``sigma2[g, i]`` the EM auxiliary function is (Gales, 1998)

    ``Q(W) = beta log |det A| - 1/2 sum_i (w_i G_i w_i' - 2 w_i k_i')``

    with ``w_i`` row ``i`` of ``W`` and the sufficient statistics (:class:`AdaptStats`)

    * ``beta = sum_t sum_g gamma[t, g]`` (the number of frames),
    * ``G_i = sum_t (sum_g gamma[t, g] / sigma2[g, i]) xi_t xi_t'``, ``(D + 1, D + 1)``,
    * ``k_i = sum_t (sum_g gamma[t, g] mu[g, i] / sigma2[g, i]) xi_t'``, ``(D + 1,)``.

    The M-step maximises ``Q`` one row at a time (:func:`cmllr_update`): with ``p_i`` the
    row ``i`` of the cofactors of ``A`` (extended by a 0), ``w_i = (alpha p_i + k_i) G_i^-1``
    where ``alpha`` solves ``alpha^2 e1 + alpha e2 - beta = 0``, ``e1 = p_i G_i^-1 p_i'``,
    ``e2 = p_i G_i^-1 k_i'``, and of the two roots the one with the larger ``Q`` is taken.
    The cofactors of row ``i`` do not depend on row ``i``, so every row update is the exact
    maximum of ``Q`` over that row, and ``Q`` never falls.

``'mllr'`` (maximum likelihood linear regression of the means)
    One transform of all the model's means, ``mu -> A mu + b = W [mu; 1]`` (covariances
    unchanged), by the per-row closed form for diagonal covariances:
    ``w_i = k_i G_i^-1`` with ``G_i = sum_g (n_g / sigma2[g, i]) xi_g xi_g'``,
    ``k_i = sum_g (s[g, i] / sigma2[g, i]) xi_g'``, ``xi_g = [mu_g; 1]`` the speaker-independent
    mean, ``n_g = sum_t gamma[t, g]`` and ``s_g = sum_t gamma[t, g] x_t``. When the Gaussians
    seen do not determine a full transform (too few of them, or too little spread), the
    transform is diagonal (``mu_i -> a_i mu_i + b_i``), or at least a bias (``mu -> mu + b``):
    the form is chosen once, from the first statistics, and kept, so EM stays monotone.

``'map'`` (maximum a posteriori re-estimation of the means)
    ``mu_g' = (tau mu_g + s_g) / (tau + n_g)``: a conjugate prior ``N(mu_g, Sigma_g / tau)``
    centred on the speaker-independent mean with weight ``tau`` (in frames). Gaussians the
    speaker never uses keep their means; ``tau -> inf`` leaves the model unchanged, ``tau = 0``
    gives the maximum-likelihood means of the adaptation data. Works for 'full' covariances too.

Every method alternates E-step and M-step ``n_iter`` times for each set of transcripts. The
log-likelihood of the adaptation data (the sum over utterances of the composite-model
log-likelihood, with ``n_frames * log |det A|`` for CMLLR) never decreases over these
iterations for CMLLR and MLLR; for MAP the MAP objective (log-likelihood plus the log prior
of the means) never decreases. Each value is recorded in ``adaptation_history_``.

Which to use: on FSDD, a model trained on three speakers and adapted without labels to all
500 recordings of the fourth (leave-one-speaker-out over george, jackson, lucas and nicolas;
``Recognizer(n_mix=2, var_floor=0.1)``, the defaults of emx 0.1, ``isolated=True``) went
from 79.5 % mean accuracy (78.2 / 83.0 / 88.8 / 67.8) to
94.2 % with 'map' (87.4 / 99.8 / 100 / 89.6), 91.2 % with 'mllr' and 88.5 % with 'cmllr'
(84.4 / 96.6 / 98.8 / 74.2), in about 1.6, 1.5 and 4.4 s per speaker. With labels (half of
the recordings adapting, the other half tested) the order is the same. CMLLR reaches the
highest likelihood of the three on these (per-utterance normalised) features yet the lowest
accuracy: a single affine map of the features does not capture what separates these
speakers. Its result is one (D, D + 1) matrix, leaving the model's Gaussians untouched.
The broad Gaussians of today's defaults (8 per state, ``var_floor=1.0``) start higher (83.7 %)
but adapt less far: 92.7 % with 'map' (``python bench/speech.py`` has the current table).

References
----------
M. J. F. Gales (1998), Maximum likelihood linear transformations for HMM-based speech
recognition, Computer Speech and Language 12, 75-98 (CMLLR and its row-by-row update).
C. J. Leggetter and P. C. Woodland (1995), Maximum likelihood linear regression for speaker
adaptation of continuous density HMMs, Computer Speech and Language 9, 171-185 (MLLR).
J.-L. Gauvain and C.-H. Lee (1994), Maximum a posteriori estimation for multivariate Gaussian
mixture observations of Markov chains, IEEE Trans. Speech and Audio Processing 2, 291-298.
"""

from __future__ import annotations

import copy
import math
import numbers
import sys
import time
import warnings
from dataclasses import dataclass
from functools import partial

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from .._em import ChunkRunner
from .._stats import AdditiveStats
from .._validation import check_n_jobs
from .recognizer import Recognizer, _Group, _transcript

__all__ = ["METHODS", "AdaptStats", "adapt", "cmllr_auxiliary", "cmllr_update",
           "mllr_update", "map_update"]

#: The adaptation methods :func:`adapt` knows.
METHODS = ("cmllr", "mllr", "map")

# A row's Gram matrix G_i gets a proximal term lam * I (and k_i a matching lam * w_old) with
# lam this fraction of its mean diagonal: the update then maximises Q(w) - lam/2 |w - w_old|^2,
# which is defined even for a singular G_i and still never lowers Q (w_old is a candidate).
_PROXIMAL = 1e-9
# MLLR: a transform form is used only if its normal equations have a reciprocal condition
# number (eigenvalues of the diagonally scaled G_i) above this.
_MLLR_RCOND = 1e-8
_BLOCK = 2048  # frames per block of the CMLLR Gram products


@dataclass
class AdaptStats(AdditiveStats):
    """Additive statistics of adaptation data under one model (sum them over utterances).

    Attributes
    ----------
    loglik : float
        Sum over utterances of the log-likelihood of their composite models, for the features
        as the model sees them (through its feature transform), *without* the Jacobian term.
    n_frames : int
    occupancy : ndarray of shape (n_gaussians,)
        ``n_g = sum_t gamma[t, g]`` for every Gaussian ``g = state * n_mix + m`` of the pool.
    first : ndarray of shape (n_gaussians, D)
        ``s_g = sum_t gamma[t, g] y_t``, ``y_t`` the features as the model sees them.
    beta : float
        ``sum_t sum_g gamma[t, g]`` (equals ``n_frames`` up to round-off).
    G : ndarray of shape (D, D + 1, D + 1) or None
        CMLLR only: ``G_i = sum_t (sum_g gamma[t, g] / sigma2[g, i]) xi_t xi_t'`` with
        ``xi_t = [x_t; 1]``, ``x_t`` the features the transform being estimated acts on
        (as the input model sees them).
    k : ndarray of shape (D, D + 1) or None
        CMLLR only: ``k_i = sum_t (sum_g gamma[t, g] mu[g, i] / sigma2[g, i]) xi_t``.
    """

    loglik: float
    n_frames: int
    occupancy: np.ndarray
    first: np.ndarray
    beta: float = 0.0
    G: np.ndarray | None = None
    k: np.ndarray | None = None

# ---------------------------------------------------------------------------- CMLLR M-step
def cmllr_auxiliary(W: np.ndarray, stats: AdaptStats) -> float:
    """The CMLLR auxiliary function ``Q(W) = beta log|det A| - 1/2 sum_i (w_i G_i w_i' -
    2 w_i k_i')`` (up to a constant), ``W = [A, b]`` of shape ``(D, D + 1)``.

    Returns -inf for a singular ``A``.
    """
    W = np.asarray(W, dtype=np.float64)
    D = W.shape[0]
    sign, logdet = np.linalg.slogdet(W[:, :D])
    if sign == 0:
        return -np.inf
    quad = np.einsum("ij,ijk,ik->", W, stats.G, W)
    return float(stats.beta * logdet - 0.5 * quad + np.sum(W * stats.k))


def _row_objective(w, p, G, k, beta) -> float:
    """The part of Q that depends on row ``w`` (cofactor row ``p`` scaled by 1/det A)."""
    d = float(w @ p)
    if d == 0:
        return -np.inf
    return beta * math.log(abs(d)) - 0.5 * float(w @ G @ w) + float(w @ k)


def _best_row(p, G, k, beta) -> np.ndarray:
    """The row ``w`` maximising ``beta log|w p'| - 1/2 w G w' + w k'`` (G positive definite)."""
    c = scipy.linalg.cho_factor(G)
    Gp, Gk = scipy.linalg.cho_solve(c, p), scipy.linalg.cho_solve(c, k)
    e1, e2 = float(p @ Gp), float(p @ Gk)
    # alpha^2 e1 + alpha e2 - beta = 0: both roots are real (e1 > 0, beta > 0)
    disc = math.sqrt(e2 * e2 + 4.0 * e1 * beta)
    best, best_q = None, -np.inf
    for alpha in ((-e2 + disc) / (2.0 * e1), (-e2 - disc) / (2.0 * e1)):
        w = alpha * Gp + Gk
        q = _row_objective(w, p, G, k, beta)
        if q > best_q:
            best, best_q = w, q
    return best


def _block_of(D: int, blocks) -> list[np.ndarray]:
    """For every row ``i``, the columns of ``W`` it may use: its block of ``A`` and ``b``."""
    if blocks is None:
        return [np.arange(D + 1)] * D
    cols = []
    start = 0
    for size in blocks:
        idx = np.append(np.arange(start, start + size), D)
        cols += [idx] * size
        start += size
    return cols


def _check_blocks(blocks, D: int) -> tuple | None:
    """``blocks`` as a tuple of block sizes summing to D (None: one full block)."""
    if blocks is None:
        return None
    if isinstance(blocks, str):
        if blocks == "diagonal":
            return (1,) * D
        raise ValueError(f"blocks must be None, 'diagonal' or a sequence of block sizes, "
                         f"got {blocks!r}.")
    try:
        sizes = tuple(int(b) for b in blocks)
        ok = all(int(b) == b and not isinstance(b, bool) for b in blocks)
    except (TypeError, ValueError):
        ok = False
    if not ok or any(b < 1 for b in sizes) or sum(sizes) != D:
        raise ValueError(f"blocks must be positive block sizes summing to the {D} features, "
                         f"got {blocks!r}.")
    return sizes


def cmllr_update(W: np.ndarray, stats: AdaptStats, n_sweeps: int = 20,
                 blocks=None) -> np.ndarray:
    """M-step of CMLLR: row-by-row maximisation of :func:`cmllr_auxiliary` (Gales, 1998).

    Parameters
    ----------
    W : ndarray of shape (D, D + 1)
        The current transform ``[A, b]`` (``A`` invertible, block diagonal if ``blocks``
        is given); not modified.
    stats : AdaptStats
        With ``G``, ``k`` and ``beta > 0``.
    n_sweeps : int
        Passes over the rows (fewer if the rows stop changing). Each row update is the
        exact maximum of ``Q`` over that row (the other rows fixed), so ``Q`` never
        decreases; a row whose update would lower ``Q`` by round-off keeps its value.
    blocks : sequence of int, 'diagonal' or None
        Sizes of the diagonal blocks of ``A`` (they sum to D; 'diagonal' is all ones):
        row ``i`` then uses only the columns of its block and the bias. None: full ``A``.

    Returns
    -------
    ndarray of shape (D, D + 1)
        The new transform.

    Notes
    -----
    Row ``i`` of the cofactor matrix of ``A`` is ``det(A) * inv(A)[:, i]``; the scale
    ``det(A)`` is absorbed by ``alpha``, so ``p_i = [inv(A)[:, i], 0]`` is used. With
    blocks, the same quadratic restricted to the row's columns (the cofactors of a block
    diagonal ``A`` vanish outside the block). Each row's Gram matrix gets a proximal term
    ``lam I`` (``lam`` = 1e-9 of its mean diagonal), with ``lam w_old`` added to ``k_i``:
    the update maximises ``Q - lam/2 |w - w_old|^2``, defined for a singular ``G_i`` and
    never below ``Q(w_old)``.
    """
    W = np.array(W, dtype=np.float64)
    D = W.shape[0]
    if stats.G is None or stats.k is None or not stats.beta > 0:
        raise ValueError("CMLLR needs statistics with G, k and beta > 0 (no frames?).")
    cols = _block_of(D, _check_blocks(blocks, D))
    for _ in range(n_sweeps):
        changed = 0.0
        for i in range(D):
            J = cols[i]
            p = np.append(np.linalg.inv(W[:, :D])[:, i], 0.0)[J]
            G, k = stats.G[i][np.ix_(J, J)], stats.k[i][J]
            lam = _PROXIMAL * max(float(np.trace(G)) / len(J), 1e-300)
            old = W[i, J].copy()
            try:
                new = _best_row(p, G + lam * np.eye(len(J)), k + lam * old, stats.beta)
            except (np.linalg.LinAlgError, ValueError, ZeroDivisionError):
                continue
            if new is None or not np.all(np.isfinite(new)):
                continue
            if _row_objective(new, p, G, k, stats.beta) >= _row_objective(old, p, G, k,
                                                                            stats.beta):
                W[i, J] = new
                changed = max(changed, float(np.max(np.abs(new - old))))
        if changed < 1e-10:
            break
    return W


# ---------------------------------------------------------------------------- MLLR and MAP
def _mllr_system(stats: AdaptStats, means: np.ndarray, var: np.ndarray):
    """Per-row normal equations of the mean transform: (D, D+1, D+1) and (D, D+1)."""
    n, s = stats.occupancy, stats.first
    Gs, D = len(means), means.shape[1]
    xi = np.hstack([means, np.ones((Gs, 1))])
    inv = 1.0 / var  # (G, D)
    Gm = np.empty((D, D + 1, D + 1))
    for i in range(D):
        Gm[i] = (xi * (n * inv[:, i])[:, None]).T @ xi
    km = (s * inv).T @ xi
    return Gm, km


def _well_posed(M: np.ndarray) -> bool:
    d = np.sqrt(np.maximum(np.diagonal(M, axis1=-2, axis2=-1), 0.0))
    if np.any(d <= 0) or not np.all(np.isfinite(M)):
        return False
    ev = np.linalg.eigvalsh(M / d[..., :, None] / d[..., None, :])
    return bool(np.all(ev[..., 0] > _MLLR_RCOND * ev[..., -1]))


def _mllr_form(stats: AdaptStats, means: np.ndarray, var: np.ndarray) -> str:
    """'full', 'diagonal' or 'bias': the richest mean transform the statistics determine."""
    D = means.shape[1]
    Gm, _ = _mllr_system(stats, means, var)
    if np.sum(stats.occupancy >= 1.0) >= D + 1 and _well_posed(Gm):
        return "full"
    two = np.empty((D, 2, 2))
    for i in range(D):
        two[i] = Gm[i][np.ix_([i, D], [i, D])]
    if np.sum(stats.occupancy >= 1.0) >= 2 and _well_posed(two):
        return "diagonal"
    return "bias"


def mllr_update(stats: AdaptStats, means: np.ndarray, var: np.ndarray,
                form: str = "full") -> np.ndarray:
    """M-step of MLLR: the mean transform ``W = [A, b]`` maximising the auxiliary function.

    Parameters
    ----------
    stats : AdaptStats
        Occupations ``n_g`` and first moments ``s_g`` under the current model.
    means : ndarray of shape (n_gaussians, D)
        The speaker-independent means ``mu_g`` the transform acts on.
    var : ndarray of shape (n_gaussians, D)
        Diagonal covariances ``sigma2[g, i]``.
    form : {'full', 'diagonal', 'bias'}
        'full': every row by ``w_i = k_i G_i^-1``; 'diagonal': ``A`` diagonal (each row from
        the 2x2 system of ``mu_i`` and the bias); 'bias': ``A = I``.

    Returns
    -------
    ndarray of shape (D, D + 1)
    """
    D = means.shape[1]
    Gm, km = _mllr_system(stats, means, var)
    W = np.hstack([np.eye(D), np.zeros((D, 1))])
    if form == "full":
        for i in range(D):
            W[i] = scipy.linalg.solve(Gm[i], km[i], assume_a="pos")
    elif form == "diagonal":
        for i in range(D):
            j = [i, D]
            W[i, j] = scipy.linalg.solve(Gm[i][np.ix_(j, j)], km[i, j], assume_a="pos")
    elif form == "bias":
        for i in range(D):
            # maximise over b_i with A = I: sum_g n_g/s2 (mu_i + b_i) = sum_g s_gi / s2
            num = km[i, D] - Gm[i, D, i]
            den = Gm[i, D, D]
            W[i, D] = num / den if den > 0 else 0.0
    else:
        raise ValueError(f"form must be 'full', 'diagonal' or 'bias', got {form!r}.")
    return W


def map_update(stats: AdaptStats, means: np.ndarray, tau: float) -> np.ndarray:
    """M-step of MAP: ``mu_g' = (tau mu_g + s_g) / (tau + n_g)``; unseen Gaussians keep
    ``mu_g`` (also with ``tau = 0``)."""
    n = stats.occupancy[:, None]
    den = tau + n
    seen = den[:, 0] > 0
    out = np.array(means, dtype=np.float64)
    out[seen] = (tau * means[seen] + stats.first[seen]) / den[seen]
    return out


def _map_log_prior(means: np.ndarray, prior: np.ndarray, covars: np.ndarray, ct: str,
                   tau: float) -> float:
    """``sum_g log N(mu_g; mu0_g, Sigma_g / tau)`` up to a constant."""
    d = means - prior
    if ct == "full":
        quad = np.einsum("gi,gi->", d, np.linalg.solve(covars, d[..., None])[..., 0])
    else:
        quad = float(np.sum(d * d / covars))
    return -0.5 * tau * quad


# ---------------------------------------------------------------------------- E-step
def _estep(model: Recognizer, group: _Group, *, W: np.ndarray | None, cmllr: bool) -> AdaptStats:
    """Statistics of one group of utterances (same transcript) under ``model``.

    ``group.X`` holds front-end features; ``W`` (or None) the feature transform the model
    applies to them. As :meth:`Recognizer._estep`: forward-backward over the composite model
    of the transcript, then within-state responsibilities."""
    X = group.X
    Y = X if W is None else X @ W[:, :-1].T + W[:, -1]
    _, sub_states, _, local, resp, post, _, seq_ll = model._composite_posteriors(
        group, Y, "Adaptation")
    n, L = post.shape
    to_sub = sp.csr_matrix((np.ones(L), (np.arange(L), local)), shape=(L, len(sub_states)))
    post_sub = np.asarray(post @ to_sub)  # (n, n_sub)
    M, D = model.pool_.n_mix, model.n_features_in_
    gamma = resp.reshape(n, len(sub_states), M) * post_sub[:, :, None]
    gamma = gamma.reshape(n, len(sub_states) * M)
    gauss = (sub_states[:, None] * M + np.arange(M)).ravel()
    n_gauss = model.pool_.means_.shape[0] * M
    occupancy = np.zeros(n_gauss)
    first = np.zeros((n_gauss, D))
    occupancy[gauss] = gamma.sum(axis=0)
    first[gauss] = (Y.T @ gamma).T
    Gst = kst = None
    if cmllr:
        inv_var = 1.0 / model.pool_.covars_.reshape(n_gauss, D)[gauss]
        mu = model.pool_.means_.reshape(n_gauss, D)[gauss]
        weight = gamma @ inv_var  # (n, D): sum_g gamma[t, g] / sigma2[g, i]
        target = gamma @ (mu * inv_var)  # (n, D): sum_g gamma[t, g] mu[g, i] / sigma2[g, i]
        Xi = np.hstack([X, np.ones((n, 1))])
        kst = (Xi.T @ target).T
        # G_i[j, l] = sum_t weight[t, i] xi[t, j] xi[t, l]: the upper triangles of all D
        # Gram matrices in one matrix product, over blocks of frames
        ju, lu = np.triu_indices(D + 1)
        upper = np.zeros((D, len(ju)))
        for a in range(0, n, _BLOCK):
            Z = Xi[a:a + _BLOCK, ju] * Xi[a:a + _BLOCK, lu]
            upper += (Z.T @ weight[a:a + _BLOCK]).T
        Gst = np.empty((D, D + 1, D + 1))
        Gst[:, ju, lu] = upper
        Gst[:, lu, ju] = upper
    return AdaptStats(float(seq_ll.sum()), int(n), occupancy, first, float(gamma.sum()),
                      Gst, kst)


# ---------------------------------------------------------------------------- driver
def _compose(W: np.ndarray, W0: np.ndarray | None) -> np.ndarray:
    """``[A, b]`` after ``[A0, b0]``: ``x -> A (A0 x + b0) + b``."""
    if W0 is None:
        return W
    D = W.shape[0]
    return np.hstack([W[:, :D] @ W0[:, :D], (W[:, :D] @ W0[:, D] + W[:, D])[:, None]])


def _check_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _decide_isolated(rec: Recognizer, feats: list) -> bool:
    """Isolated words when the median utterance is shorter than 1.5 times a typical word
    with its silence: the mean expected duration of the word models plus that of the
    silence model (expected durations: sum over states of 1 / (1 - stay))."""
    dur = 1.0 / (1.0 - rec.stay_)
    off = rec.unit_offsets_
    word = np.mean([dur[off[w]:off[w + 1]].sum() for w in range(len(rec.words_))])
    sil = dur[off[-2]:off[-1]].sum() if rec.silence else 0.0
    return bool(np.median([len(f) for f in feats]) <= 1.5 * (word + sil))


def _hypotheses(model: Recognizer, feats: list, isolated: bool,
                W: np.ndarray | None) -> list[tuple]:
    """Decoded transcripts (word units) of ``feats`` (the features as the input model sees
    them) under ``model`` with the feature transform ``W`` of them (None: none)."""
    saved = model.__dict__.pop("feature_transform_", None)
    if W is not None:
        model.feature_transform_ = W
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the features were checked when first computed
            if isolated:
                scores = model.decision_function(feats)
                return [(int(j),) for j in scores.argmax(axis=1)]
            return [tuple(model._unit(w.label) for w in model.recognize(f)) for f in feats]
    finally:
        model.__dict__.pop("feature_transform_", None)
        if saved is not None:
            model.feature_transform_ = saved


def adapt(
    rec: Recognizer,
    utterances,
    transcripts=None,
    method: str = "map",
    *,
    isolated: bool | None = None,
    n_passes: int = 3,
    n_iter: int = 2,
    n_sweeps: int = 20,
    blocks=None,
    tau: float = 10.0,
    samplerate: int | None = None,
    speakers=None,
    verbose: bool = False,
) -> Recognizer:
    """A copy of ``rec`` adapted to the speaker of ``utterances`` (``rec`` is unchanged).

    Parameters
    ----------
    rec : Recognizer
        A fitted recogniser.
    utterances : list of paths, waveforms, (waveform, samplerate) tuples or arrays
        Adaptation data of one speaker, as :meth:`Recognizer.predict` takes it.
    transcripts : list or None
        One label or sequence of labels per utterance (supervised adaptation). None:
        unsupervised, on the model's own hypotheses.
    method : {'cmllr', 'mllr', 'map'}
        'cmllr': one affine feature transform ``A x + b`` (sets ``feature_transform_``);
        'mllr': one affine transform of all the means; 'map': MAP re-estimation of each
        Gaussian's mean with prior weight ``tau``. 'cmllr' and 'mllr' need diagonal
        covariances. See the module docstring for the mathematics.
    isolated : bool or None
        Unsupervised only: decode every utterance as one word (:meth:`Recognizer.predict`,
        True) or as connected words (:meth:`Recognizer.recognize`, False). None: isolated
        when the median utterance is shorter than 1.5 times the mean expected duration of
        a word model plus that of the silence model (durations from the self-loops), else
        connected (a heuristic: pass it when you know).
    n_passes : int
        Unsupervised only: decode-then-adapt passes. Pass ``p + 1`` decodes with the model
        of pass ``p``, then re-estimates from the *original* model's parameters (the
        speaker-independent means, the input model's features) on the new hypotheses,
        starting its EM at the model of pass ``p``. Supervised adaptation is one pass. On
        FSDD, a few passes of few iterations did better than one long EM: the hypotheses
        improve between passes.
    n_iter : int
        EM iterations (E-step, M-step) per pass.
    n_sweeps : int
        CMLLR: sweeps over the rows of ``W`` in each M-step.
    blocks : sequence of int, 'diagonal' or None
        CMLLR: sizes of the diagonal blocks of ``A`` (summing to the number of features;
        e.g. ``(13, 13, 13)`` for statics, deltas and accelerations as HTK's block
        transforms), or 'diagonal'; None: a full ``A``.
    tau : float
        MAP: prior weight (in frames) of the speaker-independent means; >= 0.
    samplerate : int, optional
        Sample rate of the 1-D waveforms among ``utterances``.
    speakers : list, optional
        Speaker of each utterance, as :meth:`Recognizer.predict` takes it: for a model
        trained with ``speakers=``, pass one label for all (``[s] * n``) so the adaptation
        data is normalised as that speaker's test data will be.
    verbose : bool
        Print the log-likelihood of every iteration to stderr.

    Returns
    -------
    Recognizer
        A new fitted recogniser, with ``adaptation_history_``: one dict per E-step
        (``pass``, ``iteration``, ``loglik``: log-likelihood of the adaptation data including
        the ``n_frames log|det A|`` term, ``objective``: ``loglik`` plus the log prior of the
        means for MAP, else ``loglik``, ``n_frames``, and with a new pass ``n_changed``,
        hypotheses that differ from the previous pass's), ``adaptation_method_`` and
        ``adaptation_time_`` (seconds). For ``'mllr'``, ``mllr_transform_`` (``[A, b]`` applied
        to the original means) and ``mllr_form_`` ('full', 'diagonal' or 'bias').

    Notes
    -----
    *An already adapted model* is adapted further: the statistics are gathered on the
    features as the model sees them (through its ``feature_transform_`` ``W0``, if any).
    CMLLR estimates a transform ``W`` of those, starting at the identity, and the returned
    model's ``feature_transform_`` is ``W`` composed with ``W0`` (``A A0``, ``A b0 + b``);
    MLLR and MAP keep ``W0`` and adapt the model's current means. Either way the EM starts
    at the input model, so the result is at least as likely on the adaptation data.

    Within a pass (fixed transcripts), the adaptation log-likelihood never decreases for
    'cmllr' and 'mllr', and the MAP objective never decreases for 'map'.

    Examples
    --------
    >>> from emx.speech.adapt import adapt
    >>> fast = adapt(rec, new_speaker_paths)                          # doctest: +SKIP
    >>> fast.predict(new_speaker_paths)                               # doctest: +SKIP
    """
    start = time.perf_counter()
    if not isinstance(rec, Recognizer):
        raise ValueError(f"rec must be a Recognizer, got {type(rec).__name__}.")
    rec._check_fitted()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    ct = rec.pool_.covariance_type
    if method in ("cmllr", "mllr") and ct != "diag":
        raise ValueError(f"method={method!r} needs diagonal covariances; this model's "
                         f"covariance_type is {ct!r} (use method='map').")
    n_passes, n_iter = _check_int(n_passes, "n_passes"), _check_int(n_iter, "n_iter")
    n_sweeps = _check_int(n_sweeps, "n_sweeps")
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not (
            math.isfinite(tau) and tau >= 0):
        raise ValueError(f"tau must be a finite number >= 0, got {tau!r}.")
    tau = float(tau)
    if isolated not in (None, True, False):
        raise ValueError(f"isolated must be True, False or None, got {isolated!r}.")
    utterances = rec._as_list(utterances, samplerate)
    if not utterances:
        raise ValueError("No adaptation utterances.")
    units = None
    if transcripts is not None:
        if isinstance(transcripts, str):
            raise ValueError("transcripts must be a list (one transcript per utterance).")
        transcripts = list(transcripts)
        if len(transcripts) != len(utterances):
            raise ValueError(f"{len(utterances)} utterances but {len(transcripts)} "
                             "transcripts.")
        units = [tuple(rec._unit(w) for w in _transcript(t)) for t in transcripts]

    new = copy.deepcopy(rec)
    S = int(new.unit_offsets_[-1])
    # features as the input model sees them: through its feature transform W0, if any
    feats = new._batch(utterances, samplerate, speakers)
    W0 = getattr(new, "feature_transform_", None)
    D, M = new.n_features_in_, new.pool_.n_mix
    logdet0 = 0.0 if W0 is None else float(np.linalg.slogdet(W0[:, :D])[1])
    blocks = _check_blocks(blocks, D)
    n_gauss = S * M
    prior_means = new.pool_.means_.reshape(n_gauss, D).copy()
    var = new.pool_.covars_.reshape((n_gauss,) + new.pool_.covars_.shape[2:])
    if isolated is None and units is None:
        isolated = _decide_isolated(new, feats)
    cmllr = method == "cmllr"
    # CMLLR estimates W on the features the model sees, from the identity; the model's
    # transform is then W composed with W0
    W = np.hstack([np.eye(D), np.zeros((D, 1))]) if cmllr else None
    history: list[dict] = []
    mllr_W, mllr_form = None, None
    previous = None
    n_runs = 1 if units is not None else n_passes
    # small matrix products: BLAS threads cost more than they give (and one thread keeps
    # the result independent of the machine), as in emx's other E-steps
    with threadpool_limits(limits=1, user_api="blas"), \
            ChunkRunner(check_n_jobs(new.n_jobs)) as runner:
        for p in range(n_runs):
            if units is None:
                hyps = _hypotheses(new, feats, bool(isolated), W)
                n_changed = None if previous is None else int(sum(
                    a != b for a, b in zip(hyps, previous, strict=True)))
                previous = hyps
                use = hyps
            else:
                use, n_changed = units, None
            groups = Recognizer._groups(feats, use)
            for it in range(n_iter + 1):
                # the last E-step of a pass only scores: no CMLLR statistics
                stats = runner.map_sum(
                    partial(_estep, new, W=W, cmllr=cmllr and it < n_iter), groups, group=1)
                jac = stats.n_frames * (logdet0 + (float(np.linalg.slogdet(W[:, :D])[1])
                                                   if W is not None else 0.0))
                loglik = stats.loglik + jac
                objective = loglik
                if method == "map":
                    objective += _map_log_prior(new.pool_.means_.reshape(n_gauss, D),
                                                prior_means, var, ct, tau)
                entry = {"pass": p, "iteration": it, "loglik": loglik,
                         "objective": objective, "n_frames": stats.n_frames}
                if it == 0 and n_changed is not None:
                    entry["n_changed"] = n_changed
                history.append(entry)
                if verbose:
                    print(f"adapt {method} pass {p + 1} iteration {it}: log-likelihood/frame "
                          f"{loglik / stats.n_frames:.4f}", file=sys.stderr)
                if it == n_iter:
                    break
                if cmllr:
                    W = cmllr_update(W, stats, n_sweeps, blocks)
                    new.feature_transform_ = _compose(W, W0)
                elif method == "mllr":
                    if mllr_form is None:
                        mllr_form = _mllr_form(stats, prior_means, var)
                    mllr_W = mllr_update(stats, prior_means, var, mllr_form)
                    means = prior_means @ mllr_W[:, :D].T + mllr_W[:, D]
                    new.pool_.means_ = means.reshape(S, M, D)
                else:
                    new.pool_.means_ = map_update(stats, prior_means, tau).reshape(S, M, D)
    if method == "mllr":
        new.mllr_transform_ = mllr_W
        new.mllr_form_ = mllr_form
    new.adaptation_history_ = history
    new.adaptation_method_ = method
    new.adaptation_time_ = time.perf_counter() - start
    return new
