/* One pass over an array of doubles for the data checks of emx (src/_gauss.pyx,
 * value_range): the smallest and the largest value that is not NaN, and whether a NaN was
 * seen. The checks it serves (finiteness, magnitude) read every entry of the data once per
 * fit; numpy needs a pass per reduction (a sum for finiteness, a max and a min for the
 * magnitude), this needs one.
 *
 * On x86-64 the loop runs on vectors: AVX2 (4 lanes) where the CPU has it, else SSE2 (2
 * lanes, part of the baseline), four vectors per step with their own running values, so
 * that the MIN/MAX chains overlap. MINPD/MAXPD return their second operand when either is
 * NaN, so with the running value second a NaN entry leaves it unchanged; an unordered
 * self-comparison flags the NaN. A minimum and a maximum do not depend on the order they
 * are taken in: every path gives the scalar loop's result exactly.
 */
#ifndef EMX_SCAN_H
#define EMX_SCAN_H

#include <math.h>
#include <stddef.h>
#if defined(__GNUC__) && defined(__x86_64__)
#define EMX_SCAN_X86 1
#include <immintrin.h>
#endif

/* The tail (and the whole array elsewhere): updates *lo, *hi, returns the NaN flag. */
static int emx_value_range_plain(const double *x, ptrdiff_t n, double *lo, double *hi)
{
    double l = *lo, h = *hi, v;
    int nan = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        v = x[i];
        if (v != v)
            nan = 1;
        else {
            l = v < l ? v : l;
            h = v > h ? v : h;
        }
    }
    *lo = l;
    *hi = h;
    return nan;
}

#if defined(EMX_SCAN_X86)
static int emx_value_range_sse2(const double *x, ptrdiff_t n, double *lo, double *hi)
{
    __m128d lv[4], hv[4], uv[4], a;
    double t[2];
    ptrdiff_t i = 0;
    int k, nan;
    for (k = 0; k < 4; k++) {
        lv[k] = _mm_set1_pd(INFINITY);
        hv[k] = _mm_set1_pd(-INFINITY);
        uv[k] = _mm_setzero_pd();
    }
    for (; i + 8 <= n; i += 8)
        for (k = 0; k < 4; k++) {
            a = _mm_loadu_pd(x + i + 2 * k);
            lv[k] = _mm_min_pd(a, lv[k]);
            hv[k] = _mm_max_pd(a, hv[k]);
            uv[k] = _mm_or_pd(uv[k], _mm_cmpunord_pd(a, a));
        }
    for (k = 1; k < 4; k++) {
        lv[0] = _mm_min_pd(lv[k], lv[0]);
        hv[0] = _mm_max_pd(hv[k], hv[0]);
        uv[0] = _mm_or_pd(uv[k], uv[0]);
    }
    _mm_storeu_pd(t, lv[0]);
    *lo = t[0] < t[1] ? t[0] : t[1];
    _mm_storeu_pd(t, hv[0]);
    *hi = t[0] > t[1] ? t[0] : t[1];
    nan = _mm_movemask_pd(uv[0]) != 0;
    return emx_value_range_plain(x + i, n - i, lo, hi) | nan;
}

__attribute__((target("avx2"))) static int emx_value_range_avx2(const double *x, ptrdiff_t n,
                                                                double *lo, double *hi)
{
    __m256d lv[4], hv[4], uv[4], a;
    double t[4];
    ptrdiff_t i = 0;
    int k, nan;
    for (k = 0; k < 4; k++) {
        lv[k] = _mm256_set1_pd(INFINITY);
        hv[k] = _mm256_set1_pd(-INFINITY);
        uv[k] = _mm256_setzero_pd();
    }
    for (; i + 16 <= n; i += 16)
        for (k = 0; k < 4; k++) {
            a = _mm256_loadu_pd(x + i + 4 * k);
            lv[k] = _mm256_min_pd(a, lv[k]);
            hv[k] = _mm256_max_pd(a, hv[k]);
            uv[k] = _mm256_or_pd(uv[k], _mm256_cmp_pd(a, a, _CMP_UNORD_Q));
        }
    for (k = 1; k < 4; k++) {
        lv[0] = _mm256_min_pd(lv[k], lv[0]);
        hv[0] = _mm256_max_pd(hv[k], hv[0]);
        uv[0] = _mm256_or_pd(uv[k], uv[0]);
    }
    _mm256_storeu_pd(t, lv[0]);
    *lo = t[0];
    for (k = 1; k < 4; k++)
        *lo = t[k] < *lo ? t[k] : *lo;
    _mm256_storeu_pd(t, hv[0]);
    *hi = t[0];
    for (k = 1; k < 4; k++)
        *hi = t[k] > *hi ? t[k] : *hi;
    nan = _mm256_movemask_pd(uv[0]) != 0;
    return emx_value_range_plain(x + i, n - i, lo, hi) | nan;
}
#endif

/* Stores the smallest and largest non-NaN value of x[0..n) in *lo, *hi (+inf and -inf when
 * there is none); returns 1 when x holds a NaN, else 0. level: -1 the best the CPU has,
 * 0 the plain loop, 1 SSE2, 2 AVX2 (lowered to what the CPU has; for the tests). */
static int emx_value_range(const double *x, ptrdiff_t n, double *lo, double *hi, int level)
{
    *lo = INFINITY;
    *hi = -INFINITY;
#if defined(EMX_SCAN_X86)
    if (level != 0 && level != 1 && __builtin_cpu_supports("avx2"))
        return emx_value_range_avx2(x, n, lo, hi);
    if (level != 0)
        return emx_value_range_sse2(x, n, lo, hi);
#endif
    (void)level;
    return emx_value_range_plain(x, n, lo, hi);
}

#endif
