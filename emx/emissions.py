"""Emission models of the HMMs, as objects with one small interface.

An HMM is transitions plus an emission model: ``K`` output distributions, one per state.
:class:`emx.hmm.BaseHMM` owns the transitions, the forward-backward and decoding; everything
that depends on what the observations are (real vectors, symbols, counts) lives in an
:class:`Emission`. The public HMM classes (GaussianHMM, GMMHMM, CategoricalHMM, ...) are thin:
they hold hmmlearn's hyperparameters and fitted attributes and build their emission object with
``_make_emission()``; after initialisation and every M-step, the emission's fitted attributes
(:attr:`Emission.attrs`, hmmlearn's names) are copied back onto the estimator.

Data flow of one EM iteration (:meth:`emx.hmm.BaseHMM._estep`, ``_mstep``)::

    em = hmm._make_emission()                 # built from the estimator's current attributes
    loglik_fn = em.estep_fn()                 # per-E-step preparation (log weights, factors)
    for each chunk X of whole sequences:
        loglik, context = loglik_fn(X)        # (n, K) state log-likelihoods
        post = forward-backward(loglik)       # state posteriors (compiled)
        stats += em.stats(X, post, context)   # additive statistics
    em.mstep(stats, params); hmm <- em.attrs  # closed form, floors, priors
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["Emission"]


class Emission:
    """Interface of an HMM emission model (subclass it; every method below but
    :meth:`far_loglik` and :meth:`validate` must be provided).

    An emission object is built fresh from its HMM's attributes whenever the HMM needs one
    (once per E-step, for initialisation, sampling and scoring) and is cheap to build. Its
    fitted parameters are attributes named as in hmmlearn (``means_``, ``covars_``,
    ``emissionprob_``, ...), listed in :attr:`attrs`; a parameter not yet set is absent
    (``hasattr`` is False) or None.

    Attributes
    ----------
    n_components : int
        Number of states.
    attrs : tuple of str
        Names of the fitted parameters, copied to and from the HMM.
    """

    attrs: tuple[str, ...] = ()
    n_components: int

    # ------------------------------------------------------------------ data, checks
    def validate(self, X: np.ndarray) -> np.ndarray:
        """Check observations (already a finite float64 C-contiguous 2-D array) for this
        emission model, e.g. non-negative integers for counts; return them (possibly
        converted). Raise ValueError naming the problem. Called by fit and by every
        inference method."""
        return X

    def check(self, n_features: int) -> None:
        """Validate the current parameters (shapes for ``n_features`` columns, finiteness,
        normalisation) and hyperparameters; convert them to C-contiguous float64 in place.
        Raise ValueError naming the attribute."""
        raise NotImplementedError

    def n_parameters(self, params: str) -> int:
        """Number of free parameters estimated when ``params`` holds their letters (for
        :meth:`emx.hmm.BaseHMM.aic` / ``bic``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ EM
    def init(self, X: np.ndarray, init_params: str, random_state) -> None:
        """Initialise from all the training frames ``X``: every parameter whose letter is in
        ``init_params``, and every parameter not set yet."""
        raise NotImplementedError

    def estep_fn(self) -> Callable[[np.ndarray], tuple[np.ndarray, Any]]:
        """A function of a chunk of frames returning its ``(n, K)`` state log-likelihoods
        (a new array the caller may overwrite) and a context :meth:`stats` needs (or None).
        Work that depends only on the parameters is done here, once per E-step."""
        raise NotImplementedError

    def stats(self, X: np.ndarray, post: np.ndarray, context) -> Any:
        """Additive sufficient statistics of a chunk given its state posteriors ``post``
        (n, K): an object with ``+`` and ``+=``."""
        raise NotImplementedError

    def mstep(self, stats, params: str) -> None:
        """Update the parameters whose letters are in ``params`` from summed statistics
        (closed form, with priors and floors); a state with no data keeps its parameters."""
        raise NotImplementedError

    def log_prior(self, params: str) -> float:
        """Log density of the current parameters under the priors of those in ``params``
        (the constant-free part EM's objective needs); 0 without priors."""
        return 0.0

    # ------------------------------------------------------------------ inference, sampling
    def far_loglik(self, X: np.ndarray) -> np.ndarray:
        """Relative state log-likelihoods of frames whose log-likelihood underflows to -inf
        in every state (0 for the nearest state, -inf for others). Models that cannot
        underflow that way need not provide it."""
        raise ValueError("Frames far from every state (log-likelihood below -1.8e308).")

    def sample(self, states: np.ndarray, random_state: np.random.RandomState) -> np.ndarray:
        """One observation per entry of ``states``, shape (len(states), n_features)."""
        raise NotImplementedError
