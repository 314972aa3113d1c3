// Hot element-wise kernels of autosam's numeric core, in C so that the compiler emits
// AVX-512 / AVX2 / baseline versions of each and picks one at load time (target_clones).
#ifndef ASN_KERNELS_H
#define ASN_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Float32 -> bfloat16, rounded to nearest even (the kernels and the bf16 layers share it).
static inline uint16_t asn_round_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/// Softmax over each of `rows` rows of length n, in place (max-subtracted).
void asn_softmax_rows(float *x, size_t rows, size_t n);
/// The same for short rows (n <= 8, e.g. attention over a class's few tokens); longer rows go
/// to asn_softmax_rows.
void asn_softmax_short_rows(float *x, size_t rows, size_t n);

/// GELU (erf form) of x into y, n values (y may be x: in place; no other overlap).
void asn_gelu_to(const float *x, float *y, size_t n);
/// Backward of GELU: d = g * GELU'(x) from x and y = GELU(x) (all n long; d may be g).
void asn_gelu_backward(const float *g, const float *x, const float *y, float *d, size_t n);

/// LayerNorm over each of `rows` rows of length n, in place: (x - mean) / sqrt(var + eps) * w + b.
void asn_layernorm_rows(float *x, size_t rows, size_t n, const float *w, const float *b, float eps);

/// LayerNorm over rows of n: y = (x - mean) / sqrt(var + eps) * w + b, and per row
/// stats[2r] = mean, stats[2r + 1] = 1 / std (for the backward).
void asn_layernorm_forward(const float *x, size_t rows, size_t n, const float *w, const float *b, float eps,
                           float *y, float *stats);

/// Backward of asn_layernorm_forward from its stats: dx overwritten; dw and db (n each)
/// accumulated into.
void asn_layernorm_backward(const float *g, const float *x, size_t rows, size_t n, const float *w,
                            const float *stats, float *dx, float *dw, float *db);

/// SAM's decomposed relative position bias, added to attention scores in place.
/// scores: rows x (gh*gw), row r is query (r0 + r) of a gh x gw grid; q: the rows' query
/// vectors (row stride ldq, length hd); rel_h: [gh, gh, hd] table indexed [qy, ky];
/// rel_w: [gw, gw, hd] indexed [qx, kx].
void asn_add_rel_pos(float *scores, size_t rows, size_t r0, const float *q, size_t ldq, size_t hd,
                     const float *rel_h, const float *rel_w, size_t gh, size_t gw);

/// Attention probabilities for bfloat16 products, fused: scores [rows, gh*gw] plus SAM's
/// decomposed relative-position bias (skipped when rel_h or rel_w is NULL; q is the unscaled
/// query, row stride ldq, rows r0..<r0+rows of the grid), then the softmax numerators
/// exp(v - row max) rounded to bfloat16 into out, and 1 / (their float32 sum) into inv_sum[rows]:
/// the caller scales each output row of (numerators @ V) by inv_sum. Returns 0, or -1 (nothing
/// written) for a grid side above 512.
int asn_rel_pos_softmax_bf16(const float *scores, size_t rows, size_t r0, const float *q, size_t ldq, size_t hd,
                             const float *rel_h, const float *rel_w, size_t gh, size_t gw, uint16_t *out,
                             float *inv_sum);

/// Sets flush-to-zero and denormals-are-zero for the calling thread (x86; a no-op elsewhere,
/// or when AUTOSAM_KEEP_DENORMALS is set). Set for the main thread at load.
void asn_flush_denormals(void);

/// Depthwise 3x3 convolution (zero padding 1, stride 1 or 2) of channels c0..<c1 of
/// x[C, h, w] with weights wt[C, 3, 3] and bias (may be NULL) into y[C, oh, ow],
/// oh = (h - 1) / stride + 1; then the exact GELU when gelu != 0.
void asn_dwconv3x3(const float *x, size_t c0, size_t c1, size_t h, size_t w, size_t stride, const float *wt,
                   const float *bias, float *y, int gelu);

/// Depthwise 3x3 convolution (stride 1, padding 1) on tokens x[h*w, c] (channels last) into
/// rows y0..<y1 of y[h*w, c]; weights wt[9, c] (tap-major), bias (may be NULL).
void asn_dwconv3x3_tokens(const float *x, size_t h, size_t w, size_t c, const float *wt, const float *bias, float *y,
                          size_t y0, size_t y1);

/// dst[cols, rows] = transpose of src[rows, cols], for source rows r0..<r1.
void asn_transpose(const float *src, size_t rows, size_t cols, float *dst, size_t r0, size_t r1);

/// The calling thread's depth of parallel regions (Parallel.forEach bodies, parallel or run
/// serially); thread-local.
void asn_parallel_enter(void);
void asn_parallel_leave(void);
int asn_parallel_depth(void);

/// Which instruction set the dispatcher chose (for benchmarks' reports).
const char *asn_kernels_isa(void);

/// The CPU's vector and matrix extensions, space-separated (e.g. "sse4.2 avx avx2 fma avx512f
/// ... avx512_bf16 amx_tile amx_bf16"), for reports.
const char *asn_cpu_features(void);

/// Convolution unfolding of x[cin, h, w] into cols[cin*kh*kw, oh*ow] (zero padding), and its
/// adjoint (col2im adds cols back into x, which the caller has zeroed).
void asn_im2col(const float *x, size_t cin, size_t h, size_t w, size_t kh, size_t kw, size_t stride, size_t pad,
                float *cols);
void asn_col2im(const float *cols, size_t cin, size_t h, size_t w, size_t kh, size_t kw, size_t stride, size_t pad,
                float *x);

/// y[r, :] += bias for rows of length n, then (gelu != 0) the erf GELU, in one pass.
void asn_bias_act_rows(float *y, size_t rows, size_t n, const float *bias, int gelu);

/// A per-thread scratch buffer of at least `count` floats for `slot` (0..3), reused between
/// calls on the same thread (large temporaries otherwise cost a page fault per 4 KiB on every
/// call). Valid until the next call with the same slot on the same thread. NULL if out of memory.
float *asn_scratch(size_t count, int slot);

#ifdef __cplusplus
}
#endif
#endif
