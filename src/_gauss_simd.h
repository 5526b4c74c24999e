/* Vectorised loops of the diagonal Gaussian kernels (src/_gauss.pyx).
 *
 * Both loops compute exactly what the scalar loops they replace computed: every output
 * element goes through the same IEEE operations in the same order (a sum over d in
 * increasing d for a log-density, a sum over frames in increasing t for a moment). Only the
 * order in which independent elements are visited changes: vectors run across components k,
 * on transposed (D x K) copies of the parameters and accumulators, so the lanes of a vector
 * are independent output elements and no sum is reassociated. The results are therefore
 * bit-identical to the scalar loops, and the same on every instruction set, provided that
 * floating-point contraction (a * b + c fused into one FMA, rounded once) stays off:
 * meson.build passes -ffp-contract=off for this module (GCC's default in -std=c11 mode;
 * clang's default is on). Never build this with -ffast-math.
 *
 * Register tiles (GCC/clang vector extensions): a log-density tile is EMX_LD_ROWS frames x
 * one vector of components, its sums kept in registers over the loop on d; a moment tile is
 * up to EMX_MOM_FEATS features x one vector of components, its sums kept in registers over
 * the loop on frames. The tiles are compiled for AVX-512 (8 lanes), AVX2 (4) and the
 * baseline (2); the widest one the CPU supports (``__builtin_cpu_supports``) covers full
 * vectors of components, and the narrowest one that holds them the components left over
 * (K = 3 takes one 4-lane vector, K = 10 one 8-lane and one 2-lane vector). K = 1 keeps the
 * scalar loop (one lane of work). Other compilers get the plain loops, in the same order.
 *
 * Layouts. Components are padded to KP = emx_gauss_kpad(K) (a multiple of 8, every vector
 * width). Padding entries are read and computed on but never written to an output:
 * their values do not matter (the caller zeroes them so that nothing is uninitialised).
 */
#ifndef EMX_GAUSS_SIMD_H
#define EMX_GAUSS_SIMD_H

#include <stddef.h>
#include <string.h>

#define EMX_LD_ROWS 8   /* frames per log-density tile */
#define EMX_MOM_FEATS 4 /* features per moment tile (at most) */
#define EMX_KPAD 8      /* widest vector (AVX-512: 8 doubles) */

static inline ptrdiff_t emx_gauss_kpad(ptrdiff_t K)
{
    return (K + EMX_KPAD - 1) / EMX_KPAD * EMX_KPAD;
}

/* Instruction set forced by the tests (-1: the best the CPU supports; 0 baseline, 1 AVX2,
 * 2 AVX-512, lowered to what the CPU supports). Set only with the GIL held, from
 * emx._core._gauss._set_simd_level. */
static int emx_gauss_forced_level = -1;

/* EMX_GAUSS_NO_VECTORS (a compile-time define) forces the plain loops, for checking them. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(EMX_GAUSS_NO_VECTORS)
#define EMX_GAUSS_VECTORS 1
#if defined(__x86_64__) || defined(__i386__)
#define EMX_GAUSS_X86 1
#endif
#endif

static int emx_gauss_level(void)
{
    int level = 0;
#if defined(EMX_GAUSS_X86)
    /* The CPU is identified by a constructor of the compiler's runtime when the module
     * loads (no __builtin_cpu_init needed outside constructors and ifunc resolvers). */
    if (__builtin_cpu_supports("avx512f"))
        level = 2;
    else if (__builtin_cpu_supports("avx2"))
        level = 1;
#endif
    if (emx_gauss_forced_level >= 0 && emx_gauss_forced_level < level)
        level = emx_gauss_forced_level;
    return level;
}

/* ------------------------------------------------------------------- portable loops */
/* The reference order, written out once (used where vector extensions are missing).
 * log-density: out[t, k] = log_norm[k] - 0.5 * s, s = 0.0 then s += ((x - mu) * (x - mu)) *
 * prec for d = 0, 1, ...; moments, frames in increasing t: dx = x[t, d] - shift[k, d];
 * wd = dx * w[t, k]; sum1[k, d] += wd; sum2[k, d] += wd * dx. */
static void emx_ld_plain(const double *restrict X, ptrdiff_t T, ptrdiff_t D, ptrdiff_t K,
                         ptrdiff_t KP, const double *restrict meansT,
                         const double *restrict precT, const double *restrict log_norm,
                         double *restrict out)
{
    for (ptrdiff_t t = 0; t < T; t++)
        for (ptrdiff_t k = 0; k < K; k++) {
            double s = 0.0;
            for (ptrdiff_t d = 0; d < D; d++) {
                const double diff = X[t * D + d] - meansT[d * KP + k];
                s += diff * diff * precT[d * KP + k];
            }
            out[t * K + k] = log_norm[k] - 0.5 * s;
        }
}

static void emx_mom_plain(const double *restrict X, ptrdiff_t ldx, const double *restrict W,
                          ptrdiff_t ldw, ptrdiff_t nb, ptrdiff_t D, ptrdiff_t K, ptrdiff_t KP,
                          const double *restrict shiftT, double *restrict sum1T,
                          double *restrict sum2T)
{
    for (ptrdiff_t t = 0; t < nb; t++)
        for (ptrdiff_t d = 0; d < D; d++)
            for (ptrdiff_t k = 0; k < K; k++) {
                const double dx = X[t * ldx + d] - shiftT[d * KP + k];
                const double wd = dx * W[t * ldw + k];
                sum1T[d * KP + k] += wd;
                sum2T[d * KP + k] += wd * dx;
            }
}

#if defined(EMX_GAUSS_VECTORS)
/* ------------------------------------------------------------------- vector tiles */

typedef double emx_v8 __attribute__((vector_size(64)));
typedef double emx_v4 __attribute__((vector_size(32)));
typedef double emx_v2 __attribute__((vector_size(16)));

/* One log-density row r of a tile: a##r += ((x[r, d] - mu) * (x[r, d] - mu)) * pr. */
#define EMX_LD_STEP(r)                                                                     \
    do {                                                                                   \
        df = x[(r) * D + d] - mu;                                                          \
        a##r = a##r + df * df * pr;                                                        \
    } while (0)

/* Store row r of a finished tile (rows past nr are padding; lanes past K too). */
#define EMX_LD_STORE(r)                                                                    \
    do {                                                                                   \
        if ((r) < nr) {                                                                    \
            res = ln - 0.5 * a##r;                                                         \
            if (nk == (ptrdiff_t)(sizeof res / sizeof(double)))                            \
                memcpy(out + (t0 + (r)) * K + kb, &res, sizeof res);                       \
            else                                                                           \
                for (ptrdiff_t i = 0; i < nk; i++)                                         \
                    out[(t0 + (r)) * K + kb + i] = res[i];                                 \
        }                                                                                  \
    } while (0)

/* A moment tile: features d0 .. d0 + NF - 1 (NF <= 4, a constant) x the VT lanes of
 * components kb ..., its 2 NF sums in registers over the nb frames. Per element and frame:
 * dx = x[t, d] - shift; wd = dx * w[t, k]; sum1 += wd; sum2 += wd * dx. */
#define EMX_MOM_LOAD(NF, j)                                                                \
    if (NF > (j)) {                                                                        \
        memcpy(&s##j, shiftT + o0 + (j) * KP, sizeof s##j);                                \
        memcpy(&p##j, sum1T + o0 + (j) * KP, sizeof p##j);                                 \
        memcpy(&q##j, sum2T + o0 + (j) * KP, sizeof q##j);                                 \
    }
#define EMX_MOM_STEP(NF, j)                                                                \
    if (NF > (j)) {                                                                        \
        dx = x[j] - s##j;                                                                  \
        wd = dx * w;                                                                       \
        p##j = p##j + wd;                                                                  \
        q##j = q##j + wd * dx;                                                             \
    }
#define EMX_MOM_STORE(NF, j)                                                               \
    if (NF > (j)) {                                                                        \
        memcpy(sum1T + o0 + (j) * KP, &p##j, sizeof p##j);                                 \
        memcpy(sum2T + o0 + (j) * KP, &q##j, sizeof q##j);                                 \
    }
#define EMX_MOM_TILE(VT, NF)                                                               \
    do {                                                                                   \
        VT s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, p0 = {0}, p1 = {0}, p2 = {0};           \
        VT p3 = {0}, q0 = {0}, q1 = {0}, q2 = {0}, q3 = {0}, w, dx, wd;                    \
        EMX_MOM_LOAD(NF, 0) EMX_MOM_LOAD(NF, 1) EMX_MOM_LOAD(NF, 2) EMX_MOM_LOAD(NF, 3)    \
        for (ptrdiff_t t = 0; t < nb; t++) {                                               \
            const double *restrict x = X + t * D + d0;                                     \
            memcpy(&w, W + t * ldw + kb, sizeof w);                                        \
            EMX_MOM_STEP(NF, 0) EMX_MOM_STEP(NF, 1) EMX_MOM_STEP(NF, 2) EMX_MOM_STEP(NF, 3) \
        }                                                                                  \
        EMX_MOM_STORE(NF, 0) EMX_MOM_STORE(NF, 1) EMX_MOM_STORE(NF, 2) EMX_MOM_STORE(NF, 3) \
    } while (0)

/* Tiles for one vector type VT of VW lanes, compiled with ATTR (a target attribute). */
#define EMX_GAUSS_TILES(SUF, ATTR, VT, VW)                                                 \
    ATTR static void emx_ld_##SUF(const double *restrict X, ptrdiff_t T, ptrdiff_t D,      \
                                  ptrdiff_t K, ptrdiff_t KP, ptrdiff_t kb0, ptrdiff_t kb1, \
                                  const double *restrict meansT,                           \
                                  const double *restrict precT,                            \
                                  const double *restrict lnp, double *restrict xtail,      \
                                  double *restrict out)                                    \
    {                                                                                      \
        for (ptrdiff_t t0 = 0; t0 < T; t0 += EMX_LD_ROWS) {                                \
            const ptrdiff_t nr = T - t0 < EMX_LD_ROWS ? T - t0 : EMX_LD_ROWS;              \
            const double *restrict x = X + t0 * D;                                         \
            if (nr < EMX_LD_ROWS) {                                                        \
                memset(xtail, 0, EMX_LD_ROWS * D * sizeof(double));                        \
                memcpy(xtail, x, nr * D * sizeof(double));                                 \
                x = xtail;                                                                 \
            }                                                                              \
            for (ptrdiff_t kb = kb0; kb < kb1; kb += VW) {                                 \
                const ptrdiff_t nk = kb1 - kb < VW ? kb1 - kb : VW;                        \
                VT a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                 \
                VT a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};                                 \
                VT mu, pr, df, ln, res;                                                    \
                for (ptrdiff_t d = 0; d < D; d++) {                                        \
                    memcpy(&mu, meansT + d * KP + kb, sizeof mu);                          \
                    memcpy(&pr, precT + d * KP + kb, sizeof pr);                           \
                    EMX_LD_STEP(0);                                                        \
                    EMX_LD_STEP(1);                                                        \
                    EMX_LD_STEP(2);                                                        \
                    EMX_LD_STEP(3);                                                        \
                    EMX_LD_STEP(4);                                                        \
                    EMX_LD_STEP(5);                                                        \
                    EMX_LD_STEP(6);                                                        \
                    EMX_LD_STEP(7);                                                        \
                }                                                                          \
                memcpy(&ln, lnp + kb, sizeof ln);                                          \
                EMX_LD_STORE(0);                                                           \
                EMX_LD_STORE(1);                                                           \
                EMX_LD_STORE(2);                                                           \
                EMX_LD_STORE(3);                                                           \
                EMX_LD_STORE(4);                                                           \
                EMX_LD_STORE(5);                                                           \
                EMX_LD_STORE(6);                                                           \
                EMX_LD_STORE(7);                                                           \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    ATTR static void emx_mom_##SUF(const double *restrict X, const double *restrict W,     \
                                   ptrdiff_t ldw, ptrdiff_t nb, ptrdiff_t D, ptrdiff_t KP, \
                                   ptrdiff_t kb0, ptrdiff_t kb1,                           \
                                   const double *restrict shiftT,                          \
                                   double *restrict sum1T, double *restrict sum2T)         \
    {                                                                                      \
        for (ptrdiff_t d0 = 0; d0 < D; d0 += EMX_MOM_FEATS) {                              \
            const ptrdiff_t nf = D - d0 < EMX_MOM_FEATS ? D - d0 : EMX_MOM_FEATS;          \
            for (ptrdiff_t kb = kb0; kb < kb1; kb += VW) {                                 \
                const ptrdiff_t o0 = d0 * KP + kb;                                         \
                if (nf == 4)                                                               \
                    EMX_MOM_TILE(VT, 4);                                                   \
                else if (nf == 3)                                                          \
                    EMX_MOM_TILE(VT, 3);                                                   \
                else if (nf == 2)                                                          \
                    EMX_MOM_TILE(VT, 2);                                                   \
                else                                                                       \
                    EMX_MOM_TILE(VT, 1);                                                   \
            }                                                                              \
        }                                                                                  \
    }

EMX_GAUSS_TILES(base, , emx_v2, 2)
#if defined(EMX_GAUSS_X86)
EMX_GAUSS_TILES(avx2, __attribute__((target("avx2"))), emx_v4, 4)
EMX_GAUSS_TILES(avx512, __attribute__((target("avx512f"))), emx_v8, 8)
#endif
#endif /* vector extensions */

/* ------------------------------------------------------------------- entry points */
#if defined(EMX_GAUSS_VECTORS)
/* Lanes of a vector at each level: 0 baseline 2, 1 AVX2 4, 2 AVX-512 8. */
#define EMX_LANES(level) ((ptrdiff_t)2 << (level))

/* Which tiles cover components 0 .. K-1: full vectors of level *lv for k < *kmain, then
 * (when *kmain < K) one partial vector of level *lv_rem, the narrowest that holds the rest.
 * A small K does not take vectors much wider than itself (K = 3 gets 4 lanes, not 8). */
static void emx_gauss_split(ptrdiff_t K, int *lv, ptrdiff_t *kmain, int *lv_rem)
{
    int L = emx_gauss_level();
    while (L > 0 && EMX_LANES(L - 1) >= K)
        L--;
    *lv = L;
    *kmain = K / EMX_LANES(L) * EMX_LANES(L);
    int R = 0;
    while (EMX_LANES(R) < K - *kmain)
        R++;
    *lv_rem = R;
}

static void emx_ld_tiles(int level, const double *X, ptrdiff_t T, ptrdiff_t D, ptrdiff_t K,
                         ptrdiff_t KP, ptrdiff_t kb0, ptrdiff_t kb1, const double *meansT,
                         const double *precT, const double *lnp, double *xtail, double *out)
{
#if defined(EMX_GAUSS_X86)
    if (level == 2) {
        emx_ld_avx512(X, T, D, K, KP, kb0, kb1, meansT, precT, lnp, xtail, out);
        return;
    }
    if (level == 1) {
        emx_ld_avx2(X, T, D, K, KP, kb0, kb1, meansT, precT, lnp, xtail, out);
        return;
    }
#endif
    (void)level;
    emx_ld_base(X, T, D, K, KP, kb0, kb1, meansT, precT, lnp, xtail, out);
}

static void emx_mom_tiles(int level, const double *X, const double *W, ptrdiff_t ldw,
                          ptrdiff_t nb, ptrdiff_t D, ptrdiff_t KP, ptrdiff_t kb0, ptrdiff_t kb1,
                          const double *shiftT, double *sum1T, double *sum2T)
{
#if defined(EMX_GAUSS_X86)
    if (level == 2) {
        emx_mom_avx512(X, W, ldw, nb, D, KP, kb0, kb1, shiftT, sum1T, sum2T);
        return;
    }
    if (level == 1) {
        emx_mom_avx2(X, W, ldw, nb, D, KP, kb0, kb1, shiftT, sum1T, sum2T);
        return;
    }
#endif
    (void)level;
    emx_mom_base(X, W, ldw, nb, D, KP, kb0, kb1, shiftT, sum1T, sum2T);
}
#endif

/* Frames per chunk of the log-density (a multiple of EMX_LD_ROWS): the chunk's rows of X
 * stay in cache while the tiles of every component range pass over them. */
#define EMX_LD_CHUNK 256

/* out (T x K) = log-densities of the rows of X (T x D).
 * meansT, precT: (D x KP), the transposed means and precisions, padding columns zeroed;
 * lnp (KP): log_norm, padded; xtail: scratch of EMX_LD_ROWS x D doubles. */
static void emx_log_density_diag(const double *X, ptrdiff_t T, ptrdiff_t D, ptrdiff_t K,
                                 const double *meansT, const double *precT,
                                 const double *lnp, double *xtail, double *out)
{
    const ptrdiff_t KP = emx_gauss_kpad(K);
#if defined(EMX_GAUSS_VECTORS)
    int lv, lv_rem;
    ptrdiff_t kmain;
    if (K == 1) { /* one lane of work: the scalar loop is as fast */
        emx_ld_plain(X, T, D, K, KP, meansT, precT, lnp, out);
        return;
    }
    emx_gauss_split(K, &lv, &kmain, &lv_rem);
    for (ptrdiff_t t0 = 0; t0 < T; t0 += EMX_LD_CHUNK) {
        const ptrdiff_t n = T - t0 < EMX_LD_CHUNK ? T - t0 : EMX_LD_CHUNK;
        if (kmain > 0)
            emx_ld_tiles(lv, X + t0 * D, n, D, K, KP, 0, kmain, meansT, precT, lnp, xtail,
                         out + t0 * K);
        if (kmain < K)
            emx_ld_tiles(lv_rem, X + t0 * D, n, D, K, KP, kmain, K, meansT, precT, lnp,
                         xtail, out + t0 * K);
    }
#else
    (void)xtail;
    emx_ld_plain(X, T, D, K, KP, meansT, precT, lnp, out);
#endif
}

/* post[k] += W[t, k] for t = 0, 1, ..., nb - 1 (W: nb x K row-major): a plain loop, across
 * k in vectors of the widest instruction set (GCC's target_clones). */
#if defined(EMX_GAUSS_X86) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void emx_add_rows(const double *restrict W, ptrdiff_t nb, ptrdiff_t K,
                         double *restrict post)
{
    for (ptrdiff_t t = 0; t < nb; t++)
        for (ptrdiff_t k = 0; k < K; k++)
            post[k] += W[t * K + k];
}

/* Add the moments of nb frames (rows of X, nb x D, and W, nb x K) to sum1T, sum2T (D x KP,
 * transposed, padded) about shiftT (D x KP, padding zeroed), frames in increasing t.
 * scratch: nb x KP doubles, zeroed by the caller, where W is copied (padding columns left
 * zero) when K is not a multiple of EMX_KPAD. */
static void emx_moments_diag_shifted(const double *X, const double *W, ptrdiff_t nb,
                                     ptrdiff_t D, ptrdiff_t K, const double *shiftT,
                                     double *sum1T, double *sum2T, double *scratch)
{
    const ptrdiff_t KP = emx_gauss_kpad(K);
#if defined(EMX_GAUSS_VECTORS)
    if (K == 1) { /* one lane of work: the scalar loop is as fast */
        emx_mom_plain(X, D, W, K, nb, D, K, KP, shiftT, sum1T, sum2T);
        return;
    }
    const double *w = W;
    ptrdiff_t ldw = K;
    if (KP != K) {
        /* Rows padded to KP; the caller zeroed the scratch, and the padding columns are
         * never written. */
        for (ptrdiff_t t = 0; t < nb; t++)
            for (ptrdiff_t k = 0; k < K; k++)
                scratch[t * KP + k] = W[t * K + k];
        w = scratch;
        ldw = KP;
    }
    int lv, lv_rem;
    ptrdiff_t kmain;
    emx_gauss_split(K, &lv, &kmain, &lv_rem);
    if (kmain > 0)
        emx_mom_tiles(lv, X, w, ldw, nb, D, KP, 0, kmain, shiftT, sum1T, sum2T);
    if (kmain < K)
        emx_mom_tiles(lv_rem, X, w, ldw, nb, D, KP, kmain, K, shiftT, sum1T, sum2T);
#else
    (void)scratch;
    emx_mom_plain(X, D, W, K, nb, D, K, KP, shiftT, sum1T, sum2T);
#endif
}

#endif
