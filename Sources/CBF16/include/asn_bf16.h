// Reduced-precision linear layers through oneDNN's matmul primitive: activations and weights
// in bfloat16 (AMX / AVX512-BF16 where the CPU has them), accumulation and output in float32.
#ifndef ASN_BF16_H
#define ASN_BF16_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asn_bf16_linear asn_bf16_linear;

/// Prepares y = x @ W^T for weight W [n, k] (row-major float32, copied and converted once).
asn_bf16_linear *asn_bf16_linear_create(const float *weight, int64_t n, int64_t k);

/// Like asn_bf16_linear_create, with the bias (float32 [n], may be NULL) and, when gelu != 0,
/// an exact-erf GELU fused into the product: y = gelu(x @ W^T + b).
asn_bf16_linear *asn_bf16_linear_create_fused(const float *weight, const float *bias, int64_t n, int64_t k, int gelu);

/// Computes y[m, n] = x[m, k] @ W^T (+ bias, GELU as created) (+ y when accumulate != 0).
/// Returns 0 on success.
int asn_bf16_linear_run(asn_bf16_linear *l, const float *x, int64_t m, float *y, int accumulate);

/// The same with x already in bfloat16 (converted by the caller, e.g. on several threads).
int asn_bf16_linear_run_converted(asn_bf16_linear *l, const uint16_t *xb, int64_t m, float *y, int accumulate);

/// The same with the output in bfloat16 (rounded to nearest even after bias and GELU), for a
/// layer whose output feeds another bfloat16 product. Returns 0 on success; -2 where this
/// output type would need another weight layout (the caller then uses the float32 output).
int asn_bf16_linear_run_to_bf16(asn_bf16_linear *l, const uint16_t *xb, int64_t m, uint16_t *y);

void asn_bf16_linear_free(asn_bf16_linear *l);

/// Float32 -> bfloat16 (round to nearest even) of n values.
void asn_to_bf16(const float *src, uint16_t *dst, int64_t n, float scale);

/// C[m, n] (float32, row stride ldc) = A[m, k] @ op(B), A and B bfloat16 with row strides
/// lda / ldb; op(B) = B^T when trans_b (B stored [n, k]) else B (stored [k, n]). Safe to call
/// from several threads (a stream per thread, primitives cached by shape). Returns 0 on success.
int asn_bf16_gemm(int64_t m, int64_t n, int64_t k, const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb,
                  int trans_b, float *c, int64_t ldc);

/// The ISA oneDNN dispatches to (e.g. "avx512_core_amx"), for reports.
const char *asn_bf16_isa(void);

/// 1 when oneDNN makes bfloat16 matrix products on this CPU, else 0 (AVX2-only CPUs, or
/// ONEDNN_MAX_CPU_ISA below AVX-512): the bf16 precision mode then runs in float32.
int asn_bf16_available(void);

#ifdef __cplusplus
}
#endif
#endif
