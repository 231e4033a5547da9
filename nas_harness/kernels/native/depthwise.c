/* Weight gradient of a depthwise convolution on channels_last (NHWC) float32 tensors.
 *
 * Why: oneDNN's CPU depthwise *weight-gradient* kernel is 2-4x slower than its forward and input-gradient
 * kernels on the shapes of a proxy-resolution MBConv net (5x5 on 8x8 and 16x16 maps, stride-2 3x3 on
 * 32x32: 5-11 ms each at batch 128 on two cores, and 20-45 ms where the kernel is larger than the map).
 * The gradient is a plain sum, gw[t, c] = sum over positions of g[n, oy, ox, c] * x[n, iy(t), ix(t), c]
 * (t a kernel tap), which vectorises over the channels of NHWC data.
 *
 * Threads split the batch; each accumulates in float over a few images (about 256 output positions),
 * adds that into its own double sums (so the error does not grow with the batch), and the threads' sums
 * are added at the end.
 */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* x: [N, H, W, C], g: [N, Ho, Wo, C], grad_weight: [C, kh, kw] (the layout of a (C, 1, kh, kw) weight). */
void depthwise_weight_grad(const float *x, const float *g, float *grad_weight, int64_t n, int64_t h, int64_t w,
                           int64_t c, int64_t ho, int64_t wo, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                           int64_t ph, int64_t pw) {
    int64_t taps = kh * kw, tc = taps * c;
    int nt = n * ho * wo * taps * c < 65536 ? 1 : omp_get_max_threads();
    if (nt > n) nt = (int)n;
    double *part = calloc((size_t)nt * tc, sizeof(double));
    float *img = malloc((size_t)nt * tc * sizeof(float));
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), team = omp_get_num_threads();
        float *restrict acc = img + (size_t)t * tc;
        double *restrict tot = part + (size_t)t * tc;
        int64_t lo = n * t / team, hi = n * (t + 1) / team, per_fold = 256 / (ho * wo) + 1;
        memset(acc, 0, tc * sizeof(float));
        for (int64_t b = lo; b < hi; ++b) {
            const float *xb = x + b * h * w * c, *gb = g + b * ho * wo * c;
            for (int64_t oy = 0; oy < ho; ++oy) {
                for (int64_t i = 0; i < kh; ++i) {
                    int64_t iy = oy * sh + i - ph;
                    if (iy < 0 || iy >= h) continue;
                    for (int64_t ox = 0; ox < wo; ++ox) {
                        const float *restrict gv = gb + (oy * wo + ox) * c;
                        for (int64_t j = 0; j < kw; ++j) {
                            int64_t ix = ox * sw + j - pw;
                            if (ix < 0 || ix >= w) continue;
                            const float *restrict xv = xb + (iy * w + ix) * c;
                            float *restrict a = acc + (i * kw + j) * c;
#pragma omp simd
                            for (int64_t k = 0; k < c; ++k) a[k] += gv[k] * xv[k];
                        }
                    }
                }
            }
            if ((b - lo + 1) % per_fold == 0 || b == hi - 1) {
#pragma omp simd
                for (int64_t k = 0; k < tc; ++k) tot[k] += acc[k];
                memset(acc, 0, tc * sizeof(float));
            }
        }
    }
    /* Sum the threads and transpose [tap, C] -> [C, tap]. */
    for (int64_t tap = 0; tap < taps; ++tap)
        for (int64_t k = 0; k < c; ++k) {
            double s = 0.0;
            for (int t = 0; t < nt; ++t) s += part[(size_t)t * tc + tap * c + k];
            grad_weight[k * taps + tap] = (float)s;
        }
    free(part);
    free(img);
}
