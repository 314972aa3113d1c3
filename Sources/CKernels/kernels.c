// autosam element-wise kernels. Loops are written so that each target clone vectorises them.
#include <stdlib.h>
#include "asn_kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#define ASN_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define ASN_CLONES
#endif

// exp(x) for x <= 0 (softmax after max subtraction), relative error ~2e-7: x = n ln2 + r with
// |r| <= ln2 / 2, exp(r) by a degree-6 polynomial, 2^n through the exponent bits.
static inline float exp_nonpositive(float x) {
    if (x < -87.0f) x = -87.0f;
    const float log2e = 1.44269504088896341f;
    float n = __builtin_floorf(x * log2e + 0.5f);
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

ASN_CLONES
void asn_softmax_rows(float *x, size_t rows, size_t n) {
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * n;
        // Row maximum with 16 independent lanes (a single running max is a serial chain the
        // compiler will not vectorise).
        float lanes[16];
        for (int j = 0; j < 16; j++) lanes[j] = -3.0e38f;
        size_t i0 = 0;
        for (; i0 + 16 <= n; i0 += 16)
            for (int j = 0; j < 16; j++) lanes[j] = row[i0 + j] > lanes[j] ? row[i0 + j] : lanes[j];
        float m = -3.0e38f;
        for (int j = 0; j < 16; j++) m = lanes[j] > m ? lanes[j] : m;
        for (; i0 < n; i0++) m = row[i0] > m ? row[i0] : m;
        float s = 0.0f;
        for (size_t i = 0; i < n; i++) {
            float e = exp_nonpositive(row[i] - m);
            row[i] = e;
            s += e;
        }
        float inv = 1.0f / s;
        for (size_t i = 0; i < n; i++) row[i] *= inv;
    }
}

// Softmax over rows of a compile-time length N (inlined per N below, so that the inner loops
// unroll and the loop over rows can vectorise). exp is exactly 0 below -87.
static inline void softmax_short(float *x, size_t rows, const size_t N) {
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * N;
        float m = row[0];
        for (size_t i = 1; i < N; i++) m = row[i] > m ? row[i] : m;
        float e[8], s = 0.0f;
        for (size_t i = 0; i < N; i++) {
            float z = row[i] - m;
            e[i] = z < -87.0f ? 0.0f : exp_nonpositive(z);
            s += e[i];
        }
        float inv = 1.0f / s;
        for (size_t i = 0; i < N; i++) row[i] = e[i] * inv;
    }
}

ASN_CLONES
void asn_softmax_short_rows(float *x, size_t rows, size_t n) {
    switch (n) {
    case 1: softmax_short(x, rows, 1); break;
    case 2: softmax_short(x, rows, 2); break;
    case 3: softmax_short(x, rows, 3); break;
    case 4: softmax_short(x, rows, 4); break;
    case 5: softmax_short(x, rows, 5); break;
    case 6: softmax_short(x, rows, 6); break;
    case 7: softmax_short(x, rows, 7); break;
    case 8: softmax_short(x, rows, 8); break;
    default: asn_softmax_rows(x, rows, n); break;
    }
}

// erf(x) via Abramowitz & Stegun 7.1.26 refined: max abs error ~1.2e-7 with the
// exp above (|x| clamped at 6, where erf is 1 to float precision).
static inline float erf_approx(float x) {
    float ax = x < 0 ? -x : x;
    if (ax > 6.0f) ax = 6.0f;
    // Rational approximation from W. J. Cody style coefficients (single precision).
    float t = 1.0f / (1.0f + 0.5f * ax);
    float y = t * exp_nonpositive(-ax * ax - 1.26551223f +
        t * (1.00002368f + t * (0.37409196f + t * (0.09678418f + t * (-0.18628806f +
        t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f +
        t * 0.17087277f)))))))));
    float e = 1.0f - y;
    return x < 0 ? -e : e;
}

static inline float gelu1(float v) { return 0.5f * v * (1.0f + erf_approx(v * 0.70710678118654752f)); }

// In place (y == x) gets a loop of its own: the two-pointer loop's vector version is guarded by
// a run-time overlap check, which y == x fails, so in-place calls ran the scalar loop (the
// encoders' GELUs are mostly in place: 72% of a LiteMedSAM encoder run's samples were there, perf).
ASN_CLONES
void asn_gelu_to(const float *x, float *y, size_t n) {
    if (x == y) {
        for (size_t i = 0; i < n; i++) y[i] = gelu1(y[i]);
        return;
    }
    for (size_t i = 0; i < n; i++) y[i] = gelu1(x[i]);
}

// d = g * GELU'(x), given x and y = GELU(x) = x Phi(x): Phi(x) = y / x, or a series where
// |x| < 0.05; phi(x) = exp(-x^2 / 2) / sqrt(2 pi), taken as 0 where x^2 > 169. Selects, not
// branches, so that each clone vectorises.
ASN_CLONES
void asn_gelu_backward(const float *g, const float *x, const float *y, float *d, size_t n) {
    const float c = 0.3989422804014327f;  // 1 / sqrt(2 pi)
    for (size_t i = 0; i < n; i++) {
        float v = x[i], v2 = v * v;
        float pdf = v2 > 169.0f ? 0.0f : c * exp_nonpositive(-0.5f * v2);
        float cdf = v2 < 0.0025f ? 0.5f + c * (v - v2 * v * (1.0f / 6.0f)) : y[i] / v;
        d[i] = g[i] * (cdf + v * pdf);
    }
}

ASN_CLONES
void asn_bias_act_rows(float *y, size_t rows, size_t n, const float *bias, int gelu) {
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * n;
        if (bias) for (size_t i = 0; i < n; i++) row[i] += bias[i];
        if (gelu) {
            for (size_t i = 0; i < n; i++) {
                float v = row[i];
                row[i] = 0.5f * v * (1.0f + erf_approx(v * 0.70710678118654752f));
            }
        }
    }
}

// One row of LayerNorm: yr = (xr - mean) / sqrt(var + eps) * w + b (yr may be xr); returns
// mean and 1 / std through the pointers.
static inline void layernorm_row(const float *xr, size_t n, const float *w, const float *b, float eps, float *yr,
                                 float *mean_out, float *iv_out) {
    float mean = 0.0f;
    for (size_t i = 0; i < n; i++) mean += xr[i];
    mean /= (float)n;
    float var = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = xr[i] - mean;
        var += d * d;
    }
    float iv = 1.0f / sqrtf(var / (float)n + eps);
    for (size_t i = 0; i < n; i++) yr[i] = (xr[i] - mean) * iv * w[i] + b[i];
    *mean_out = mean;
    *iv_out = iv;
}

ASN_CLONES
void asn_layernorm_rows(float *x, size_t rows, size_t n, const float *w, const float *b, float eps) {
    float mean, iv;
    for (size_t r = 0; r < rows; r++) layernorm_row(x + r * n, n, w, b, eps, x + r * n, &mean, &iv);
}

// LayerNorm over rows of n with the per-row statistics a backward pass needs:
// y = (x - mean) / sqrt(var + eps) * w + b; stats[2r] = mean, stats[2r + 1] = 1 / std.
ASN_CLONES
void asn_layernorm_forward(const float *x, size_t rows, size_t n, const float *w, const float *b, float eps,
                           float *y, float *stats) {
    for (size_t r = 0; r < rows; r++) layernorm_row(x + r * n, n, w, b, eps, y + r * n, stats + 2 * r, stats + 2 * r + 1);
}

// Backward of asn_layernorm_forward: dx (overwritten), dw and db (accumulated into).
ASN_CLONES
void asn_layernorm_backward(const float *g, const float *x, size_t rows, size_t n, const float *w,
                            const float *stats, float *dx, float *dw, float *db) {
    for (size_t r = 0; r < rows; r++) {
        const float *gr = g + r * n, *xr = x + r * n;
        float *dr = dx + r * n;
        const float mean = stats[2 * r], iv = stats[2 * r + 1];
        float s1 = 0.0f, s2 = 0.0f;
        for (size_t i = 0; i < n; i++) {
            float xh = (xr[i] - mean) * iv, gi = gr[i];
            dw[i] += gi * xh;
            db[i] += gi;
            float gx = gi * w[i];
            s1 += gx;
            s2 += gx * xh;
        }
        s1 /= (float)n;
        s2 /= (float)n;
        for (size_t i = 0; i < n; i++) dr[i] = iv * (gr[i] * w[i] - s1 - (xr[i] - mean) * iv * s2);
    }
}

// The decomposed relative-position bias of one query row (SAM's add_decomposed_rel_pos):
// bh[ky] = q . rel_h[qy, ky], bw[kx] = q . rel_w[qx, kx], for query token qi on a gh x gw grid.
static inline void rel_pos_row(const float *qrow, size_t hd, size_t qi, const float *rel_h, const float *rel_w,
                               size_t gh, size_t gw, float *bh, float *bw) {
    size_t qy = qi / gw, qx = qi % gw;
    for (size_t ky = 0; ky < gh; ky++) {
        const float *e = rel_h + (qy * gh + ky) * hd;
        float acc = 0.0f;
        for (size_t d = 0; d < hd; d++) acc += qrow[d] * e[d];
        bh[ky] = acc;
    }
    for (size_t kx = 0; kx < gw; kx++) {
        const float *e = rel_w + (qx * gw + kx) * hd;
        float acc = 0.0f;
        for (size_t d = 0; d < hd; d++) acc += qrow[d] * e[d];
        bw[kx] = acc;
    }
}

ASN_CLONES
void asn_add_rel_pos(float *scores, size_t rows, size_t r0, const float *q, size_t ldq, size_t hd,
                     const float *rel_h, const float *rel_w, size_t gh, size_t gw) {
    float bh[512], bw[512];
    if (gh > 512 || gw > 512) return;  // grids are at most 128 x 128 in practice
    for (size_t r = 0; r < rows; r++) {
        rel_pos_row(q + r * ldq, hd, r0 + r, rel_h, rel_w, gh, gw, bh, bw);
        float *srow = scores + r * gh * gw;
        for (size_t ky = 0; ky < gh; ky++) {
            float base = bh[ky];
            float *s = srow + ky * gw;
            for (size_t kx = 0; kx < gw; kx++) s[kx] += base + bw[kx];
        }
    }
}

ASN_CLONES
int asn_rel_pos_softmax_bf16(const float *scores, size_t rows, size_t r0, const float *q, size_t ldq, size_t hd,
                             const float *rel_h, const float *rel_w, size_t gh, size_t gw, uint16_t *out,
                             float *inv_sum) {
    const size_t n = gh * gw;
    float bh[512], bw[512];
    if (gh > 512 || gw > 512) return -1;
    for (size_t r = 0; r < rows; r++) {
        const float *srow = scores + r * n;
        uint16_t *orow = out + r * n;
        if (rel_h && rel_w) rel_pos_row(q + r * ldq, hd, r0 + r, rel_h, rel_w, gh, gw, bh, bw);
        else {
            for (size_t i = 0; i < gh; i++) bh[i] = 0.0f;
            for (size_t i = 0; i < gw; i++) bw[i] = 0.0f;
        }
        // Pass 1: the row maximum of the biased scores (16 independent lanes per grid row).
        float lanes[16];
        for (int j = 0; j < 16; j++) lanes[j] = -3.0e38f;
        float m = -3.0e38f;
        for (size_t ky = 0; ky < gh; ky++) {
            const float *s = srow + ky * gw;
            const float base = bh[ky];
            size_t kx = 0;
            for (; kx + 16 <= gw; kx += 16)
                for (int j = 0; j < 16; j++) {
                    float v = s[kx + j] + (base + bw[kx + j]);
                    lanes[j] = v > lanes[j] ? v : lanes[j];
                }
            for (; kx < gw; kx++) {
                float v = s[kx] + (base + bw[kx]);
                m = v > m ? v : m;
            }
        }
        for (int j = 0; j < 16; j++) m = lanes[j] > m ? lanes[j] : m;
        // Pass 2: numerators exp(v - max) in bfloat16, their float32 sum.
        float sum = 0.0f;
        for (size_t ky = 0; ky < gh; ky++) {
            const float *s = srow + ky * gw;
            uint16_t *o = orow + ky * gw;
            const float base = bh[ky];
            for (size_t kx = 0; kx < gw; kx++) {
                float e = exp_nonpositive(s[kx] + (base + bw[kx]) - m);
                sum += e;
                o[kx] = asn_round_bf16(e);
            }
        }
        inv_sum[r] = 1.0f / sum;
    }
    return 0;
}

// The CPU's vector and matrix extensions that the kernels and oneDNN may use, for reports
// (`autosam info`, provenance): AVX-512's OS support is the compiler runtime's check; the
// bfloat16 and AMX bits are CPUID leaf 7 (subleaf 1 EAX bit 5; subleaf 0 EDX bits 22 and 24).
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <pthread.h>
static char g_cpu_features[160];
static pthread_once_t g_cpu_features_once = PTHREAD_ONCE_INIT;

static void read_cpu_features(void) {
    char *out = g_cpu_features;
    out[0] = 0;
#if defined(__x86_64__) && defined(__clang__)
    __builtin_cpu_init();
    const char *names[] = {"sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512vnni"};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        int has = 0;
        switch (i) {  // __builtin_cpu_supports takes string literals only
        case 0: has = __builtin_cpu_supports("sse4.2"); break;
        case 1: has = __builtin_cpu_supports("avx"); break;
        case 2: has = __builtin_cpu_supports("avx2"); break;
        case 3: has = __builtin_cpu_supports("fma"); break;
        case 4: has = __builtin_cpu_supports("avx512f"); break;
        case 5: has = __builtin_cpu_supports("avx512bw"); break;
        case 6: has = __builtin_cpu_supports("avx512vl"); break;
        case 7: has = __builtin_cpu_supports("avx512vnni"); break;
        }
        if (has) { strcat(out, out[0] ? " " : ""); strcat(out, names[i]); }
    }
    unsigned a, b, c, d;
    if (__builtin_cpu_supports("avx512f") && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5)))
        strcat(out, " avx512_bf16");
    if (__builtin_cpu_supports("avx512f") && __get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if (d & (1u << 24)) strcat(out, " amx_tile");
        if (d & (1u << 22)) strcat(out, " amx_bf16");
    }
#endif
    if (!out[0]) strcpy(out, "baseline");
}

const char *asn_cpu_features(void) {
    pthread_once(&g_cpu_features_once, read_cpu_features);
    return g_cpu_features;
}

const char *asn_kernels_isa(void) {
#if defined(__x86_64__) && defined(__clang__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "avx512f";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2+fma";
#endif
    return "baseline";
}

// ---- Convolution unfolding -------------------------------------------------------------------

static inline size_t out_size(size_t n, size_t k, size_t stride, size_t pad) { return (n + 2 * pad - k) / stride + 1; }

// The output columns [*ox0, *ox1) whose input column ox*stride - pad + kx lies inside [0, w).
static inline void tap_columns(size_t kx, size_t w, size_t ow, size_t stride, size_t pad, size_t *ox0, size_t *ox1) {
    *ox0 = kx >= pad ? 0 : (pad - kx + stride - 1) / stride;
    *ox1 = (w + pad > kx) ? (w + pad - kx + stride - 1) / stride : 0;
    if (*ox1 > ow) *ox1 = ow;
}

ASN_CLONES
void asn_im2col(const float *x, size_t cin, size_t h, size_t w, size_t kh, size_t kw, size_t stride, size_t pad,
                float *cols) {
    const size_t oh = out_size(h, kh, stride, pad), ow = out_size(w, kw, stride, pad), npos = oh * ow;
    for (size_t c = 0; c < cin; c++) {
        for (size_t ky = 0; ky < kh; ky++) {
            for (size_t kx = 0; kx < kw; kx++) {
                float *row = cols + ((c * kh + ky) * kw + kx) * npos;
                size_t ox0, ox1;
                tap_columns(kx, w, ow, stride, pad, &ox0, &ox1);
                for (size_t oy = 0; oy < oh; oy++) {
                    float *dst = row + oy * ow;
                    const long iy = (long)(oy * stride + ky) - (long)pad;
                    if (iy < 0 || iy >= (long)h || ox0 >= ox1) { memset(dst, 0, ow * sizeof(float)); continue; }
                    if (ox0 > 0) memset(dst, 0, ox0 * sizeof(float));
                    const float *src = x + (c * h + (size_t)iy) * w + (ox0 * stride + kx - pad);
                    if (stride == 1) {
                        memcpy(dst + ox0, src, (ox1 - ox0) * sizeof(float));
                    } else {
                        for (size_t ox = ox0; ox < ox1; ox++) dst[ox] = src[(ox - ox0) * stride];
                    }
                    if (ox1 < ow) memset(dst + ox1, 0, (ow - ox1) * sizeof(float));
                }
            }
        }
    }
}

ASN_CLONES
void asn_col2im(const float *cols, size_t cin, size_t h, size_t w, size_t kh, size_t kw, size_t stride, size_t pad,
                float *x) {
    const size_t oh = out_size(h, kh, stride, pad), ow = out_size(w, kw, stride, pad), npos = oh * ow;
    for (size_t c = 0; c < cin; c++) {
        for (size_t ky = 0; ky < kh; ky++) {
            for (size_t kx = 0; kx < kw; kx++) {
                const float *row = cols + ((c * kh + ky) * kw + kx) * npos;
                size_t ox0, ox1;
                tap_columns(kx, w, ow, stride, pad, &ox0, &ox1);
                for (size_t oy = 0; oy < oh; oy++) {
                    const long iy = (long)(oy * stride + ky) - (long)pad;
                    if (iy < 0 || iy >= (long)h || ox0 >= ox1) continue;
                    const float *src = row + oy * ow;
                    float *dst = x + (c * h + (size_t)iy) * w + (ox0 * stride + kx - pad);
                    if (stride == 1) {
                        for (size_t ox = ox0; ox < ox1; ox++) dst[ox - ox0] += src[ox];
                    } else {
                        for (size_t ox = ox0; ox < ox1; ox++) dst[(ox - ox0) * stride] += src[ox];
                    }
                }
            }
        }
    }
}

// Per-thread scratch buffers, freed when their thread exits (worker threads come and go).
#include <pthread.h>
static _Thread_local float *scratch_ptr[4];
static _Thread_local size_t scratch_cap[4];
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_release(void *unused) {
    (void)unused;
    for (int i = 0; i < 4; i++) {
        free(scratch_ptr[i]);
        scratch_ptr[i] = NULL;
        scratch_cap[i] = 0;
    }
}

static void scratch_make_key(void) { pthread_key_create(&scratch_key, scratch_release); }

float *asn_scratch(size_t count, int slot) {
    if (slot < 0 || slot > 3) return NULL;
    if (scratch_cap[slot] < count) {
        pthread_once(&scratch_once, scratch_make_key);
        // A non-NULL value makes the key's destructor run at thread exit.
        pthread_setspecific(scratch_key, (void *)1);
        free(scratch_ptr[slot]);
        scratch_ptr[slot] = malloc(count * sizeof(float));
        scratch_cap[slot] = scratch_ptr[slot] ? count : 0;
    }
    return scratch_ptr[slot];
}

// ---- Allocator settings ----------------------------------------------------------------------
// Tensors of a few MB are allocated and freed thousands of times per training epoch. glibc
// serves blocks above its mmap threshold with fresh mappings, so each one costs a page fault per
// 4 KiB and a zeroing by the kernel (a quarter of a training step's time, measured with perf).
// Keeping blocks up to 32 MiB (glibc's maximum threshold) in the heap and not trimming it
// makes freed memory reusable at no cost; the peak resident size is unchanged.
#if defined(__GLIBC__)
#include <malloc.h>
__attribute__((constructor)) static void asn_configure_malloc(void) {
    if (getenv("AUTOSAM_DEFAULT_MALLOC")) return;  // measure the difference
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024);
}
#endif

// ---- Depthwise 3x3 convolution ---------------------------------------------------------------
// TinyViT's MBConv, PatchMerging and local convolutions: one 3x3 filter per channel, zero padding
// 1, stride 1 or 2, bias, and optionally the exact GELU of the result. Rows are computed as three
// shifted multiply-adds of whole input rows (vectorised along x for stride 1); the borders
// (x = 0 and the last column) take the zero padding into account explicitly.
ASN_CLONES
void asn_dwconv3x3(const float *x, size_t c0, size_t c1, size_t h, size_t w, size_t stride, const float *wt,
                   const float *bias, float *y, int gelu) {
    const size_t oh = (h - 1) / stride + 1, ow = (w - 1) / stride + 1;
    for (size_t c = c0; c < c1; c++) {
        const float *xc = x + c * h * w, *k = wt + c * 9;
        float *yc = y + c * oh * ow;
        const float b = bias ? bias[c] : 0.f;
        for (size_t oy = 0; oy < oh; oy++) {
            float *yr = yc + oy * ow;
            for (size_t ox = 0; ox < ow; ox++) yr[ox] = b;
            for (int ky = 0; ky < 3; ky++) {
                const long iy = (long)(oy * stride) - 1 + ky;
                if (iy < 0 || iy >= (long)h) continue;
                const float *xr = xc + iy * w;
                const float k0 = k[ky * 3], k1 = k[ky * 3 + 1], k2 = k[ky * 3 + 2];
                if (stride == 1) {
                    // y[ox] += k0 x[ox-1] + k1 x[ox] + k2 x[ox+1]
                    yr[0] += k1 * xr[0] + (w > 1 ? k2 * xr[1] : 0.f);
                    for (size_t ox = 1; ox + 1 < w; ox++) yr[ox] += k0 * xr[ox - 1] + k1 * xr[ox] + k2 * xr[ox + 1];
                    if (w > 1) yr[w - 1] += k0 * xr[w - 2] + k1 * xr[w - 1];
                } else {
                    for (size_t ox = 0; ox < ow; ox++) {
                        const long ix = (long)(ox * stride) - 1;
                        float acc = 0.f;
                        if (ix >= 0) acc += k0 * xr[ix];
                        if (ix + 1 < (long)w) acc += k1 * xr[ix + 1];
                        if (ix + 2 < (long)w) acc += k2 * xr[ix + 2];
                        yr[ox] += acc;
                    }
                }
            }
        }
        if (gelu) asn_gelu_to(yc, yc, oh * ow);
    }
}

// Channels-last version for tokens x[H*W, C] (TinyViT's local convolution works on tokens):
// output rows y0..<y1 of y[H*W, C], weights transposed to wt[9, C], stride 1, padding 1. The
// inner loop runs over channels (contiguous), so it vectorises without any layout change.
ASN_CLONES
void asn_dwconv3x3_tokens(const float *x, size_t h, size_t w, size_t c, const float *wt, const float *bias, float *y,
                          size_t y0, size_t y1) {
    for (size_t oy = y0; oy < y1; oy++) {
        for (size_t ox = 0; ox < w; ox++) {
            float *yr = y + (oy * w + ox) * c;
            for (size_t k = 0; k < c; k++) yr[k] = bias ? bias[k] : 0.f;
            for (int ky = 0; ky < 3; ky++) {
                const long iy = (long)oy - 1 + ky;
                if (iy < 0 || iy >= (long)h) continue;
                for (int kx = 0; kx < 3; kx++) {
                    const long ix = (long)ox - 1 + kx;
                    if (ix < 0 || ix >= (long)w) continue;
                    const float *xr = x + ((size_t)iy * w + (size_t)ix) * c, *wk = wt + (size_t)(ky * 3 + kx) * c;
                    for (size_t k = 0; k < c; k++) yr[k] += wk[k] * xr[k];
                }
            }
        }
    }
}

// ---- Transpose ---------------------------------------------------------------------------------
// dst[cols, rows] = src[rows, cols]^T for source rows r0..<r1, in 32 x 32 blocks (a plain
// double loop strides through one of the two arrays a whole row per element).
void asn_transpose(const float *src, size_t rows, size_t cols, float *dst, size_t r0, size_t r1) {
    const size_t B = 32;
    for (size_t rb = r0; rb < r1; rb += B) {
        const size_t re = rb + B < r1 ? rb + B : r1;
        for (size_t cb = 0; cb < cols; cb += B) {
            const size_t ce = cb + B < cols ? cb + B : cols;
            for (size_t r = rb; r < re; r++)
                for (size_t c = cb; c < ce; c++) dst[c * rows + r] = src[r * cols + c];
        }
    }
}

// ---- Parallel-region depth ----------------------------------------------------------------------
// How many of Parallel's regions the calling thread is inside (as a worker, or running one
// serially): the matrix products' OpenMP team size is chosen from it (Parallel.pinGEMMThreads).
static _Thread_local int t_parallel_depth;

void asn_parallel_enter(void) { t_parallel_depth++; }
void asn_parallel_leave(void) { t_parallel_depth--; }
int asn_parallel_depth(void) { return t_parallel_depth; }

// ---- Subnormal floats --------------------------------------------------------------------------
// Training drives some gradients and Adam moments into the subnormal range (below 1.2e-38).
// On x86 every subnormal operand or result of a multiply costs a microcode assist, and oneDNN's
// GEMM kernels do not flush them: a one-volume AutoSAM fit's epochs grew from 5 s to 20 s by
// epoch 50, nearly all of it inside the GEMMs (perf). Flush-to-zero and denormals-are-zero
// (MXCSR bits 15 and 6) make them zeros: the change to any result is below 1.2e-38 in absolute
// terms. MXCSR is per thread and inherited by threads created afterwards; the constructor sets
// it before main, and `asn_flush_denormals` is called again at the start of every parallel task.
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

void asn_flush_denormals(void) {
#if defined(__x86_64__) || defined(__i386__)
    static int keep = -1;
    if (keep < 0) keep = getenv("AUTOSAM_KEEP_DENORMALS") != NULL;  // measure the difference
    if (!keep) _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}

__attribute__((constructor)) static void asn_configure_fp(void) { asn_flush_denormals(); }
