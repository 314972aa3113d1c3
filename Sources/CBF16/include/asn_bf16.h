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

/// Computes y[m, n] = x[m, k] @ W^T (+ y when accumulate != 0). Returns 0 on success.
int asn_bf16_linear_run(asn_bf16_linear *l, const float *x, int64_t m, float *y, int accumulate);

void asn_bf16_linear_free(asn_bf16_linear *l);

/// The ISA oneDNN dispatches to (e.g. "avx512_core_amx"), for reports.
const char *asn_bf16_isa(void);

#ifdef __cplusplus
}
#endif
#endif
