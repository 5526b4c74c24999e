/* Vectorised exp for the HMM kernels.
 *
 * emx_exp_inplace(x, n) replaces x[i] by exp(x[i]) for i < n. Where the C library has
 * vector variants of exp (glibc's libmvec; meson defines EMX_HAVE_LIBMVEC after checking
 * that a program using them links), the loop is compiled for three instruction sets and
 * the best one the CPU supports is chosen when the module loads (GCC's target_clones):
 * 8 lanes with AVX-512, 4 with AVX2, 2 with the x86-64 baseline. libmvec's exp is accurate
 * to a few units in the last place (the scalar libm exp: under one), which moves the
 * results by round-off only. Elsewhere it is the plain libm loop.
 */
#ifndef EMX_VMATH_H
#define EMX_VMATH_H

#include <math.h>
#include <stddef.h>

#if defined(EMX_HAVE_LIBMVEC)
/* Tell the compiler that glibc provides SIMD variants of exp (math.h announces them only
 * under -ffast-math, whose other assumptions, such as no infinities, emx cannot make). */
__attribute__((simd("notinbranch"))) double exp(double);

__attribute__((target_clones("avx512f", "avx2", "default")))
static void emx_exp_inplace(double *restrict x, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        x[i] = exp(x[i]);
}
#else
static void emx_exp_inplace(double *restrict x, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        x[i] = exp(x[i]);
}
#endif

#endif
