/* Backward passes of squeeze-and-excitation's channel gating, out = x * s[n, c], on channels_last (NHWC)
 * float32 tensors.
 *
 * Why: autograd runs the gate's backward as g*s, g*x, a sum over H*W, the average pool's expanded
 * gradient and an add of the two input gradients: five full-size passes and three temporaries.  Here it
 * is two passes: one reduction (the gate's gradient), then one write of the input gradient, into which
 * the pool's gradient is folded.
 */
#include <omp.h>
#include <stdint.h>
#include <string.h>

static int team(int64_t n, int64_t elements) {
    int nt = elements < 32768 ? 1 : omp_get_max_threads();
    return nt > n ? (int)n : nt;
}

/* gs[n, c] = sum over positions of g[n, p, c] * x[n, p, c]. */
void se_gate_grad(const float *g, const float *x, float *gs, int64_t n, int64_t hw, int64_t c) {
#pragma omp parallel for num_threads(team(n, n * hw * c)) schedule(static)
    for (int64_t b = 0; b < n; ++b) {
        float *restrict acc = gs + b * c;
        memset(acc, 0, c * sizeof(float));
        for (int64_t p = 0; p < hw; ++p) {
            const float *restrict gr = g + (b * hw + p) * c, *restrict xr = x + (b * hw + p) * c;
#pragma omp simd
            for (int64_t k = 0; k < c; ++k) acc[k] += gr[k] * xr[k];
        }
    }
}

/* gx[n, p, c] = g[n, p, c] * s[n, c] + gp[n, c]: the gating's input gradient plus the (already divided
 * by H*W) gradient that reaches x through the average pool. */
void se_input_grad(const float *g, const float *s, const float *gp, float *gx, int64_t n, int64_t hw, int64_t c) {
#pragma omp parallel for num_threads(team(n, n * hw * c)) schedule(static)
    for (int64_t b = 0; b < n; ++b) {
        const float *restrict sb = s + b * c, *restrict pb = gp + b * c;
        for (int64_t p = 0; p < hw; ++p) {
            const float *restrict gr = g + (b * hw + p) * c;
            float *restrict o = gx + (b * hw + p) * c;
#pragma omp simd
            for (int64_t k = 0; k < c; ++k) o[k] = gr[k] * sb[k] + pb[k];
        }
    }
}
