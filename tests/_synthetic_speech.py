"""Synthetic word recordings for the recogniser tests."""

import numpy as np

# Three "words" of three 4-d segments each; column 0 plays the log energy (high in speech,
# low in silence), as the front end's first feature does.
SEGMENTS = {
    "a": [[4, 3, 0, 0], [4, 0, 3, 0], [4, 0, 0, 3]],
    "b": [[4, -3, 0, 0], [4, 0, -3, 0], [4, 3, 3, 0]],
    "c": [[4, 0, 0, -3], [4, -3, 3, 0], [4, 3, 0, 3]],
}
SILENCE_MEAN = [-4, 0, 0, 0]


def _speak(words, rng, gaps=True):
    parts = []
    for i, w in enumerate(words):
        if gaps and (i > 0 or rng.random() < 0.7):
            parts.append(np.asarray(SILENCE_MEAN) + 0.3 * rng.standard_normal(
                (rng.integers(4, 9), 4)))
        for mean in SEGMENTS[w]:
            parts.append(np.asarray(mean) + 0.7 * rng.standard_normal((rng.integers(3, 7), 4)))
    if gaps and rng.random() < 0.7:
        parts.append(np.asarray(SILENCE_MEAN) + 0.3 * rng.standard_normal((5, 4)))
    return np.concatenate(parts)


def _isolated(n, seed):
    rng = np.random.default_rng(seed)
    labels = [str(x) for x in rng.choice(list(SEGMENTS), n)]
    return [_speak([w], rng) for w in labels], labels


def _strings(n, seed, n_words=(2, 5)):
    rng = np.random.default_rng(seed)
    refs = [[str(x) for x in rng.choice(list(SEGMENTS), rng.integers(*n_words))]
            for _ in range(n)]
    return [_speak(r, rng) for r in refs], refs
