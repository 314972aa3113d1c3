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

/// Which instruction set the dispatcher chose (for benchmarks' reports).
const char *asn_kernels_isa(void);

#ifdef __cplusplus
}
#endif
#endif
