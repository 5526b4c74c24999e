"""emx.speech.formats: HTK parameter files, Kaldi archives (kaldiio), HTK MMF export."""

import re
import struct
import sys

import numpy as np
import pytest
from _synthetic_speech import _isolated
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from emx.speech import Recognizer
from emx.speech.formats import (
    parm_kind_code,
    parm_kind_name,
    read_htk,
    read_kaldi,
    read_mmf,
    write_htk,
    write_mmf,
)

# ---------------------------------------------------------------------------- HTK parameter files
FRAMES = np.array([[1.5, -2.25, 1e-3], [0.0, 3.0e5, -7.125], [2.0, 4.0, 8.0],
                   [-1.0, 0.5, 0.25]])


def _by_hand(frames, period=100_000, kind=6 | 0o100, size=None, n=None):
    """An HTK file built with struct: big-endian int32, int32, int16, int16, float32s."""
    n = len(frames) if n is None else n
    size = 4 * len(frames[0]) if size is None else size
    body = b"".join(struct.pack(">" + "f" * len(row), *row) for row in frames)
    return struct.pack(">iihh", n, period, size, kind) + body


def test_header_and_byte_order_against_a_file_written_by_hand(tmp_path):
    path = tmp_path / "hand.mfc"
    path.write_bytes(_by_hand(FRAMES, period=125_000, kind=6 | 0o100))  # MFCC_E
    X, head = read_htk(path, return_header=True)
    assert X.dtype == np.float64 and X.shape == (4, 3)
    np.testing.assert_array_equal(X, FRAMES.astype(np.float32).astype(np.float64))
    assert head.n_samples == 4 and head.samp_period == 125_000 and head.samp_size == 12
    assert head.parm_kind == 0o106 and head.kind == "MFCC_E"
    assert head.frame_period == pytest.approx(0.0125)
    # and write_htk produces exactly those bytes
    ours = tmp_path / "ours.mfc"
    write_htk(ours, FRAMES, samp_period=125_000, parm_kind="MFCC_E")
    assert ours.read_bytes() == path.read_bytes()
    assert ours.read_bytes()[:4] == b"\x00\x00\x00\x04"  # big-endian frame count


def test_round_trip_and_inputs_untouched(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 39))
    before = X.copy()
    path = tmp_path / "rt.htk"
    write_htk(path, X, parm_kind="MFCC_E_D_A")
    np.testing.assert_array_equal(X, before)
    Y, head = read_htk(str(path), return_header=True)
    np.testing.assert_array_equal(Y, X.astype(np.float32))
    assert head.kind == "MFCC_E_D_A" and head.parm_kind == 838 and head.samp_size == 156
    # float32 values survive exactly; Fortran order and ints are written as values
    Z = np.asfortranarray(rng.integers(-5, 5, (7, 3)))
    write_htk(path, Z)
    np.testing.assert_array_equal(read_htk(path), Z)
    write_htk(path, np.zeros((0, 3)))
    assert read_htk(path).shape == (0, 3)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 20), d=st.integers(1, 50), period=st.integers(1, 2**31 - 1),
       code=st.integers(0, 2**16 - 1), seed=st.integers(0, 2**32 - 1))
def test_htk_round_trip_property(tmp_path_factory, n, d, period, code, seed):
    """Any shape, period and readable parameter kind: write then read gives the float32
    values and the header back; an unreadable kind is refused on writing."""
    path = tmp_path_factory.mktemp("htk") / "p.htk"
    X = np.random.default_rng(seed).standard_normal((n, d)) * 1e3
    try:
        parm_kind_name(code)
        readable = not (code & 0o12000) and (code & 0o77) not in (0, 5, 10)
    except ValueError:
        readable = False
    if not readable:
        with pytest.raises(ValueError):
            write_htk(path, X, samp_period=period, parm_kind=code)
        return
    write_htk(path, X, samp_period=period, parm_kind=code)
    Y, head = read_htk(path, return_header=True)
    np.testing.assert_array_equal(Y, X.astype(np.float32))
    assert head == (n, period, 4 * d, code, parm_kind_name(code))


def test_the_top_qualifier_bit_is_read(tmp_path):
    path = tmp_path / "t.mfc"
    code = parm_kind_code("USER_T")
    assert code == 9 | 0o100000
    write_htk(path, FRAMES, parm_kind=code)
    assert read_htk(path, return_header=True)[1].kind == "USER_T"


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00\x00", "shorter than the 12-byte header"),
    (_by_hand(FRAMES)[:-3], "truncated"),
    (_by_hand(FRAMES) + b"\x00" * 4, "longer than its header says"),
    (_by_hand(FRAMES, n=5), "truncated"),
    (_by_hand(FRAMES, size=10), "multiple of 4"),
    (_by_hand(FRAMES, size=16), "truncated"),
    (_by_hand(FRAMES, n=-1), "negative frame count"),
    (_by_hand(FRAMES, period=0), "sample period"),
    (_by_hand(FRAMES, kind=6 | 0o2000), r"compressed \(_C\).*SAVECOMPRESSED"),
    (_by_hand(FRAMES, kind=6 | 0o10000), r"checksum \(_K\).*SAVEWITHCRC"),
    (_by_hand(FRAMES, kind=0), "16-bit integers"),
    (_by_hand(FRAMES, kind=40), "base kind 40 is unknown"),
    (_by_hand([[1.0, float("nan"), 2.0]] * 2), "frame 0 holds NaN"),
])
def test_bad_htk_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad file.mfc"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(path))) as err:
        read_htk(path)
    assert re.search(message, str(err.value)), str(err.value)


def test_little_endian_file_is_refused(tmp_path):
    path = tmp_path / "le.mfc"
    body = b"".join(struct.pack("<fff", *row) for row in FRAMES)
    path.write_bytes(struct.pack("<iihh", 4, 100_000, 12, 9) + body)
    with pytest.raises(ValueError, match="le.mfc"):
        read_htk(path)


@pytest.mark.parametrize("X, kwargs, message", [
    (np.zeros(5), {}, "2-D"),
    (np.array([[1.0, np.nan]]), {}, "NaN"),
    (np.array([[1e39]]), {}, "float32"),
    (np.zeros((2, 8192)), {}, "1 to 8191 features"),
    (np.zeros((2, 0)), {}, "features"),
    (np.zeros((2, 2)), {"samp_period": 0}, "samp_period"),
    (np.zeros((2, 2)), {"samp_period": 1.5}, "samp_period"),
    (np.zeros((2, 2)), {"parm_kind": "MFCC_C"}, "compressed"),
    (np.zeros((2, 2)), {"parm_kind": "WAVEFORM"}, "16-bit"),
    (np.zeros((2, 2)), {"parm_kind": "MFCC_Q"}, "unknown qualifier"),
    (np.zeros((2, 2)), {"parm_kind": "NOPE"}, "unknown HTK parameter kind"),
])
def test_write_htk_refuses_bad_input(tmp_path, X, kwargs, message):
    path = tmp_path / "w.mfc"
    with pytest.raises(ValueError, match=message):
        write_htk(path, X, **kwargs)
    assert not path.exists()


def test_parameter_kind_names_and_codes():
    assert parm_kind_code("mfcc_e_d_a") == 6 + 0o100 + 0o400 + 0o1000
    assert parm_kind_code("MFCC_O_D_A") == parm_kind_code("MFCC_0_D_A") == 6 + 0o20000 + 0o1400
    assert parm_kind_name(parm_kind_code("PLP_0_D_A_Z")) == "PLP_D_A_Z_0"  # HTK's bit order
    for base in range(12):
        for quals in range(1 << 10):
            code = base | (quals << 6)
            assert parm_kind_code(parm_kind_name(code)) == code
    with pytest.raises(ValueError, match="16-bit"):
        parm_kind_name(1 << 16)
    with pytest.raises(TypeError):
        parm_kind_code(1.5)


# ---------------------------------------------------------------------------- Kaldi
def test_kaldi_without_kaldiio_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kaldiio", None)
    with pytest.raises(ImportError, match=r'pip install "[\w.-]+\[kaldi\]"'):
        read_kaldi(tmp_path / "feats.ark")


def test_kaldi_archive_and_script(tmp_path):
    kaldiio = pytest.importorskip("kaldiio")
    rng = np.random.default_rng(1)
    feats = {f"utt{i}": rng.standard_normal((5 + i, 13)).astype(np.float32) for i in range(4)}
    ark, scp = tmp_path / "feats.ark", tmp_path / "feats.scp"
    kaldiio.save_ark(str(ark), feats, scp=str(scp))
    for source in (ark, scp, f"ark:{ark}", f"scp:{scp}"):
        got = read_kaldi(source)
        assert list(got) == list(feats)
        for key, value in feats.items():
            assert got[key].dtype == np.float64 and got[key].flags.c_contiguous
            np.testing.assert_array_equal(got[key], value)
    # text archives and float64 matrices too
    text = tmp_path / "text.ark"
    kaldiio.save_ark(str(text), {"a": np.arange(6.0).reshape(2, 3)}, text=True)
    np.testing.assert_array_equal(read_kaldi(text)["a"], np.arange(6.0).reshape(2, 3))


def test_kaldi_bad_files(tmp_path):
    kaldiio = pytest.importorskip("kaldiio")
    vec = tmp_path / "vec.ark"
    kaldiio.save_ark(str(vec), {"spk1": np.ones(4, dtype=np.float32)})
    with pytest.raises(ValueError, match=r"vec\.ark.*'spk1'.*2-D"):
        read_kaldi(vec)
    nan = tmp_path / "nan.ark"
    kaldiio.save_ark(str(nan), {"u": np.array([[1.0, np.nan]], dtype=np.float32)})
    with pytest.raises(ValueError, match="nan.ark.*NaN"):
        read_kaldi(nan)
    junk = tmp_path / "junk.ark"
    junk.write_bytes(b"utt1 \x00Bxx\x01\x02garbage")
    with pytest.raises(ValueError, match="junk.ark"):
        read_kaldi(junk)
    with pytest.raises(FileNotFoundError, match="missing.scp"):
        read_kaldi(tmp_path / "missing.scp")
    nan_scp = tmp_path / "nan.scp"
    kaldiio.save_ark(str(tmp_path / "nan2.ark"), {"u": np.array([[np.inf]], dtype=np.float32)},
                     scp=str(nan_scp))
    with pytest.raises(ValueError, match="nan.scp.*'u' holds NaN or inf"):
        read_kaldi(nan_scp)
    dangling = tmp_path / "dangling.scp"
    dangling.write_text(f"u1 {tmp_path / 'gone.ark'}:5\n")
    with pytest.raises(ValueError, match="dangling.scp.*could not be read"):
        read_kaldi(dangling)


# ---------------------------------------------------------------------------- HTK MMF
@pytest.fixture(scope="module")
def diag_rec():
    X, y = _isolated(30, 0)
    return Recognizer(n_states=3, n_mix=2, n_iter=2, word_insertion_penalty=-5).fit(X, y)


def _check_round_trip(rec, mmf, rtol, silence_name="sil"):
    names = [str(w) for w in rec.words_] + ([silence_name] if rec.silence else [])
    assert list(mmf.hmms) == names
    assert mmf.vecsize == rec.n_features_in_ and mmf.covariance_type == rec.covariance_type
    pool = rec.pool_
    for u, name in enumerate(names):
        a, b = rec.unit_offsets_[u], rec.unit_offsets_[u + 1]
        hmm = mmf.hmms[name]
        assert hmm.n_states == b - a and hmm.transp.shape == (b - a + 2,) * 2
        np.testing.assert_allclose(hmm.weights, pool.weights_[a:b], rtol=rtol)
        np.testing.assert_allclose(hmm.means, pool.means_[a:b], rtol=rtol, atol=1e-12)
        np.testing.assert_allclose(hmm.covars, pool.covars_[a:b], rtol=rtol, atol=rtol * 1e-3)
        # left to right: entry -> first state; stay_ on the diagonal; leave to the next
        T = hmm.transp
        n = b - a
        expected = np.zeros((n + 2, n + 2))
        expected[0, 1] = 1.0
        for i in range(n):
            expected[i + 1, i + 1] = rec.stay_[a + i]
            expected[i + 1, i + 2] = 1.0 - rec.stay_[a + i]
        np.testing.assert_allclose(T, expected, rtol=rtol, atol=1e-12)


def test_mmf_layout(diag_rec, tmp_path):
    path = tmp_path / "models.mmf"
    write_mmf(diag_rec, path)
    text = path.read_text()
    lines = text.splitlines()
    assert lines[:3] == ["~o", "<STREAMINFO> 1 4", "<VECSIZE> 4<NULLD><USER><DIAGC>"]
    assert [ln for ln in lines if ln.startswith("~h")] == ['~h "a"', '~h "b"', '~h "c"',
                                                           '~h "sil"']
    assert text.count("<BEGINHMM>") == text.count("<ENDHMM>") == 4
    assert text.count("<NUMSTATES> 5") == 4  # 3 emitting + entry and exit
    assert text.count("<NUMMIXES> 2") == 12 and text.count("<MIXTURE>") == 24
    assert text.count("<TRANSP> 5") == 4
    # GCONST is log((2 pi)^D |Sigma|), as HTK defines it
    first = lines.index("<VARIANCE> 4")
    var = np.array(lines[first + 1].split(), dtype=float)
    gconst = float(lines[first + 2].split()[1])
    assert gconst == pytest.approx(4 * np.log(2 * np.pi) + np.log(var).sum(), rel=1e-7)
    write_mmf(diag_rec, path, parm_kind="MFCC_E_D_A", silence_name="SIL")
    assert "<VECSIZE> 4<NULLD><MFCC_E_D_A><DIAGC>" in path.read_text()
    assert read_mmf(path).parm_kind == "MFCC_E_D_A"


def test_mmf_round_trip_diag(diag_rec, tmp_path):
    path = tmp_path / "models.mmf"
    write_mmf(diag_rec, path)  # 9 significant digits
    _check_round_trip(diag_rec, read_mmf(path), rtol=1e-8)
    write_mmf(diag_rec, path, precision=16, silence_name="pau")  # float64 exactly
    _check_round_trip(diag_rec, read_mmf(path), rtol=1e-15, silence_name="pau")
    write_mmf(diag_rec, path, precision=3)
    _check_round_trip(diag_rec, read_mmf(path), rtol=1e-3)


def test_mmf_round_trip_full_and_no_silence(tmp_path):
    X, y = _isolated(24, 3)
    y = [{"a": 1, "b": 2, "c": 3}[w] for w in y]  # int labels become names "1", "2", "3"
    rec = Recognizer(n_states=2, n_mix=2, n_iter=2, covariance_type="full", silence=False,
                     var_floor=0.1).fit(X, y)
    path = tmp_path / "full.mmf"
    write_mmf(rec, path, precision=16)
    text = path.read_text()
    assert "<FULLC>" in text and "<INVCOVAR> 4" in text and "<VARIANCE>" not in text
    mmf = read_mmf(path)
    _check_round_trip(rec, mmf, rtol=1e-9)
    write_mmf(rec, path)
    _check_round_trip(rec, read_mmf(path), rtol=1e-5)


def test_mmf_written_by_hand_in_htk_layout(tmp_path):
    """A file as HTK writes it: a single Gaussian without <MIXTURE>, GCONST, several
    Gaussians with one missing (dropped by HTK), another covariance kind spelling."""
    path = tmp_path / "hand.mmf"
    path.write_text(
        '~o <STREAMINFO> 1 2 <VECSIZE> 2<NULLD><MFCC_0><DIAGC>\n'
        '~h "yes"\n<BEGINHMM> <NUMSTATES> 4\n'
        '<STATE> 2\n<MEAN> 2\n 1.0 -1.0\n<VARIANCE> 2\n 0.5 2.0\n<GCONST> 3.67\n'
        '<STATE> 3 <NUMMIXES> 3\n<MIXTURE> 1 0.25\n<MEAN> 2 0 0\n<VARIANCE> 2 1 1\n'
        '<MIXTURE> 3 7.5e-01\n<MEAN> 2 2 3\n<VARIANCE> 2 4 5\n'
        '<TRANSP> 4\n 0 1 0 0\n 0 0.6 0.4 0\n 0 0 0.9 0.1\n 0 0 0 0\n<ENDHMM>\n')
    mmf = read_mmf(path)
    assert mmf.parm_kind == "MFCC_0" and mmf.vecsize == 2
    hmm = mmf.hmms["yes"]
    np.testing.assert_array_equal(hmm.weights, [[1, 0, 0], [0.25, 0, 0.75]])
    np.testing.assert_array_equal(hmm.means[0, 0], [1, -1])
    np.testing.assert_array_equal(hmm.covars[0, 0], [0.5, 2])
    np.testing.assert_array_equal(hmm.means[1, 2], [2, 3])
    np.testing.assert_array_equal(hmm.covars[1, 1], [1, 1])  # the missing mixture
    np.testing.assert_array_equal(np.diag(hmm.transp, 0), [0, 0.6, 0.9, 0])


def test_mmf_with_shared_macros(tmp_path):
    """Tied states, Gaussians, means, variances and transitions as HHEd writes them, and
    HCompV's variance floor macro (read, not used): every use gets the macro's values."""
    path = tmp_path / "tied.mmf"
    path.write_text(
        '~o <STREAMINFO> 1 2 <VECSIZE> 2<NULLD><MFCC><DIAGC>\n'
        '~v "varFloor1" <VARIANCE> 2 0.01 0.01\n'
        '~u "mu" <MEAN> 2 5 6\n'
        '~v "var" <VARIANCE> 2 2 3\n'
        '~m "g" ~u "mu" ~v "var" <GCONST> 1.0\n'
        '~s "shared" <NUMMIXES> 2 <MIXTURE> 1 0.4 ~m "g"\n'
        '  <MIXTURE> 2 0.6 <MEAN> 2 0 0 <VARIANCE> 2 1 1\n'
        '~t "lr3" <TRANSP> 3 0 1 0 0 0.7 0.3 0 0 0\n'
        '~h "a" <BEGINHMM> <NUMSTATES> 3 <STATE> 2 ~s "shared" ~t "lr3" <ENDHMM>\n'
        '~h "b" <BEGINHMM> <NUMSTATES> 4 <STATE> 2 ~s "shared"\n'
        '  <STATE> 3 <MEAN> 2 1 1 ~v "var"\n'
        '  <TRANSP> 4 0 1 0 0 0 0.5 0.5 0 0 0 0.2 0.8 0 0 0 0 <ENDHMM>\n')
    mmf = read_mmf(path)
    a, b = mmf.hmms["a"], mmf.hmms["b"]
    np.testing.assert_array_equal(a.weights, [[0.4, 0.6]])
    np.testing.assert_array_equal(a.means[0], [[5, 6], [0, 0]])
    np.testing.assert_array_equal(a.covars[0], [[2, 3], [1, 1]])
    np.testing.assert_array_equal(a.transp[1], [0, 0.7, 0.3])
    np.testing.assert_array_equal(b.means[0], a.means[0])  # the tied state
    np.testing.assert_array_equal(b.weights[1], [1, 0])  # one Gaussian in a 2-mixture model
    np.testing.assert_array_equal(b.covars[1, 0], [2, 3])
    a.means[0, 0, 0] = -1  # models own their arrays
    assert b.means[0, 0, 0] == 5
    bad = tmp_path / "bad.mmf"
    bad.write_text(path.read_text().replace('<STATE> 2 ~s "shared" ~t "lr3"',
                                            '<STATE> 2 ~s "shared" ~t "lr3x"'))
    with pytest.raises(ValueError, match="~t 'lr3x' is used before it is defined"):
        read_mmf(bad)
    bad.write_text(path.read_text().replace("<NUMSTATES> 3", "<NUMSTATES> 4 <STATE> 3 ~s "
                                            '"shared"'))
    with pytest.raises(ValueError, match="<TRANSP> 3 for <NUMSTATES> 4"):
        read_mmf(bad)
    bad.write_text(path.read_text().replace("<DIAGC>", "<FULLC>"))
    with pytest.raises(ValueError, match="<VARIANCE> in a <FULLC> model"):
        read_mmf(bad)


GOOD = ('~o <VECSIZE> 1<NULLD><USER><DIAGC>\n~h "w"\n<BEGINHMM> <NUMSTATES> 3\n'
        '<STATE> 2 <MEAN> 1 0.0 <VARIANCE> 1 1.0\n<TRANSP> 3\n0 1 0\n0 0.5 0.5\n0 0 0\n'
        '<ENDHMM>\n')


@pytest.mark.parametrize("text, message", [
    (GOOD[:-25], "ends first"),
    (GOOD[:-9], "expected <ENDHMM>, found end of file"),
    (GOOD.replace("<VARIANCE> 1 1.0", "<VARIANCE> 1 -1.0"), "variances must be positive"),
    (GOOD.replace("<MEAN> 1 0.0", "<MEAN> 2 0.0"), "differs from <VECSIZE>"),
    (GOOD.replace("0 0.5 0.5", "0 0.5 0.6"), "must sum to 1"),
    (GOOD.replace("<TRANSP> 3", "<TRANSP> 4"), "<TRANSP> 4 for <NUMSTATES> 3"),
    (GOOD.replace("0.0 <VARIANCE>", "zero <VARIANCE>"), "found 'zero'"),
    (GOOD.replace('~h "w"', '~r "tree"'), "macro ~r is not supported"),
    (GOOD.replace("<STATE> 2 <MEAN>", '<STATE> 2 ~s "nowhere" <MEAN>'),
     "~s 'nowhere' is used before it is defined"),
    (GOOD.replace("<TRANSP> 3\n", '~t "t3"\n'), "~t 't3' is used before it is defined"),
    (GOOD.replace("<STATE> 2", "<STATE> 5"), "<STATE> index"),
    (GOOD.replace("<DIAGC>", "<FULLC>"), "<VARIANCE> in a <FULLC> model"),
    (GOOD.replace("<VECSIZE> 1", "<STREAMINFO> 2 1 1 <VECSIZE> 2"), "2 streams"),
    (GOOD.replace("<ENDHMM>\n", "<ENDHMM>\n" + GOOD[GOOD.index("~h"):]), "defined twice"),
    (GOOD.replace("<STATE> 2 <MEAN>", "<STATE> 2 <NUMMIXES> 2 <MIXTURE> 1 0.5 <MEAN>"),
     "sum to 0.5"),
])
def test_bad_mmf_names_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.mmf"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(path)) + "', line [0-9]+") as err:
        read_mmf(path)
    assert re.search(message, str(err.value)), str(err.value)
    assert read_mmf_ok(tmp_path)


def read_mmf_ok(tmp_path):
    good = tmp_path / "good.mmf"
    good.write_text(GOOD)
    return read_mmf(good).hmms["w"].n_states == 1


def test_bad_binary_mmf(tmp_path):
    path = tmp_path / "bin.mmf"
    path.write_bytes(b"~o\x00\xff\xfe")
    with pytest.raises(ValueError, match="bin.mmf.*not a text MMF"):
        read_mmf(path)


def test_write_mmf_refusals(diag_rec, tmp_path):
    path = tmp_path / "x.mmf"
    with pytest.raises(NotFittedError):
        write_mmf(Recognizer(), path)
    with pytest.raises(ValueError, match="distinct"):
        write_mmf(diag_rec, path, silence_name="a")
    with pytest.raises(ValueError, match="cannot be written"):
        write_mmf(diag_rec, path, silence_name="two words")
    with pytest.raises(ValueError, match="precision"):
        write_mmf(diag_rec, path, precision=0)
    X, y = _isolated(12, 5)
    rec = Recognizer(n_states=2, n_mix=1, n_iter=1).fit(X, [w + ' "q"' for w in y])
    with pytest.raises(ValueError, match="cannot be written"):
        write_mmf(rec, path)
    assert not path.exists()


def _htk_log_likelihood(hmm, obs, full):
    """log P(obs | model) by HTK's definitions, brute force in log space: enter from the
    non-emitting state 1, emit from states 2..N-1, leave through the exit state N."""
    from scipy.special import logsumexp

    n, M, D = hmm.means.shape
    B = np.empty((len(obs), n))
    for s in range(n):
        comp = []
        for m in range(M):
            d = obs - hmm.means[s, m]
            if full:
                C = hmm.covars[s, m]
                quad = np.einsum("ti,ij,tj->t", d, np.linalg.inv(C), d)
                logdet = np.linalg.slogdet(C)[1]
            else:
                quad = (d * d / hmm.covars[s, m]).sum(axis=1)
                logdet = np.log(hmm.covars[s, m]).sum()
            comp.append(np.log(hmm.weights[s, m]) - 0.5 * (D * np.log(2 * np.pi) + logdet
                                                           + quad))
        B[:, s] = logsumexp(comp, axis=0)
    with np.errstate(divide="ignore"):
        A = np.log(hmm.transp)
    alpha = A[0, 1:n + 1] + B[0]
    for t in range(1, len(obs)):
        alpha = logsumexp(alpha[:, None] + A[1:n + 1, 1:n + 1], axis=0) + B[t]
    return logsumexp(alpha + A[1:n + 1, n + 1])


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_mmf_models_score_as_the_recognizer(tmp_path, covariance_type):
    """Read with HTK's meaning of the file (entry and exit states, <TRANSP>, mixtures), the
    exported models give every utterance the recogniser's own word scores."""
    X, y = _isolated(24, 3)
    rec = Recognizer(n_states=3, n_mix=2, n_iter=2, silence=False, var_floor=0.1,
                     covariance_type=covariance_type).fit(X, y)
    path = tmp_path / "m.mmf"
    write_mmf(rec, path, precision=16)
    mmf = read_mmf(path)
    full = covariance_type == "full"
    ours = np.array([[_htk_log_likelihood(mmf.hmms[str(w)], obs, full) for w in rec.words_]
                     for obs in X[:6]])
    np.testing.assert_allclose(ours, rec.decision_function(X[:6]), rtol=1e-10)
