// Hot element-wise kernels of autosam's numeric core, in C so that the compiler emits
// AVX-512 / AVX2 / baseline versions of each and picks one at load time (target_clones).
#ifndef ASN_KERNELS_H
#define ASN_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Softmax over each of `rows` rows of length n, in place (max-subtracted).
void asn_softmax_rows(float *x, size_t rows, size_t n);

/// GELU (erf form) in place over n values.
void asn_gelu(float *x, size_t n);

/// LayerNorm over each of `rows` rows of length n, in place: (x - mean) / sqrt(var + eps) * w + b.
void asn_layernorm_rows(float *x, size_t rows, size_t n, const float *w, const float *b, float eps);

/// SAM's decomposed relative position bias, added to attention scores in place.
/// scores: rows x (gh*gw), row r is query (r0 + r) of a gh x gw grid; q: the rows' query
/// vectors (row stride ldq, length hd); rel_h: [gh, gh, hd] table indexed [qy, ky];
/// rel_w: [gw, gw, hd] indexed [qx, kx].
void asn_add_rel_pos(float *scores, size_t rows, size_t r0, const float *q, size_t ldq, size_t hd,
                     const float *rel_h, const float *rel_w, size_t gh, size_t gw);

/// Which instruction set the dispatcher chose (for benchmarks' reports).
const char *asn_kernels_isa(void);

#ifdef __cplusplus
}
#endif
#endif
