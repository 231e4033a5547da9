/* Fused BatchNorm + activation for channels_last (NHWC) float32 tensors on CPU, forward and backward.
 *
 * Why: at proxy resolution a B0 training step on CPU spends about a third of its time in BatchNorm and
 * SiLU, run by ATen as separate memory passes (BN statistics, BN output, SiLU output, and as many again
 * for the gradients), with SiLU bound by its exp.  Here a layer is one statistics pass plus one output
 * pass each way, the BN output is never stored (the backward recomputes it from the BN input, which the
 * convolution before it keeps anyway), and the exp is a short polynomial that vectorises.
 *
 * A channels_last tensor is, in memory, a row-major [M, C] matrix (M = N*H*W positions, C channels).
 * Rows are processed R at a time as one flat run of L = R*C "lanes" with per-lane coefficients, so the
 * vector loops are long even when C is 8 or 16.  Per-channel sums go through float lane accumulators
 * over at most BLOCK_RUNS runs, then into double.  The variance is the single-pass "shifted data" one
 * (shift = the first row), so a large mean does not cancel.  Threads: OpenMP, the runtime PyTorch
 * already loaded, so its thread count applies.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { ACT_NONE = 0, ACT_SILU = 1, ACT_RELU = 2, ACT_HSWISH = 3 };

#define MIN_LANES 512          /* rows per run: enough that a run is at least this many floats */
#define BLOCK_RUNS 16          /* float lane sums over at most this many runs, then added in double */
#define MIN_PARALLEL 32768     /* below this many elements one thread beats waking the team */

/* exp(x) for x <= 80: Cody-Waite reduction to |r| <= ln2/2 and a degree-6 polynomial (about 2 ulp).
 * Plain arithmetic, no libm call, so `omp simd` loops vectorise it.  The cap keeps 1 + exp(x) inside the
 * range where recip() works; the sigmoid at the cap is 1.8e-35 instead of smaller, i.e. zero either way. */
static inline float exp_poly(float x) {
    x = x < -87.0f ? -87.0f : x; /* sequential selects (not nested) so GCC if-converts them */
    x = x > 80.0f ? 80.0f : x;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - n * 0.693145751953125f;
    r = r - n * 1.42860682030941723212e-6f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { int32_t i; float f; } scale;
    scale.i = ((int32_t)n + 127) << 23;
    return p * scale.f;
}

/* 1/d for 1 <= d <= 1e35 without a division: a bit-trick first guess, two Newton steps, then one residual
 * correction r + r * (1 - d*r), which with a fused multiply-add rounds correctly (<= 0.5 ulp, checked over
 * the whole range): in particular recip(1) is exactly 1, so sigmoid(y) is exactly 1 once exp(-y) < 2^-24.
 * (Three plain Newton steps, used before, gave up to 2 ulp and recip(1) = 1 - 2^-24: every SiLU output
 * above y ~ 17 came out one ulp low.)  Why no division: with one, GCC split the clamped exp above into a
 * branch that divides by a constant near 1e38, whose subnormal results take a microcode assist: the SiLU
 * loop ran 2x slower on real data. */
static inline float recip(float d) {
    union { float f; int32_t i; } u = {d};
    u.i = 0x7EF311C3 - u.i;
    float r = u.f;
    r = r * (2.0f - d * r);
    r = r * (2.0f - d * r);
#ifdef __FMA__
    return fmaf(r, fmaf(-d, r, 1.0f), r);
#else
    return r + r * (1.0f - d * r);
#endif
}

static inline float sigmoid(float y) { return recip(1.0f + exp_poly(-y)); }

static inline float act_fwd(float y, int act) {
    if (act == ACT_SILU) return y * sigmoid(y);
    if (act == ACT_RELU) return y > 0.0f ? y : 0.0f;
    if (act == ACT_HSWISH) {
        float t = y + 3.0f;
        t = t < 0.0f ? 0.0f : t;
        t = t > 6.0f ? 6.0f : t;
        return y * t * (1.0f / 6.0f);
    }
    return y;
}

/* d act(y) / dy, with ATen's conventions at the kinks (relu: 0 at 0; hardswish: y/3 + 1/2 on [-3, 3]). */
static inline float act_grad(float y, int act) {
    if (act == ACT_SILU) {
        /* silu'(y) = s * (1 + y * (1 - s)) with 1 - s written as e * s (e = exp(-y)): no cancellation when
         * s is near 1, where 1 - s in float is 0 or one ulp of 1, a relative gradient error of y * 6e-8. */
        float e = exp_poly(-y), s = recip(1.0f + e);
        return s * (1.0f + y * (e * s));
    }
    if (act == ACT_RELU) return y > 0.0f ? 1.0f : 0.0f;
    if (act == ACT_HSWISH) {
        float d = y <= 3.0f ? y * (1.0f / 3.0f) + 0.5f : 1.0f;
        return y < -3.0f ? 0.0f : d;
    }
    return 1.0f;
}

/* Run BODY with the activation code as the compile-time constant ACT, so each loop vectorises alone. */
#define WITH_ACT(act, BODY)                                  \
    switch (act) {                                           \
    case ACT_SILU: { const int ACT = ACT_SILU; BODY; } break; \
    case ACT_RELU: { const int ACT = ACT_RELU; BODY; } break; \
    case ACT_HSWISH: { const int ACT = ACT_HSWISH; BODY; } break; \
    default: { const int ACT = ACT_NONE; BODY; } break;     \
    }

typedef struct {
    int64_t m, c, rows, lanes; /* rows per run, lanes = rows * c */
    int threads;
} Plan;

static Plan plan(int64_t m, int64_t c) {
    Plan p = {m, c, 1, c, 1};
    p.rows = c >= MIN_LANES ? 1 : (MIN_LANES + c - 1) / c;
    if (p.rows > m) p.rows = m;
    p.lanes = p.rows * c;
    p.threads = m * c < MIN_PARALLEL ? 1 : omp_get_max_threads();
    return p;
}

/* Per-channel coefficients repeated over the R rows of a run. */
static float *tile(const Plan *p, const float *per_channel, float *lanes) {
    for (int64_t r = 0; r < p->rows; ++r) memcpy(lanes + r * p->c, per_channel, p->c * sizeof(float));
    return lanes;
}

/* Element range [lo, hi) of thread t: whole runs, the last thread takes the remainder. */
static void thread_range(const Plan *p, int t, int team, int64_t *lo, int64_t *hi) {
    int64_t runs = p->m / p->rows;
    *lo = runs * t / team * p->lanes;
    *hi = t == team - 1 ? p->m * p->c : runs * (t + 1) / team * p->lanes;
}

/* Fold float lane sums (one block) into per-channel double sums. */
static void fold(const Plan *p, const float *lane_sum, double *acc) {
    for (int64_t r = 0; r < p->rows; ++r)
        for (int64_t j = 0; j < p->c; ++j) acc[j] += lane_sum[r * p->c + j];
}

/* s1 = per-channel sum of (x - shift), s2 = of (x - shift)^2; or, when g is given (backward),
 * s1 = sum of dy and s2 = sum of dy * (x - shift), with dy = g * act'(x * a + b), also written to dy_out. */
static void moments(const Plan *p, const float *restrict x, const float *restrict g, const float *shift,
                    const float *a, const float *b, int act, double *s1, double *s2, float *restrict dy_out) {
    int nt = p->threads;
    int64_t L = p->lanes, C = p->c;
    double *part = calloc((size_t)nt * 2 * C, sizeof(double));
    float *work = malloc((size_t)nt * 5 * L * sizeof(float));
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num();
        int64_t lo, hi;
        thread_range(p, t, omp_get_num_threads(), &lo, &hi);
        float *restrict l1 = work + (size_t)t * 5 * L, *restrict l2 = l1 + L;
        float *restrict sh = tile(p, shift, l2 + L), *restrict la = l2 + 2 * L, *restrict lb = l2 + 3 * L;
        if (g) {
            tile(p, a, la);
            tile(p, b, lb);
        }
        double *p1 = part + (size_t)t * 2 * C, *p2 = p1 + C;
        int64_t i = lo;
        while (i < hi) {
            memset(l1, 0, 2 * L * sizeof(float));
            for (int blk = 0; blk < BLOCK_RUNS && i < hi; ++blk, i += L) {
                int64_t n = hi - i < L ? hi - i : L;
                const float *restrict xr = x + i;
                if (!g) {
#pragma omp simd
                    for (int64_t k = 0; k < n; ++k) {
                        float d = xr[k] - sh[k];
                        l1[k] += d;
                        l2[k] += d * d;
                    }
                } else {
                    const float *restrict gr = g + i;
                    float *restrict dr = dy_out ? dy_out + i : NULL;
                    WITH_ACT(act, _Pragma("omp simd")
                    for (int64_t k = 0; k < n; ++k) {
                        float dy = gr[k] * act_grad(xr[k] * la[k] + lb[k], ACT);
                        if (ACT != ACT_NONE) dr[k] = dy; /* a constant test: folded away */
                        l1[k] += dy;
                        l2[k] += dy * (xr[k] - sh[k]);
                    })
                }
            }
            fold(p, l1, p1);
            fold(p, l2, p2);
        }
    }
    memset(s1, 0, C * sizeof(double));
    memset(s2, 0, C * sizeof(double));
    for (int t = 0; t < nt; ++t)
        for (int64_t j = 0; j < C; ++j) {
            s1[j] += part[(size_t)t * 2 * C + j];
            s2[j] += part[(size_t)t * 2 * C + C + j];
        }
    free(part);
    free(work);
}

/* out = act(x * a + b), per channel. */
static void apply(const Plan *p, const float *restrict x, float *restrict out, const float *a, const float *b,
                  int act) {
    int nt = p->threads;
    int64_t L = p->lanes;
    float *work = malloc(2 * L * sizeof(float));
    float *restrict la = tile(p, a, work), *restrict lb = tile(p, b, work + L);
#pragma omp parallel num_threads(nt)
    {
        int64_t lo, hi;
        thread_range(p, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (int64_t i = lo; i < hi; i += L) {
            int64_t n = hi - i < L ? hi - i : L;
            const float *restrict xr = x + i;
            float *restrict o = out + i;
            WITH_ACT(act, _Pragma("omp simd")
            for (int64_t k = 0; k < n; ++k) o[k] = act_fwd(xr[k] * la[k] + lb[k], ACT);)
        }
    }
    free(work);
}

/* Training forward: batch statistics, running-statistics update (when running_mean is not NULL, with
 * `factor` as the exponential-average weight and the unbiased variance, as torch does), then the output
 * pass.  Writes mean and invstd per channel for the backward. */
void bn_act_forward_train(const float *x, float *out, int64_t m, int64_t c, const float *weight,
                          const float *bias, float *running_mean, float *running_var, double factor,
                          double eps, int act, float *mean_out, float *invstd_out) {
    Plan p = plan(m, c);
    double *s = malloc(2 * c * sizeof(double));
    float *ab = malloc(2 * c * sizeof(float)), *a = ab, *b = ab + c;
    moments(&p, x, NULL, x, NULL, NULL, ACT_NONE, s, s + c, NULL); /* shift = the first row */
    for (int64_t j = 0; j < c; ++j) {
        double dm = s[j] / (double)m;
        double var = s[c + j] / (double)m - dm * dm;
        if (var < 0.0) var = 0.0;
        double mean = (double)x[j] + dm;
        double invstd = 1.0 / sqrt(var + eps);
        mean_out[j] = (float)mean;
        invstd_out[j] = (float)invstd;
        a[j] = (float)(weight[j] * invstd);
        b[j] = (float)(bias[j] - mean * weight[j] * invstd);
        if (running_mean) {
            double unbiased = m > 1 ? var * (double)m / (double)(m - 1) : var;
            running_mean[j] = (float)((1.0 - factor) * running_mean[j] + factor * mean);
            running_var[j] = (float)((1.0 - factor) * running_var[j] + factor * unbiased);
        }
    }
    apply(&p, x, out, a, b, act);
    free(s);
    free(ab);
}

/* Inference forward with the running statistics. */
void bn_act_forward_eval(const float *x, float *out, int64_t m, int64_t c, const float *weight,
                         const float *bias, const float *running_mean, const float *running_var, double eps,
                         int act) {
    Plan p = plan(m, c);
    float *ab = malloc(2 * c * sizeof(float)), *a = ab, *b = ab + c;
    for (int64_t j = 0; j < c; ++j) {
        double invstd = 1.0 / sqrt((double)running_var[j] + eps);
        a[j] = (float)(weight[j] * invstd);
        b[j] = (float)(bias[j] - running_mean[j] * weight[j] * invstd);
    }
    apply(&p, x, out, a, b, act);
    free(ab);
}

/* Backward of the training forward.  The first pass writes dy = g * act'(x*a + b) into dx (the BN output
 * is recomputed from x, never stored) and sums dy and dy*(x - mean) per channel; the second overwrites
 *   dx = a*dy - a*invstd^2 * sum(dy*(x - mean))/M * (x - mean) - a*sum(dy)/M.
 * Storing dy costs one write and one read; recomputing it would cost a second sigmoid, which is dearer.
 * Without an activation dy is g and nothing is stored.  grad_weight / grad_bias may be NULL. */
void bn_act_backward(const float *g, const float *x, float *dx, int64_t m, int64_t c, const float *weight,
                     const float *bias, const float *mean, const float *invstd, int act, float *grad_weight,
                     float *grad_bias) {
    Plan p = plan(m, c);
    int64_t L = p.lanes;
    float *coef = malloc(4 * c * sizeof(float)), *a = coef, *b = coef + c, *pc = coef + 2 * c, *qc = coef + 3 * c;
    double *s = malloc(2 * c * sizeof(double));
    for (int64_t j = 0; j < c; ++j) {
        a[j] = weight[j] * invstd[j];
        b[j] = bias[j] - mean[j] * a[j];
    }
    moments(&p, x, g, mean, a, b, act, s, s + c, act == ACT_NONE ? NULL : dx);
    const float *dy = act == ACT_NONE ? g : dx;
    for (int64_t j = 0; j < c; ++j) {
        double is = invstd[j];
        if (grad_weight) grad_weight[j] = (float)(s[c + j] * is);
        if (grad_bias) grad_bias[j] = (float)s[j];
        pc[j] = (float)(-(double)a[j] * is * is * s[c + j] / (double)m);
        qc[j] = (float)(-(double)a[j] * s[j] / (double)m);
    }
    float *work = malloc(4 * L * sizeof(float));
    float *restrict la = tile(&p, a, work), *restrict lp = tile(&p, pc, work + L);
    float *restrict lq = tile(&p, qc, work + 2 * L), *restrict lm = tile(&p, mean, work + 3 * L);
#pragma omp parallel num_threads(p.threads)
    {
        int64_t lo, hi;
        thread_range(&p, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (int64_t i = lo; i < hi; i += L) {
            int64_t n = hi - i < L ? hi - i : L;
            const float *dyr = dy + i, *restrict xr = x + i;
            float *d = dx + i; /* may be dyr itself: each element is read before it is written */
#pragma omp simd
            for (int64_t k = 0; k < n; ++k) d[k] = la[k] * dyr[k] + lp[k] * (xr[k] - lm[k]) + lq[k];
        }
    }
    free(work);
    free(coef);
    free(s);
}
