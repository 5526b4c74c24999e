"""HMM networks built from left-to-right unit models (words and silence).

A *unit* is a left-to-right model whose states live in a pool shared by all units: state ``s``
of the pool has a self-loop probability ``stay[s]``; leaving it moves to the next state of the
unit, or, from the unit's last state, *exits* the unit. A *network* strings copies of units
(nodes) together with weighted edges from a node's exit to another node's first state, weighted
entries at the start of an utterance and weighted ends (an utterance must end in the last state
of a node with an end weight, leaving it, as HTK's exit state does).

Two networks are built here, and both are ordinary HMMs over pool states once expanded:

* :func:`chain`: the models of a transcript in order, with optional silence between and around
  the words. This is HERest's composite model for embedded training, and with a one-word
  transcript the model an isolated word is scored with.
* :func:`word_loop`: any word after any word (or after the words a grammar allows), with
  optional silence between words and a word insertion penalty: connected-word recognition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Network", "expand", "chain", "word_loop"]


@dataclass
class Network:
    """An expanded network: an HMM whose states are copies of pool states.

    Attributes
    ----------
    states : (L,) int
        Pool state of each network state.
    node : (L,) int
        Node (unit copy) of each network state.
    first : (n_nodes,) int
        Network index of each node's first state.
    log_start : (L,)
        Log-probability of starting in each state.
    log_trans : (L, L)
        Log transition probabilities (rows may sum to less than one: the rest is the end).
    log_final : (L,)
        Log-probability of ending the utterance after each state (-inf: not allowed).
    """

    states: np.ndarray
    node: np.ndarray
    first: np.ndarray
    log_start: np.ndarray
    log_trans: np.ndarray
    log_final: np.ndarray

    @property
    def startprob(self) -> np.ndarray:
        return np.exp(self.log_start)

    @property
    def transmat(self) -> np.ndarray:
        return np.exp(self.log_trans)

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The allowed transitions as an edge list: (src, dst, log probability)."""
        src, dst = np.nonzero(np.isfinite(self.log_trans))
        return (src.astype(np.intp), dst.astype(np.intp),
                np.ascontiguousarray(self.log_trans[src, dst]))

    def entries(self, path: np.ndarray) -> np.ndarray:
        """Frames of a state path at which a node is entered (frame 0 included)."""
        path = np.asarray(path)
        new = np.ones(len(path), dtype=bool)
        first = self.first[self.node[path[1:]]] == path[1:]
        new[1:] = first & (path[1:] != path[:-1])
        return np.flatnonzero(new)


def _log(p) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, -np.inf)
    np.log(p, out=out, where=p > 0)
    return out


def expand(node_units, unit_offsets, stay, start, edges, end) -> Network:
    """Expand a network of unit copies into an HMM over pool states.

    Parameters
    ----------
    node_units : sequence of int
        Unit of each node.
    unit_offsets : (n_units + 1,) int
        Pool states of unit ``u`` are ``unit_offsets[u]:unit_offsets[u + 1]``.
    stay : (n_pool,) float
        Self-loop probability of each pool state.
    start : dict {node: log weight}
        Entries at the start of an utterance.
    edges : iterable of (from node, to node, log weight)
        The exit of ``from`` enters the first state of ``to`` with this weight (times the
        exit probability of ``from``'s last state). Repeated edges add up.
    end : dict {node: log weight}
        Ends of an utterance after leaving the node's last state.
    """
    node_units = np.asarray(node_units, dtype=np.intp)
    lo, hi = unit_offsets[node_units], unit_offsets[node_units + 1]
    sizes = hi - lo
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    last = first + sizes - 1
    states = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)])
    node = np.repeat(np.arange(len(node_units)), sizes)
    L = len(states)
    p = np.asarray(stay, dtype=np.float64)[states]
    log_stay, log_leave = _log(p), _log(1.0 - p)
    log_trans = np.full((L, L), -np.inf)
    idx = np.arange(L)
    log_trans[idx, idx] = log_stay
    inner = np.ones(L, dtype=bool)
    inner[last] = False
    log_trans[idx[inner], idx[inner] + 1] = log_leave[inner]
    for a, b, w in edges:
        i, j = last[a], first[b]
        log_trans[i, j] = np.logaddexp(log_trans[i, j], log_leave[i] + w)
    log_start = np.full(L, -np.inf)
    for n, w in start.items():
        log_start[first[n]] = np.logaddexp(log_start[first[n]], w)
    log_final = np.full(L, -np.inf)
    for n, w in end.items():
        log_final[last[n]] = np.logaddexp(log_final[last[n]], log_leave[last[n]] + w)
    return Network(states, node, first, log_start, log_trans, log_final)


def chain(words, unit_offsets, stay, silence=None, skip=0.5) -> Network:
    """The words of a transcript in order, each optionally preceded and followed by silence.

    Parameters
    ----------
    words : sequence of int
        Units of the words (at least one).
    silence : int or None
        Unit of the silence model; None for no silence.
    skip : float
        Probability of skipping each optional silence.

    Returns
    -------
    Network
        Nodes are ``[sil, w1, sil, w2, ..., wn, sil]`` with silence, else ``[w1, ..., wn]``.
    """
    words = list(words)
    if silence is None:
        nodes = words
        edges = [(i, i + 1, 0.0) for i in range(len(words) - 1)]
        return expand(nodes, unit_offsets, stay, {0: 0.0}, edges, {len(words) - 1: 0.0})
    nodes = [silence]
    for w in words:
        nodes += [w, silence]
    ls, lk = np.log1p(-skip), np.log(skip)
    n = len(nodes)
    # silence nodes are the even ones: enter them (1 - skip) or jump over them (skip)
    start = {0: ls, 1: lk}
    edges = [(0, 1, 0.0)]
    for i in range(1, n - 1, 2):  # word i -> silence i+1, or over it to word i+2 / the end
        edges.append((i, i + 1, ls))
        if i + 2 < n:
            edges += [(i, i + 2, lk), (i + 1, i + 2, 0.0)]
    end = {n - 1: 0.0, n - 2: lk}
    return expand(nodes, unit_offsets, stay, start, edges, end)


def word_loop(words, unit_offsets, stay, silence=None, skip=0.5, penalty=0.0,
              grammar=None) -> tuple[Network, np.ndarray]:
    """Connected words: any sequence of words, with optional silence between and around them.

    Parameters
    ----------
    words : sequence of int
        Units of the words.
    silence : int or None
        Unit of the silence model; None for no silence.
    skip : float
        Probability of skipping an optional silence.
    penalty : float
        Log weight added at every word entry (word insertion penalty).
    grammar : dict or None
        Word-pair grammar over word *indices* (positions in ``words``): ``grammar[i]`` lists the
        words that may follow word ``i``, ``grammar[-1]`` the words that may start, and word
        ``i`` may end the utterance if ``-2`` is in ``grammar[i]``. Missing keys allow every
        word (and the end). None allows every sequence of at least one word.

    Returns
    -------
    network : Network
    word_of_node : (n_nodes,) int
        Word index of each node, -1 for silence.
    """
    W = len(words)
    everything = list(range(W)) + [-2]
    follow = {k: list(everything) for k in [-1, *range(W)]}
    if grammar is not None:
        for k, v in grammar.items():
            follow[k] = list(v)
    nodes = list(words)
    word_of_node = list(range(W))
    sil_after = {}
    if silence is not None:
        for k in [-1, *range(W)]:  # one silence copy per history: the grammar sees through it
            sil_after[k] = len(nodes)
            nodes.append(silence)
            word_of_node.append(-1)
    ls = np.log1p(-skip) if silence is not None else -np.inf
    lk = np.log(skip) if silence is not None else 0.0
    start, edges, end = {}, [], {}

    def successors(k):
        nxt = [j for j in follow[k] if j >= 0]
        return nxt, (-np.log(len(nxt)) if nxt else 0.0), -2 in follow[k]

    nxt, lp, _ = successors(-1)
    for j in nxt:
        start[j] = lk + lp + penalty
    if silence is not None and nxt:
        start[sil_after[-1]] = ls
        for j in nxt:
            edges.append((sil_after[-1], j, lp + penalty))
    for i in range(W):
        nxt, lp, may_end = successors(i)
        for j in nxt:
            edges.append((i, j, lk + lp + penalty))
        if may_end:
            end[i] = lk
        if silence is not None:
            edges.append((i, sil_after[i], ls))
            for j in nxt:
                edges.append((sil_after[i], j, lp + penalty))
            if may_end:
                end[sil_after[i]] = 0.0
    net = expand(nodes, unit_offsets, stay, start, edges, end)
    return net, np.asarray(word_of_node, dtype=np.intp)
