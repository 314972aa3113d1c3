// autosam's bf16 linear layers over oneDNN 2.6's C API (Debian libdnnl-dev).
#include "asn_bf16.h"
#include "asn_kernels.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHAPES 8

// oneDNN sizes a primitive's scratchpad (and splits its work) for the OpenMP thread count at
// creation; executing it with more threads overruns the scratchpad. A primitive is therefore
// made per (shape, thread count): inside our parallel regions a worker runs with 1 thread,
// outside with all of them, and the same layer can run in both.
int omp_get_max_threads(void);

// One engine for every primitive, a stream per thread, and user-managed scratchpads, one per
// thread: the library's shared scratchpad must not be used by two threads executing
// primitives at once. So any primitive here may run on several threads at the same time
// (global attention runs its row blocks on all cores).
static dnnl_engine_t g_engine;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local dnnl_stream_t t_stream;
static _Thread_local void *t_scratch;
static _Thread_local size_t t_scratch_size;

static pthread_key_t g_thread_key;

// Worker threads come and go (libdispatch retires idle ones): a thread's stream and scratch
// are released when it exits, so a long-running service does not leak them.
static void thread_release(void *unused) {
    (void)unused;
    if (t_stream) dnnl_stream_destroy(t_stream);
    t_stream = NULL;
    free(t_scratch);
    t_scratch = NULL;
    t_scratch_size = 0;
}

static void init_engine(void) {
    dnnl_engine_create(&g_engine, dnnl_cpu, 0);
    pthread_key_create(&g_thread_key, thread_release);
}

static dnnl_engine_t shared_engine(void) {
    pthread_once(&g_once, init_engine);
    return g_engine;
}

static dnnl_stream_t thread_stream(void) {
    if (!t_stream && shared_engine()) {
        // A non-NULL value makes the key's destructor run at thread exit.
        pthread_setspecific(g_thread_key, (void *)1);
        dnnl_stream_create(&t_stream, g_engine, dnnl_stream_default_flags);
    }
    return t_stream;
}

static void *thread_scratch(size_t need) {
    if (need > t_scratch_size || !t_scratch) {
        shared_engine();
        pthread_setspecific(g_thread_key, (void *)1);
        free(t_scratch);
        t_scratch = malloc(need ? need : 1);
        t_scratch_size = t_scratch ? need : 0;
    }
    return t_scratch;
}

typedef struct {
    int64_t m;
    int nthr;
    int bf16_out;               // destination in bfloat16 (else float32)
    dnnl_primitive_t prim;
    dnnl_memory_desc_t src_md, dst_md, scratch_md;
} plan_t;

struct asn_bf16_linear {
    int64_t n, k;
    dnnl_engine_t engine;       // the shared engine
    pthread_mutex_t lock;       // guards plans / nplans
    dnnl_memory_t weights;      // bf16 in the primitive's preferred layout
    dnnl_memory_desc_t wei_md;  // that layout
    plan_t plans[MAX_SHAPES];
    int nplans;
    dnnl_memory_t bias;         // float32 [1, n], or NULL
    dnnl_memory_desc_t bias_md;
    int gelu;                   // exact-erf GELU fused after the bias
};

// Activation conversions run before every bf16 product: compiled for AVX-512 and AVX2 as well
// as the SSE2 baseline, the best picked at load (7% of a bf16 vit_b encoder run at baseline).
#if defined(__x86_64__) && defined(__clang__)
#define CONVERT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CONVERT_CLONES
#endif


CONVERT_CLONES
static void convert(const float *src, uint16_t *dst, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) dst[i] = asn_round_bf16(src[i] * scale);
}

static int make_plan(asn_bf16_linear *l, int64_t m, int bf16_out, plan_t *p) {
    dnnl_dims_t sd = {m, l->k}, wd = {l->k, l->n}, dd = {m, l->n};
    dnnl_memory_desc_t wany;
    if (dnnl_memory_desc_init_by_tag(&p->src_md, 2, sd, dnnl_bf16, dnnl_ab)) return -1;
    // Later plans take the layout the weights already have.
    if (l->weights) wany = l->wei_md;
    else if (dnnl_memory_desc_init_by_tag(&wany, 2, wd, dnnl_bf16, dnnl_format_tag_any)) return -1;
    if (dnnl_memory_desc_init_by_tag(&p->dst_md, 2, dd, bf16_out ? dnnl_bf16 : dnnl_f32, dnnl_ab)) return -1;
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, &p->src_md, &wany, l->bias ? &l->bias_md : NULL, &p->dst_md)) return -1;
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) || dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)) {
        if (attr) dnnl_primitive_attr_destroy(attr);
        return -1;
    }
    if (l->gelu) {
        dnnl_post_ops_t po = NULL;
        int bad = dnnl_post_ops_create(&po)
            || dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_gelu_erf, 0.f, 0.f)
            || dnnl_primitive_attr_set_post_ops(attr, po);
        if (po) dnnl_post_ops_destroy(po);
        if (bad) { dnnl_primitive_attr_destroy(attr); return -1; }
    }
    dnnl_primitive_desc_t pd;
    int pdrc = dnnl_primitive_desc_create(&pd, &md, attr, l->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (pdrc) return -1;
    p->scratch_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    const dnnl_memory_desc_t *w = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (l->weights == NULL) {
        l->wei_md = *w;
    } else if (!dnnl_memory_desc_equal(&l->wei_md, w)) {
        dnnl_primitive_desc_destroy(pd);
        return -2;  // another layout for another m: not supported (never seen)
    }
    int rc = dnnl_primitive_create(&p->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    p->m = m;
    p->nthr = omp_get_max_threads();
    p->bf16_out = bf16_out;
    return rc ? -1 : 0;
}

asn_bf16_linear *asn_bf16_linear_create(const float *weight, int64_t n, int64_t k) {
    return asn_bf16_linear_create_fused(weight, NULL, n, k, 0);
}

asn_bf16_linear *asn_bf16_linear_create_fused(const float *weight, const float *bias, int64_t n, int64_t k, int gelu) {
    asn_bf16_linear *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->n = n;
    l->k = k;
    l->gelu = gelu;
    l->engine = shared_engine();
    if (!l->engine || !thread_stream() || pthread_mutex_init(&l->lock, NULL)) {
        free(l);
        return NULL;
    }
    if (bias) {
        dnnl_dims_t bd = {1, n};
        if (dnnl_memory_desc_init_by_tag(&l->bias_md, 2, bd, dnnl_f32, dnnl_ab)
            || dnnl_memory_create(&l->bias, &l->bias_md, l->engine, DNNL_MEMORY_ALLOCATE)) {
            asn_bf16_linear_free(l);
            return NULL;
        }
        void *handle = NULL;
        dnnl_memory_get_data_handle(l->bias, &handle);
        memcpy(handle, bias, sizeof(float) * n);
    }
    // A first plan fixes the weights' layout; the weights are converted and reordered once.
    if (make_plan(l, 4096, 0, &l->plans[0])) { asn_bf16_linear_free(l); return NULL; }
    l->nplans = 1;
    uint16_t *wb = malloc(sizeof(uint16_t) * n * k);
    if (!wb) { asn_bf16_linear_free(l); return NULL; }
    for (int64_t i = 0; i < n * k; i++) wb[i] = asn_round_bf16(weight[i]);
    // W is [n, k] row-major = the {k, n} logical matrix in "ba" order.
    dnnl_dims_t wd = {k, n};
    dnnl_memory_desc_t plain;
    dnnl_memory_desc_init_by_tag(&plain, 2, wd, dnnl_bf16, dnnl_ba);
    dnnl_memory_t src = NULL, dst = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    int ok = dnnl_memory_create(&src, &plain, l->engine, wb) == dnnl_success
        && dnnl_memory_create(&dst, &l->wei_md, l->engine, DNNL_MEMORY_ALLOCATE) == dnnl_success
        && dnnl_reorder_primitive_desc_create(&rpd, &plain, l->engine, &l->wei_md, l->engine, NULL) == dnnl_success
        && dnnl_primitive_create(&reorder, rpd) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
        ok = dnnl_primitive_execute(reorder, t_stream, 2, args) == dnnl_success && dnnl_stream_wait(t_stream) == dnnl_success;
    }
    if (reorder) dnnl_primitive_destroy(reorder);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (src) dnnl_memory_destroy(src);
    free(wb);
    if (!ok) {
        if (dst) dnnl_memory_destroy(dst);
        asn_bf16_linear_free(l);
        return NULL;
    }
    l->weights = dst;
    return l;
}

int asn_bf16_linear_run(asn_bf16_linear *l, const float *x, int64_t m, float *y, int accumulate) {
    uint16_t *xb = malloc(sizeof(uint16_t) * (size_t)(m * l->k));
    if (!xb) return -4;
    convert(x, xb, m * l->k, 1);
    int rc = asn_bf16_linear_run_converted(l, xb, m, y, accumulate);
    free(xb);
    return rc;
}

// Runs the plan for (m, this thread's OpenMP thread count, destination type), made on first use.
static int run_plan(asn_bf16_linear *l, const uint16_t *xb, int64_t m, void *out, int bf16_out) {
    plan_t *p = NULL;
    int nthr = omp_get_max_threads();
    pthread_mutex_lock(&l->lock);
    for (int i = 0; i < l->nplans; i++)
        if (l->plans[i].m == m && l->plans[i].nthr == nthr && l->plans[i].bf16_out == bf16_out) p = &l->plans[i];
    if (!p) {
        if (l->nplans == MAX_SHAPES) { pthread_mutex_unlock(&l->lock); return -3; }
        p = &l->plans[l->nplans];
        int rc = make_plan(l, m, bf16_out, p);
        if (rc) { pthread_mutex_unlock(&l->lock); return rc; }
        l->nplans++;
    }
    pthread_mutex_unlock(&l->lock);
    dnnl_stream_t stream = thread_stream();
    void *scratch = thread_scratch(dnnl_memory_desc_get_size(&p->scratch_md));
    if (!stream || !scratch) return -4;
    dnnl_memory_t s = NULL, d = NULL, sp = NULL;
    int rc = -1;
    if (dnnl_memory_create(&s, &p->src_md, l->engine, (void *)xb) == dnnl_success
        && dnnl_memory_create(&d, &p->dst_md, l->engine, out) == dnnl_success
        && dnnl_memory_create(&sp, &p->scratch_md, l->engine, scratch) == dnnl_success) {
        dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, l->weights}, {DNNL_ARG_DST, d}, {DNNL_ARG_SCRATCHPAD, sp},
                                   {DNNL_ARG_BIAS, l->bias}};
        if (dnnl_primitive_execute(p->prim, stream, l->bias ? 5 : 4, args) == dnnl_success && dnnl_stream_wait(stream) == dnnl_success) rc = 0;
    }
    if (s) dnnl_memory_destroy(s);
    if (d) dnnl_memory_destroy(d);
    if (sp) dnnl_memory_destroy(sp);
    return rc;
}

int asn_bf16_linear_run_converted(asn_bf16_linear *l, const uint16_t *xb, int64_t m, float *y, int accumulate) {
    if (!accumulate) return run_plan(l, xb, m, y, 0);
    float *tmp = malloc(sizeof(float) * m * l->n);
    if (!tmp) return -4;
    int rc = run_plan(l, xb, m, tmp, 0);
    if (rc == 0) for (int64_t i = 0; i < m * l->n; i++) y[i] += tmp[i];
    free(tmp);
    return rc;
}

int asn_bf16_linear_run_to_bf16(asn_bf16_linear *l, const uint16_t *xb, int64_t m, uint16_t *y) {
    return run_plan(l, xb, m, y, 1);
}

void asn_bf16_linear_free(asn_bf16_linear *l) {
    if (!l) return;
    for (int i = 0; i < l->nplans; i++) if (l->plans[i].prim) dnnl_primitive_destroy(l->plans[i].prim);
    if (l->weights) dnnl_memory_destroy(l->weights);
    if (l->bias) dnnl_memory_destroy(l->bias);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

void asn_to_bf16(const float *src, uint16_t *dst, int64_t n, float scale) { convert(src, dst, n, scale); }


typedef struct {
    int64_t key[8];
    dnnl_primitive_t prim;
    dnnl_memory_desc_t a, b, c, scratch;
} gemm_plan_t;


#define GEMM_CACHE 64
static gemm_plan_t g_cache[GEMM_CACHE];
static int g_cached;


static gemm_plan_t *gemm_plan(const int64_t key[8]) {
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < g_cached; i++) {
        if (memcmp(g_cache[i].key, key, sizeof g_cache[i].key) == 0) {
            pthread_mutex_unlock(&g_lock);
            return &g_cache[i];
        }
    }
    gemm_plan_t *p = NULL;
    if (g_cached < GEMM_CACHE) {
        gemm_plan_t t;
        memcpy(t.key, key, sizeof t.key);
        int64_t m = key[0], n = key[1], k = key[2], lda = key[3], ldb = key[4], trans = key[5], ldc = key[6];
        dnnl_dims_t ad = {m, k}, bd = {k, n}, cd = {m, n};
        dnnl_dims_t as = {lda, 1}, cs = {ldc, 1};
        dnnl_dims_t bs = {ldb, 1};
        if (trans) { bs[0] = 1; bs[1] = ldb; }
        dnnl_matmul_desc_t md;
        dnnl_primitive_desc_t pd = NULL;
        dnnl_primitive_attr_t attr = NULL;
        if (dnnl_primitive_attr_create(&attr) == dnnl_success
            && dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success
            && dnnl_memory_desc_init_by_strides(&t.a, 2, ad, dnnl_bf16, as) == dnnl_success
            && dnnl_memory_desc_init_by_strides(&t.b, 2, bd, dnnl_bf16, bs) == dnnl_success
            && dnnl_memory_desc_init_by_strides(&t.c, 2, cd, dnnl_f32, cs) == dnnl_success
            && dnnl_matmul_desc_init(&md, &t.a, &t.b, NULL, &t.c) == dnnl_success
            && dnnl_primitive_desc_create(&pd, &md, attr, g_engine, NULL) == dnnl_success
            && dnnl_primitive_create(&t.prim, pd) == dnnl_success) {
            t.scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
            g_cache[g_cached] = t;
            p = &g_cache[g_cached++];
        }
        if (pd) dnnl_primitive_desc_destroy(pd);
        if (attr) dnnl_primitive_attr_destroy(attr);
    }
    pthread_mutex_unlock(&g_lock);
    return p;
}

int asn_bf16_gemm(int64_t m, int64_t n, int64_t k, const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb,
                  int trans_b, float *c, int64_t ldc) {
    if (!thread_stream()) return -1;
    int64_t key[8] = {m, n, k, lda, ldb, trans_b ? 1 : 0, ldc, omp_get_max_threads()};
    gemm_plan_t *p = gemm_plan(key);
    if (!p) return -2;
    if (!thread_scratch(dnnl_memory_desc_get_size(&p->scratch))) return -4;
    dnnl_memory_t ma = NULL, mb = NULL, mc = NULL, ms = NULL;
    int rc = -1;
    if (dnnl_memory_create(&ma, &p->a, g_engine, (void *)a) == dnnl_success
        && dnnl_memory_create(&mb, &p->b, g_engine, (void *)b) == dnnl_success
        && dnnl_memory_create(&mc, &p->c, g_engine, c) == dnnl_success
        && dnnl_memory_create(&ms, &p->scratch, g_engine, t_scratch) == dnnl_success) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}, {DNNL_ARG_SCRATCHPAD, ms}};
        if (dnnl_primitive_execute(p->prim, t_stream, 4, args) == dnnl_success && dnnl_stream_wait(t_stream) == dnnl_success) rc = 0;
    }
    if (ma) dnnl_memory_destroy(ma);
    if (mb) dnnl_memory_destroy(mb);
    if (mc) dnnl_memory_destroy(mc);
    if (ms) dnnl_memory_destroy(ms);
    return rc;
}

const char *asn_bf16_isa(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2: return "avx2";
    default: return "other";
    }
}

// Whether oneDNN builds a bfloat16 matmul here: it does on AVX-512 CPUs (natively with
// AVX512-BF16 or AMX, by conversion on plain AVX-512) and not on AVX2-only ones, and not
// under ONEDNN_MAX_CPU_ISA=AVX2. Asked once, with a small primitive of the kind the linear
// layers make (bf16 source and weights, float32 destination).
static int g_bf16_available;
static pthread_once_t g_bf16_once = PTHREAD_ONCE_INIT;

static void probe_bf16(void) {
    dnnl_engine_t engine = shared_engine();
    if (!engine) return;
    dnnl_dims_t sd = {16, 32}, wd = {32, 16}, dd = {16, 16};
    dnnl_memory_desc_t s, w, d;
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_memory_desc_init_by_tag(&s, 2, sd, dnnl_bf16, dnnl_ab)
        || dnnl_memory_desc_init_by_tag(&w, 2, wd, dnnl_bf16, dnnl_format_tag_any)
        || dnnl_memory_desc_init_by_tag(&d, 2, dd, dnnl_f32, dnnl_ab)
        || dnnl_matmul_desc_init(&md, &s, &w, NULL, &d))
        return;
    if (dnnl_primitive_desc_create(&pd, &md, NULL, engine, NULL) == dnnl_success) {
        g_bf16_available = 1;
        dnnl_primitive_desc_destroy(pd);
    }
}

int asn_bf16_available(void) {
    pthread_once(&g_bf16_once, probe_bf16);
    return g_bf16_available;
}
