"""Compiled kernels (no model policy). Built from ``src/`` by meson.

Every kernel returns an int status (documented at the top of each ``src/*.pyx`` and in
``src/_checks.pxi``): ``STATUS_OK`` (-1) on success; ``n >= 0``, the index of the caller's
sequence that has probability zero (the HMM kernels); ``STATUS_NOT_PD`` (-2), a covariance
that is not positive definite (``_missing``). Callers of the HMM and missing-data kernels turn
a failure into a ValueError worded for their model; :func:`check_ok` checks the kernels that
have no data-dependent failure.
"""

STATUS_OK = -1
STATUS_NOT_PD = -2


def check_ok(status: int) -> None:
    """Raise RuntimeError unless a kernel with no data-dependent failure (the ``_gauss`` and
    ``_discrete`` kernels, ``_hmm.sample_states``) returned ``STATUS_OK``: anything else is a
    bug in emx."""
    if status != STATUS_OK:
        raise RuntimeError(f"a compiled kernel returned status {status}, expected {STATUS_OK}")
