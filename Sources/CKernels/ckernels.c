// See include/ckernels.h. Built without special flags: the AVX2/FMA/F16C functions carry a
// `target` attribute and are only called after a CPUID check, so dependents need no unsafeFlags.
#include "ckernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#define CK_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

// MARK: CPU detection

static int detect_avx2(void) {
#if CK_X86
    const char *off = getenv("KVSCOPE_NO_AVX2");
    if (off && *off && *off != '0') return 0;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!(fma && osxsave && avx && f16c)) return 0;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    if ((xlo & 6) != 6) return 0; // the OS saves XMM and YMM state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 5) & 1;
#else
    return 0;
#endif
}

// AVX-512F with the OS saving the opmask and ZMM state (on top of AVX2); KVSCOPE_NO_AVX512=1
// (or KVSCOPE_NO_AVX2=1) turns it off.
static int detect_avx512(void) {
#if CK_X86
    if (!ck_uses_avx2()) return 0;
    const char *off = getenv("KVSCOPE_NO_AVX512");
    if (off && *off && *off != '0') return 0;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((b >> 16) & 1)) return 0;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    return (xlo & 0xE6) == 0xE6;
#else
    return 0;
#endif
}

static int cached = -1; // a benign race: every thread computes the same value
static int cached512 = -1;

int ck_uses_avx512(void) {
    int v = __atomic_load_n(&cached512, __ATOMIC_RELAXED);
    if (v < 0) {
        v = detect_avx512();
        __atomic_store_n(&cached512, v, __ATOMIC_RELAXED);
    }
    return v;
}

int ck_uses_avx2(void) {
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        v = detect_avx2();
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

// MARK: Packing

size_t ck_packed_count(long c, long d) {
    const long panels = (c + CK_PANEL - 1) / CK_PANEL;
    return (size_t)(panels * d * CK_PANEL);
}

void ck_pack_panels(const float *b, long c, long d, float *out) {
    const long panels = (c + CK_PANEL - 1) / CK_PANEL;
    for (long p = 0; p < panels; p++) {
        float *o = out + p * d * CK_PANEL;
        for (long j = 0; j < CK_PANEL; j++) {
            const long row = p * CK_PANEL + j;
            if (row < c) {
                const float *src = b + row * d;
                for (long k = 0; k < d; k++) o[k * CK_PANEL + j] = src[k];
            } else {
                for (long k = 0; k < d; k++) o[k * CK_PANEL + j] = 0.0f;
            }
        }
    }
}

// MARK: Top-2 of a·bᵀ per row of a

#define CK_ROWS 6

/// Lane-wise running top-2 of one row: lane j sees columns p·16 + j in increasing p.
typedef struct {
    float b1[CK_PANEL], b2[CK_PANEL];
    int32_t i1[CK_PANEL];
} lane_top2;

static void lane_init(lane_top2 *t) {
    for (int j = 0; j < CK_PANEL; j++) { t->b1[j] = -INFINITY; t->b2[j] = -INFINITY; t->i1[j] = 0; }
}

/// Reduces the 16 lanes into best, second and the column of best.
static void lane_finish(const lane_top2 *t, float *best, float *second, int32_t *arg) {
    float b = -INFINITY;
    int lane = 0;
    for (int j = 0; j < CK_PANEL; j++) if (t->b1[j] > b) { b = t->b1[j]; lane = j; }
    float s = -INFINITY;
    for (int j = 0; j < CK_PANEL; j++) {
        if (t->b2[j] > s) s = t->b2[j];
        if (j != lane && t->b1[j] > s) s = t->b1[j];
    }
    *best = b;
    *second = s;
    *arg = t->i1[lane] * CK_PANEL + lane;
}

static void top2_portable(const float *a, long e, long d, const float *packed, long c,
                          float *best, float *second, int32_t *arg) {
    const long panels = (c + CK_PANEL - 1) / CK_PANEL;
    lane_top2 st[CK_ROWS];
    for (long i0 = 0; i0 < e; i0 += CK_ROWS) {
        const long rows = e - i0 < CK_ROWS ? e - i0 : CK_ROWS;
        const float *r[CK_ROWS];
        for (int u = 0; u < CK_ROWS; u++) { r[u] = a + (i0 + (u < rows ? u : rows - 1)) * d; lane_init(&st[u]); }
        for (long p = 0; p < panels; p++) {
            const float *bp = packed + p * d * CK_PANEL;
            float acc[CK_ROWS][CK_PANEL];
            memset(acc, 0, sizeof acc);
            for (long k = 0; k < d; k++) {
                const float *bk = bp + k * CK_PANEL;
                for (int u = 0; u < CK_ROWS; u++) {
                    const float x = r[u][k];
                    for (int j = 0; j < CK_PANEL; j++) acc[u][j] += x * bk[j];
                }
            }
            const long valid = c - p * CK_PANEL < CK_PANEL ? c - p * CK_PANEL : CK_PANEL;
            for (int u = 0; u < CK_ROWS; u++) {
                lane_top2 *t = &st[u];
                for (long j = 0; j < valid; j++) {
                    const float v = acc[u][j];
                    const float lo = v < t->b1[j] ? v : t->b1[j];
                    if (lo > t->b2[j]) t->b2[j] = lo;
                    if (v > t->b1[j]) { t->b1[j] = v; t->i1[j] = (int32_t)p; }
                }
            }
        }
        for (long u = 0; u < rows; u++) lane_finish(&st[u], best + i0 + u, second + i0 + u, arg + i0 + u);
    }
}

#if CK_X86
/// What the vector forms add to the last panel's sums: 0 on its columns `< c`, −∞ on its padding.
static void padding_bias(long c, float bias[CK_PANEL]) {
    const long panels = (c + CK_PANEL - 1) / CK_PANEL;
    for (int j = 0; j < CK_PANEL; j++) bias[j] = (panels - 1) * CK_PANEL + j < c ? 0.0f : -INFINITY;
}

__attribute__((target("avx2,fma")))
static void top2_avx2(const float *a, long e, long d, const float *packed, long c,
                      float *best, float *second, int32_t *arg) {
    const long panels = (c + CK_PANEL - 1) / CK_PANEL;
    float biasv[CK_PANEL];
    padding_bias(c, biasv);
    const __m256 bias0 = _mm256_loadu_ps(biasv), bias1 = _mm256_loadu_ps(biasv + 8);
    __attribute__((aligned(32))) lane_top2 st[CK_ROWS];
    for (long i0 = 0; i0 < e; i0 += CK_ROWS) {
        const long rows = e - i0 < CK_ROWS ? e - i0 : CK_ROWS;
        const float *r[CK_ROWS];
        for (int u = 0; u < CK_ROWS; u++) { r[u] = a + (i0 + (u < rows ? u : rows - 1)) * d; lane_init(&st[u]); }
        const float *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3], *r4 = r[4], *r5 = r[5];
        for (long p = 0; p < panels; p++) {
            const float *bp = packed + p * d * CK_PANEL;
            __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
            __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
            for (long k = 0; k < d; k++) {
                const __m256 x0 = _mm256_loadu_ps(bp + k * CK_PANEL), x1 = _mm256_loadu_ps(bp + k * CK_PANEL + 8);
                __m256 t;
                t = _mm256_broadcast_ss(r0 + k); c00 = _mm256_fmadd_ps(t, x0, c00); c01 = _mm256_fmadd_ps(t, x1, c01);
                t = _mm256_broadcast_ss(r1 + k); c10 = _mm256_fmadd_ps(t, x0, c10); c11 = _mm256_fmadd_ps(t, x1, c11);
                t = _mm256_broadcast_ss(r2 + k); c20 = _mm256_fmadd_ps(t, x0, c20); c21 = _mm256_fmadd_ps(t, x1, c21);
                t = _mm256_broadcast_ss(r3 + k); c30 = _mm256_fmadd_ps(t, x0, c30); c31 = _mm256_fmadd_ps(t, x1, c31);
                t = _mm256_broadcast_ss(r4 + k); c40 = _mm256_fmadd_ps(t, x0, c40); c41 = _mm256_fmadd_ps(t, x1, c41);
                t = _mm256_broadcast_ss(r5 + k); c50 = _mm256_fmadd_ps(t, x0, c50); c51 = _mm256_fmadd_ps(t, x1, c51);
            }
            if (p == panels - 1) {
                c00 = _mm256_add_ps(c00, bias0); c01 = _mm256_add_ps(c01, bias1);
                c10 = _mm256_add_ps(c10, bias0); c11 = _mm256_add_ps(c11, bias1);
                c20 = _mm256_add_ps(c20, bias0); c21 = _mm256_add_ps(c21, bias1);
                c30 = _mm256_add_ps(c30, bias0); c31 = _mm256_add_ps(c31, bias1);
                c40 = _mm256_add_ps(c40, bias0); c41 = _mm256_add_ps(c41, bias1);
                c50 = _mm256_add_ps(c50, bias0); c51 = _mm256_add_ps(c51, bias1);
            }
            const __m256 pi = _mm256_castsi256_ps(_mm256_set1_epi32((int)p));
            const __m256 acc[CK_ROWS][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
            for (int u = 0; u < CK_ROWS; u++) {
                lane_top2 *t = &st[u];
                for (int h = 0; h < 2; h++) {
                    const __m256 v = acc[u][h];
                    const __m256 b1 = _mm256_load_ps(t->b1 + 8 * h), b2 = _mm256_load_ps(t->b2 + 8 * h);
                    const __m256 i1 = _mm256_load_ps((const float *)(t->i1 + 8 * h));
                    const __m256 gt = _mm256_cmp_ps(v, b1, _CMP_GT_OQ);
                    _mm256_store_ps(t->b2 + 8 * h, _mm256_max_ps(b2, _mm256_min_ps(b1, v)));
                    _mm256_store_ps(t->b1 + 8 * h, _mm256_blendv_ps(b1, v, gt));
                    _mm256_store_ps((float *)(t->i1 + 8 * h), _mm256_blendv_ps(i1, pi, gt));
                }
            }
        }
        for (long u = 0; u < rows; u++) lane_finish(&st[u], best + i0 + u, second + i0 + u, arg + i0 + u);
    }
}
#endif

#if CK_X86
// The AVX-512 form of `top2_avx2`: 12 rows × 2 panels (24 accumulators), one 16-lane vector per
// panel. Each value is the same chain of fused multiply-adds over `k` in order, and each lane
// sees its columns in the same increasing panel order with the same min/max/compare steps, so
// best, second and arg are bit-identical to the AVX2 form.
#define CK_ROWS512T 12
__attribute__((target("avx512f"), always_inline))
static inline void top2_update512(lane_top2 *t, __m512 v, int32_t p) {
    const __m512 b1 = _mm512_load_ps(t->b1), b2 = _mm512_load_ps(t->b2);
    const __m512i i1 = _mm512_load_si512((const void *)t->i1);
    const __mmask16 gt = _mm512_cmp_ps_mask(v, b1, _CMP_GT_OQ);
    _mm512_store_ps(t->b2, _mm512_max_ps(b2, _mm512_min_ps(b1, v)));
    _mm512_store_ps(t->b1, _mm512_mask_blend_ps(gt, b1, v));
    _mm512_store_si512((void *)t->i1, _mm512_mask_blend_epi32(gt, i1, _mm512_set1_epi32(p)));
}

/// `lane_finish` on 16-lane vectors: the same best, first lane attaining it, and second.
__attribute__((target("avx512f")))
static void lane_finish512(const lane_top2 *t, float *best, float *second, int32_t *arg) {
    const __m512 b1 = _mm512_load_ps(t->b1), b2 = _mm512_load_ps(t->b2);
    const float b = _mm512_reduce_max_ps(b1);
    const __mmask16 at = _mm512_cmp_ps_mask(b1, _mm512_set1_ps(b), _CMP_EQ_OQ);
    const int lane = at ? __builtin_ctz(at) : 0;
    const __m512 others = _mm512_mask_blend_ps((__mmask16)(1u << lane), b1, _mm512_set1_ps(-INFINITY));
    *best = b;
    *second = _mm512_reduce_max_ps(_mm512_max_ps(b2, others));
    *arg = t->i1[lane] * CK_PANEL + lane;
}

__attribute__((target("avx512f")))
static void top2_avx512(const float *a, long e, long d, const float *packed, long c,
                        float *best, float *second, int32_t *arg) {
    const long panels = (c + CK_PANEL - 1) / CK_PANEL;
    float biasv[CK_PANEL];
    padding_bias(c, biasv);
    const __m512 bias = _mm512_loadu_ps(biasv);
    __attribute__((aligned(64))) lane_top2 st[CK_ROWS512T];
    // The tile's rows, dimension-major (`tile[k·R + u]` = row u, element k): one pointer and
    // constant offsets for the broadcasts. Rows past `e` repeat the last row.
    float *tile = (float *)malloc((size_t)(d > 0 ? d : 1) * CK_ROWS512T * sizeof(float));
    if (!tile) { top2_avx2(a, e, d, packed, c, best, second, arg); return; }
    for (long i0 = 0; i0 < e; i0 += CK_ROWS512T) {
        const long rows = e - i0 < CK_ROWS512T ? e - i0 : CK_ROWS512T;
        for (int u = 0; u < CK_ROWS512T; u++) {
            const float *r = a + (i0 + (u < rows ? u : rows - 1)) * d;
            for (long k = 0; k < d; k++) tile[k * CK_ROWS512T + u] = r[k];
            lane_init(&st[u]);
        }
        long p = 0;
        for (; p + 2 <= panels; p += 2) {
            const float *bp = packed + p * d * CK_PANEL;
            __m512 c0[CK_ROWS512T], c1[CK_ROWS512T];
#pragma clang loop unroll(full)
            for (int u = 0; u < CK_ROWS512T; u++) { c0[u] = _mm512_setzero_ps(); c1[u] = c0[u]; }
            for (long k = 0; k < d; k++) {
                const __m512 x0 = _mm512_loadu_ps(bp + k * CK_PANEL), x1 = _mm512_loadu_ps(bp + (d + k) * CK_PANEL);
                const float *tk = tile + k * CK_ROWS512T;
#pragma clang loop unroll(full)
                for (int u = 0; u < CK_ROWS512T; u++) {
                    const __m512 t = _mm512_set1_ps(tk[u]);
                    c0[u] = _mm512_fmadd_ps(t, x0, c0[u]);
                    c1[u] = _mm512_fmadd_ps(t, x1, c1[u]);
                }
            }
            if (p + 1 == panels - 1) {
#pragma clang loop unroll(full)
                for (int u = 0; u < CK_ROWS512T; u++) c1[u] = _mm512_add_ps(c1[u], bias);
            }
#pragma clang loop unroll(full)
            for (int u = 0; u < CK_ROWS512T; u++) { top2_update512(&st[u], c0[u], (int32_t)p); top2_update512(&st[u], c1[u], (int32_t)p + 1); }
        }
        if (p < panels) {
            const float *bp = packed + p * d * CK_PANEL;
            __m512 c0[CK_ROWS512T];
#pragma clang loop unroll(full)
            for (int u = 0; u < CK_ROWS512T; u++) c0[u] = _mm512_setzero_ps();
            for (long k = 0; k < d; k++) {
                const __m512 x0 = _mm512_loadu_ps(bp + k * CK_PANEL);
                const float *tk = tile + k * CK_ROWS512T;
#pragma clang loop unroll(full)
                for (int u = 0; u < CK_ROWS512T; u++) c0[u] = _mm512_fmadd_ps(_mm512_set1_ps(tk[u]), x0, c0[u]);
            }
#pragma clang loop unroll(full)
            for (int u = 0; u < CK_ROWS512T; u++) top2_update512(&st[u], _mm512_add_ps(c0[u], bias), (int32_t)p);
        }
        for (long u = 0; u < rows; u++) lane_finish512(&st[u], best + i0 + u, second + i0 + u, arg + i0 + u);
    }
    free(tile);
}
#endif

// MARK: AMX top-2 (tiles of bf16 products accumulated in f32)
//
// Each f32 value x is split into two bf16 values, hi = bf16(x) and lo = bf16(x − hi) (round to
// nearest even), so that |x − hi − lo| ≤ 2⁻¹⁸·|x|. A row a and a column b become the bf16
// vectors a' = [a_hi, a_lo, a_hi] and b' = [b_hi, b_hi, b_lo] (zero padded to a multiple of 32),
// and a'·b' = a_hi·b_hi + a_lo·b_hi + a_hi·b_lo is one bf16 matrix product with f32
// accumulation: the tile instructions' job (TDPBF16PS: 16×16 outputs, 32 products each, per
// instruction). The dropped terms and the f32 roundings bound the error for rows of norm ≤ 1 by
// `ck_top2_error(d)`; the callers widen their settle margin by twice that, and re-score every
// unsettled row with the f32 and Double kernels as before, so no decision changes.

#define CK_ARCH_REQ_XCOMP_PERM 0x1023
#define CK_XFEATURE_XTILEDATA 18

// AMX-TILE and AMX-BF16 (CPUID.7.0:EDX bits 24 and 22), the OS saving tile state (XCR0 bits 17
// and 18), the process allowed to use it (arch_prctl ARCH_REQ_XCOMP_PERM) and AVX-512F for the
// top-2 updates; KVSCOPE_NO_AMX=1 (or KVSCOPE_NO_AVX512=1) turns it off.
static int detect_amx(void) {
#if CK_X86 && defined(__linux__)
    if (!ck_uses_avx512()) return 0;
    const char *off = getenv("KVSCOPE_NO_AMX");
    if (off && *off && *off != '0') return 0;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((d >> 24) & 1) || !((d >> 22) & 1)) return 0;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    if ((xlo & 0x60000) != 0x60000) return 0;
    return syscall(SYS_arch_prctl, CK_ARCH_REQ_XCOMP_PERM, CK_XFEATURE_XTILEDATA) == 0;
#else
    return 0;
#endif
}

static int cachedAMX = -1;

int ck_uses_amx(void) {
    int v = __atomic_load_n(&cachedAMX, __ATOMIC_RELAXED);
    if (v < 0) {
        v = detect_amx();
        __atomic_store_n(&cachedAMX, v, __ATOMIC_RELAXED);
    }
    return v;
}

/// bf16 values in a' or b' (3·d, rounded up to a multiple of 32).
static long amx_width(long d) { return (3 * d + 31) / 32 * 32; }

int ck_top2_uses_amx(long e, long c) { return e >= 16 && c >= 32 && ck_uses_amx(); }

double ck_top2_error(long d) {
    if (d <= 0 || !ck_uses_amx()) return 0;
    // 3.02·2⁻¹⁸ for the split, K'·2⁻²⁴ for the f32 sum of K' products whose magnitudes add up to
    // at most 1.01 (unit rows); both with room to spare.
    return 3.1 * 0x1p-18 + 1.02 * (double)amx_width(d) * 0x1p-24;
}

#if CK_X86
static inline uint16_t ck_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float ck_from_bf16(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/// The bf16 halves of 16 floats (round to nearest even), as 32-bit lanes holding the bf16 bits
/// in their low half: `hi = bf16(x)`, `lo = bf16(x − hi)`.
__attribute__((target("avx512f"), always_inline))
static inline void bf16_split16(__m512 x, __m512i *hi, __m512i *lo) {
    const __m512i one = _mm512_set1_epi32(1), round = _mm512_set1_epi32(0x7FFF);
    const __m512i u = _mm512_castps_si512(x);
    const __m512i h = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(round, _mm512_and_si512(_mm512_srli_epi32(u, 16), one))), 16);
    const __m512 r = _mm512_sub_ps(x, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)));
    const __m512i v = _mm512_castps_si512(r);
    *hi = h;
    *lo = _mm512_srli_epi32(_mm512_add_epi32(v, _mm512_add_epi32(round, _mm512_and_si512(_mm512_srli_epi32(v, 16), one))), 16);
}

/// Row `r` (d floats) as a' = [hi, lo, hi, 0…] (`w` bf16 values).
__attribute__((target("avx512f")))
static void amx_row(const float *r, long d, long w, uint16_t *out) {
    long k = 0;
    for (; k + 16 <= d; k += 16) {
        __m512i hi, lo;
        bf16_split16(_mm512_loadu_ps(r + k), &hi, &lo);
        _mm256_storeu_si256((__m256i *)(out + k), _mm512_cvtepi32_epi16(hi));
        _mm256_storeu_si256((__m256i *)(out + d + k), _mm512_cvtepi32_epi16(lo));
        _mm256_storeu_si256((__m256i *)(out + 2 * d + k), _mm512_cvtepi32_epi16(hi));
    }
    for (; k < d; k++) {
        const uint16_t hi = ck_bf16(r[k]);
        out[k] = hi;
        out[d + k] = ck_bf16(r[k] - ck_from_bf16(hi));
        out[2 * d + k] = hi;
    }
    for (k = 3 * d; k < w; k++) out[k] = 0;
}

/// Panel `p`'s 16 columns as b' = [hi, hi, lo, 0…] in the tile layout TDPBF16PS reads: per step
/// `s` of 32 values a 16×64-byte tile whose row `r` holds, per column `j`, values `32s + 2r` and
/// `32s + 2r + 1` (`out[(s·16 + r)·32 + 2j + t]`). `col` is `packed`'s panel (`d`×16 floats,
/// dimension-major), or NULL for a padding panel of zeros.
__attribute__((target("avx512f")))
static void amx_panel(const float *col, long d, long w, uint16_t *out) {
    if (!col) { memset(out, 0, (size_t)w * 16 * 2); return; }
    // Value q of b' for the 16 columns, as 32-bit lanes holding the bf16 bits.
    __m512i hi, lo, zero = _mm512_setzero_si512();
    for (long q = 0; q < w; q += 2) {
        __m512i pair[2];
        for (int t = 0; t < 2; t++) {
            const long v = q + t;
            if (v >= 3 * d) { pair[t] = zero; continue; }
            const long k = v < d ? v : v < 2 * d ? v - d : v - 2 * d;
            bf16_split16(_mm512_loadu_ps(col + k * CK_PANEL), &hi, &lo);
            pair[t] = v < 2 * d ? hi : lo;
        }
        _mm512_storeu_si512((void *)(out + q * CK_PANEL), _mm512_or_si512(pair[0], _mm512_slli_epi32(pair[1], 16)));
    }
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} ck_tilecfg;

/// Tiles 0–3 = the 2×2 block of f32 sums of a' rows `ap` (32 rows of `w` bf16) with the two
/// panels of b' at `b0` and `b1` (`steps` steps of 32 values each).
__attribute__((target("amx-tile,amx-bf16"), always_inline))
static inline void amx_pair(const uint16_t *ap, long w, const uint16_t *b0, const uint16_t *b1, long steps) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (long s = 0; s < steps; s++) {
        _tile_loadd(4, ap + s * 32, w * 2);
        _tile_loadd(5, ap + 16 * w + s * 32, w * 2);
        _tile_loadd(6, b0 + s * 512, 64);
        _tile_loadd(7, b1 + s * 512, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
}

/// Tiles 0–3 to `sums` (four 16×16 f32 blocks: rows 0–15 × panel 0, × panel 1, rows 16–31 × …).
__attribute__((target("amx-tile"), always_inline))
static inline void amx_store(float *sums) {
    _tile_stored(0, sums, 64);
    _tile_stored(1, sums + 256, 64);
    _tile_stored(2, sums + 512, 64);
    _tile_stored(3, sums + 768, 64);
}

/// Folds one 32-row × 2-panel block of sums (`sums`: four 16×16 tiles, 2×2) into the rows' top-2.
__attribute__((target("avx512f")))
static void amx_fold(lane_top2 *st, long rows, const float *sums, long q, long c) {
    const int biased = (2 * q + 2) * CK_PANEL > c;
    __m512 bias[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    if (biased) {
        // −∞ on the columns past c (the last real panel's padding and a padding panel).
        for (int h = 0; h < 2; h++) {
            float bv[CK_PANEL];
            for (int j = 0; j < CK_PANEL; j++) bv[j] = (2 * q + h) * CK_PANEL + j < c ? 0.0f : -INFINITY;
            bias[h] = _mm512_loadu_ps(bv);
        }
    }
    for (long u = 0; u < rows; u++) {
        const float *r0 = sums + (u < 16 ? 0 : 512) + (u % 16) * 16;
        __m512 v0 = _mm512_load_ps(r0), v1 = _mm512_load_ps(r0 + 256);
        if (biased) { v0 = _mm512_add_ps(v0, bias[0]); v1 = _mm512_add_ps(v1, bias[1]); }
        top2_update512(&st[u], v0, (int32_t)(2 * q));
        top2_update512(&st[u], v1, (int32_t)(2 * q + 1));
    }
}

/// The calling thread's working area of at least `bytes` (64-byte aligned), grown on demand and
/// kept for the thread's later calls; NULL when it cannot be allocated.
static uint8_t *amx_area(size_t bytes) {
    static _Thread_local uint8_t *area;
    static _Thread_local size_t size;
    if (bytes > size) {
        const size_t grown = (bytes + 65535) / 65536 * 65536;
        uint8_t *p = (uint8_t *)aligned_alloc(64, grown);
        if (!p) return NULL;
        free(area);
        area = p;
        size = grown;
    }
    return area;
}

/// Tiles 0–3: the 2×2 block of 16×16 f32 sums; 4–5: two 16-row blocks of a'; 6–7: two 16-column
/// panels of b'. Panels are taken two at a time (b' is padded to an even count, its padding
/// columns biased to −∞), rows 32 at a time (past `e` the buffer holds zeros, and those rows are
/// not reported). The sums of one panel pair are folded into the top-2 while the tiles compute
/// the next pair's (two sum buffers), so the vector and the tile units work at the same time.
__attribute__((target("amx-tile,amx-bf16,avx512f")))
static void top2_amx(const float *a, long e, long d, const float *packed, long c,
                     float *best, float *second, int32_t *arg) {
    const long panels = (c + CK_PANEL - 1) / CK_PANEL, pairs = (panels + 1) / 2;
    const long w = amx_width(d), steps = w / 32;
    // b': per panel and step, 16 rows (value pairs) × 16 columns × 2 bf16 = 1 KiB.
    // One working area per thread, kept between calls: a fresh half-megabyte mapping per call
    // would cost page faults and, when it is unmapped, a TLB shootdown that stalls the other core.
    const size_t bBytes = (size_t)(2 * pairs * steps) * 1024, aBytes = (size_t)(32 * w) * 2, sBytes = 2 * 1024 * sizeof(float);
    uint8_t *area = amx_area(bBytes + aBytes + sBytes);
    if (!area) {
        top2_avx512(a, e, d, packed, c, best, second, arg);
        return;
    }
    uint16_t *bp = (uint16_t *)area, *ap = (uint16_t *)(area + bBytes);
    float *sums = (float *)(area + bBytes + aBytes);
    for (long p = 0; p < 2 * pairs; p++) amx_panel(p < panels ? packed + p * d * CK_PANEL : NULL, d, w, bp + p * steps * 512);
    ck_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { cfg.rows[t] = 16; cfg.colsb[t] = 64; }
    _tile_loadconfig(&cfg);
    __attribute__((aligned(64))) lane_top2 st[32];
    for (long i0 = 0; i0 < e; i0 += 32) {
        const long rows = e - i0 < 32 ? e - i0 : 32;
        for (long u = 0; u < 32; u++) {
            if (u < rows) amx_row(a + (i0 + u) * d, d, w, ap + u * w);
            else memset(ap + u * w, 0, (size_t)w * 2);
            lane_init(&st[u]);
        }
        for (long q = 0; q < pairs; q++) {
            amx_pair(ap, w, bp + (2 * q) * steps * 512, bp + (2 * q + 1) * steps * 512, steps);
            if (q > 0) amx_fold(st, rows, sums + ((q - 1) & 1) * 1024, q - 1, c);
            amx_store(sums + (q & 1) * 1024);
        }
        amx_fold(st, rows, sums + ((pairs - 1) & 1) * 1024, pairs - 1, c);
        for (long u = 0; u < rows; u++) lane_finish512(&st[u], best + i0 + u, second + i0 + u, arg + i0 + u);
    }
    _tile_release();
}
#endif

#if CK_X86
/// `ck_dot_block_tiles`'s work for rows `a` (at most 32) against the packed b' of `c` columns.
__attribute__((target("amx-tile,amx-bf16,avx512f")))
static void dot_block_amx(const float *a, long e, long d, const uint16_t *bp, long c, float *out, long ldo) {
    const long panels = (c + CK_PANEL - 1) / CK_PANEL, pairs = (panels + 1) / 2;
    const long w = amx_width(d), steps = w / 32;
    const size_t aBytes = (size_t)(32 * w) * 2, sBytes = 1024 * sizeof(float);
    uint8_t *area = amx_area(aBytes + sBytes);
    if (!area) return;
    uint16_t *ap = (uint16_t *)area;
    float *sums = (float *)(area + aBytes);
    ck_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { cfg.rows[t] = 16; cfg.colsb[t] = 64; }
    _tile_loadconfig(&cfg);
    for (long i0 = 0; i0 < e; i0 += 32) {
        const long rows = e - i0 < 32 ? e - i0 : 32;
        for (long u = 0; u < 32; u++) {
            if (u < rows) amx_row(a + (i0 + u) * d, d, w, ap + u * w);
            else memset(ap + u * w, 0, (size_t)w * 2);
        }
        for (long q = 0; q < pairs; q++) {
            amx_pair(ap, w, bp + (2 * q) * steps * 512, bp + (2 * q + 1) * steps * 512, steps);
            amx_store(sums);
            for (long u = 0; u < rows; u++) {
                const float *r0 = sums + (u < 16 ? 0 : 512) + (u % 16) * 16;
                memcpy(out + (i0 + u) * ldo + 2 * q * CK_PANEL, r0, CK_PANEL * sizeof(float));
                if (2 * q + 1 < panels) memcpy(out + (i0 + u) * ldo + (2 * q + 1) * CK_PANEL, r0 + 256, CK_PANEL * sizeof(float));
            }
        }
    }
    _tile_release();
}
#endif

size_t ck_tiles_count(long c, long d) {
    const long panels = (c + CK_PANEL - 1) / CK_PANEL, pairs = (panels + 1) / 2;
    return (size_t)(2 * pairs) * (size_t)(amx_width(d) / 32) * 512;
}

void ck_pack_tiles(const float *packed, long c, long d, uint16_t *tiles) {
#if CK_X86
    if (!ck_uses_amx()) return;
    const long panels = (c + CK_PANEL - 1) / CK_PANEL, pairs = (panels + 1) / 2, steps = amx_width(d) / 32;
    for (long p = 0; p < 2 * pairs; p++) amx_panel(p < panels ? packed + p * d * CK_PANEL : NULL, d, amx_width(d), tiles + p * steps * 512);
#else
    (void)packed; (void)c; (void)d; (void)tiles;
#endif
}

void ck_dot_block_tiles(const float *a, long e, long d, const float *packed, const uint16_t *tiles, long c, float *out, long ldo) {
    if (e <= 0 || c <= 0) return;
#if CK_X86
    if (ck_uses_amx()) { dot_block_amx(a, e, d, tiles, c, out, ldo); return; }
#endif
    (void)tiles;
    ck_dot_block(a, e, d, packed, c, out, ldo);
}

void ck_top2(const float *a, long e, long d, const float *packed, long c,
             float *best, float *second, int32_t *arg) {
    if (e <= 0) return;
    if (c <= 0) {
        for (long i = 0; i < e; i++) { best[i] = -INFINITY; second[i] = -INFINITY; arg[i] = 0; }
        return;
    }
#if CK_X86
    if (ck_top2_uses_amx(e, c)) { top2_amx(a, e, d, packed, c, best, second, arg); return; }
    if (ck_uses_avx512()) { top2_avx512(a, e, d, packed, c, best, second, arg); return; }
    if (ck_uses_avx2()) { top2_avx2(a, e, d, packed, c, best, second, arg); return; }
#endif
    top2_portable(a, e, d, packed, c, best, second, arg);
}

// MARK: Dense a·bᵀ block

static void dot_block_portable(const float *a, long e, long d, const float *packed, long c, float *out, long ldo) {
    const long panels = (c + CK_PANEL - 1) / CK_PANEL;
    for (long i = 0; i < e; i++) {
        const float *r = a + i * d;
        for (long p = 0; p < panels; p++) {
            const float *bp = packed + p * d * CK_PANEL;
            float acc[CK_PANEL];
            memset(acc, 0, sizeof acc);
            for (long k = 0; k < d; k++)
                for (int j = 0; j < CK_PANEL; j++) acc[j] += r[k] * bp[k * CK_PANEL + j];
            memcpy(out + i * ldo + p * CK_PANEL, acc, sizeof acc);
        }
    }
}

#if CK_X86
__attribute__((target("avx2,fma")))
static void dot_block_avx2(const float *a, long e, long d, const float *packed, long c, float *out, long ldo) {
    const long panels = (c + CK_PANEL - 1) / CK_PANEL;
    for (long i0 = 0; i0 < e; i0 += CK_ROWS) {
        const long rows = e - i0 < CK_ROWS ? e - i0 : CK_ROWS;
        const float *r[CK_ROWS];
        for (int u = 0; u < CK_ROWS; u++) r[u] = a + (i0 + (u < rows ? u : rows - 1)) * d;
        for (long p = 0; p < panels; p++) {
            const float *bp = packed + p * d * CK_PANEL;
            __m256 acc[CK_ROWS][2];
            for (int u = 0; u < CK_ROWS; u++) { acc[u][0] = _mm256_setzero_ps(); acc[u][1] = acc[u][0]; }
            for (long k = 0; k < d; k++) {
                const __m256 x0 = _mm256_loadu_ps(bp + k * CK_PANEL), x1 = _mm256_loadu_ps(bp + k * CK_PANEL + 8);
                for (int u = 0; u < CK_ROWS; u++) {
                    const __m256 t = _mm256_broadcast_ss(r[u] + k);
                    acc[u][0] = _mm256_fmadd_ps(t, x0, acc[u][0]);
                    acc[u][1] = _mm256_fmadd_ps(t, x1, acc[u][1]);
                }
            }
            for (long u = 0; u < rows; u++) {
                _mm256_storeu_ps(out + (i0 + u) * ldo + p * CK_PANEL, acc[u][0]);
                _mm256_storeu_ps(out + (i0 + u) * ldo + p * CK_PANEL + 8, acc[u][1]);
            }
        }
    }
}
#endif

#if CK_X86
// The AVX-512 form of `dot_block_avx2`: 12 rows × 2 panels (24 accumulators) as in `top2_avx512`;
// each value the same chain of fused multiply-adds over `k` in order, so the block is
// bit-identical to the AVX2 form's.
__attribute__((target("avx512f")))
static void dot_block_avx512(const float *a, long e, long d, const float *packed, long c, float *out, long ldo) {
    const long panels = (c + CK_PANEL - 1) / CK_PANEL;
    for (long i0 = 0; i0 < e; i0 += CK_ROWS512T) {
        const long rows = e - i0 < CK_ROWS512T ? e - i0 : CK_ROWS512T;
        const float *r[CK_ROWS512T];
        for (int u = 0; u < CK_ROWS512T; u++) r[u] = a + (i0 + (u < rows ? u : rows - 1)) * d;
        long p = 0;
        for (; p + 2 <= panels; p += 2) {
            const float *bp = packed + p * d * CK_PANEL;
            __m512 c0[CK_ROWS512T], c1[CK_ROWS512T];
#pragma clang loop unroll(full)
            for (int u = 0; u < CK_ROWS512T; u++) { c0[u] = _mm512_setzero_ps(); c1[u] = c0[u]; }
            for (long k = 0; k < d; k++) {
                const __m512 x0 = _mm512_loadu_ps(bp + k * CK_PANEL), x1 = _mm512_loadu_ps(bp + (d + k) * CK_PANEL);
#pragma clang loop unroll(full)
                for (int u = 0; u < CK_ROWS512T; u++) {
                    const __m512 t = _mm512_set1_ps(r[u][k]);
                    c0[u] = _mm512_fmadd_ps(t, x0, c0[u]);
                    c1[u] = _mm512_fmadd_ps(t, x1, c1[u]);
                }
            }
            for (long u = 0; u < rows; u++) {
                _mm512_storeu_ps(out + (i0 + u) * ldo + p * CK_PANEL, c0[u]);
                _mm512_storeu_ps(out + (i0 + u) * ldo + (p + 1) * CK_PANEL, c1[u]);
            }
        }
        if (p < panels) {
            const float *bp = packed + p * d * CK_PANEL;
            __m512 c0[CK_ROWS512T];
#pragma clang loop unroll(full)
            for (int u = 0; u < CK_ROWS512T; u++) c0[u] = _mm512_setzero_ps();
            for (long k = 0; k < d; k++) {
                const __m512 x0 = _mm512_loadu_ps(bp + k * CK_PANEL);
#pragma clang loop unroll(full)
                for (int u = 0; u < CK_ROWS512T; u++) c0[u] = _mm512_fmadd_ps(_mm512_set1_ps(r[u][k]), x0, c0[u]);
            }
            for (long u = 0; u < rows; u++) _mm512_storeu_ps(out + (i0 + u) * ldo + p * CK_PANEL, c0[u]);
        }
    }
}
#endif

void ck_dot_block(const float *a, long e, long d, const float *packed, long c, float *out, long ldo) {
    if (e <= 0 || c <= 0) return;
#if CK_X86
    if (ck_uses_avx512()) { dot_block_avx512(a, e, d, packed, c, out, ldo); return; }
    if (ck_uses_avx2()) { dot_block_avx2(a, e, d, packed, c, out, ldo); return; }
#endif
    dot_block_portable(a, e, d, packed, c, out, ldo);
}

#if CK_X86
__attribute__((target("avx2,fma")))
static float group_max_avx2(const float *x, long n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    long i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    float r = _mm_cvtss_f32(h);
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}
#endif

void ck_group_max(const float *row, long n, long w, float *out) {
    for (long b = 0; b * w < n; b++) {
        const long end = (b + 1) * w < n ? (b + 1) * w : n;
        float m = -INFINITY;
        long i = b * w;
#if CK_X86
        if (ck_uses_avx2() && end - i >= 8) {
            m = group_max_avx2(row + i, end - i);
            i = end;
        }
#endif
        for (; i < end; i++) m = row[i] > m ? row[i] : m;
        out[b] = m;
    }
}

// MARK: One row against many

#if CK_X86
__attribute__((target("avx2,fma")))
static void dots_avx2(const float *a, const float *b, long c, long d, float *out) {
    for (long k = 0; k < c; k++) {
        const float *bk = b + k * d;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0;
        long i = 0;
        for (; i + 16 <= d; i += 16) {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(bk + i), s0);
            s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(bk + i + 8), s1);
        }
        s0 = _mm256_add_ps(s0, s1);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
        float s = _mm_cvtss_f32(h);
        for (; i < d; i++) s += a[i] * bk[i];
        out[k] = s;
    }
}
#endif

void ck_dots(const float *a, const float *b, long c, long d, float *out) {
#if CK_X86
    if (ck_uses_avx2()) { dots_avx2(a, b, c, d, out); return; }
#endif
    for (long k = 0; k < c; k++) {
        const float *bk = b + k * d;
        float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        long i = 0;
        for (; i + 8 <= d; i += 8)
            for (int j = 0; j < 8; j++) s[j] += a[i + j] * bk[i + j];
        float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        for (; i < d; i++) t += a[i] * bk[i];
        out[k] = t;
    }
}

// MARK: Conversions

static inline float half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t ex = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t bits;
    if (ex == 0) {
        const float v = (float)man * 0x1p-24f; // zero or subnormal: exact
        memcpy(&bits, &v, 4);
        bits |= sign;
    } else if (ex == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((ex + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float half_at(const void *src, long i) {
    uint16_t h;
    memcpy(&h, (const char *)src + 2 * i, 2);
    return half_to_float(h);
}

static inline float float_at(const void *src, long i) {
    float f;
    memcpy(&f, (const char *)src + 4 * i, 4);
    return f;
}

#if CK_X86
__attribute__((target("avx2,f16c")))
static void f16_to_f64_x86(const void *src, long n, double *dst) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 f = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const char *)src + 2 * i)));
        _mm256_storeu_pd(dst + i, _mm256_cvtps_pd(_mm256_castps256_ps128(f)));
        _mm256_storeu_pd(dst + i + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)));
    }
    for (; i < n; i++) dst[i] = (double)half_at(src, i);
}

__attribute__((target("avx2,f16c")))
static void f16_to_f32_x86(const void *src, long n, float *dst) {
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const char *)src + 2 * i))));
    for (; i < n; i++) dst[i] = half_at(src, i);
}

__attribute__((target("avx2")))
static void f32_to_f64_x86(const void *src, long n, double *dst) {
    long i = 0;
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(dst + i, _mm256_cvtps_pd(_mm_loadu_ps((const float *)((const char *)src + 4 * i))));
    for (; i < n; i++) dst[i] = (double)float_at(src, i);
}
#endif

void ck_f16_to_f64(const void *src, long n, double *dst) {
#if CK_X86
    if (ck_uses_avx2()) { f16_to_f64_x86(src, n, dst); return; }
#endif
    for (long i = 0; i < n; i++) dst[i] = (double)half_at(src, i);
}

void ck_f16_to_f32(const void *src, long n, float *dst) {
#if CK_X86
    if (ck_uses_avx2()) { f16_to_f32_x86(src, n, dst); return; }
#endif
    for (long i = 0; i < n; i++) dst[i] = half_at(src, i);
}

void ck_f32_to_f64(const void *src, long n, double *dst) {
#if CK_X86
    if (ck_uses_avx2()) { f32_to_f64_x86(src, n, dst); return; }
#endif
    for (long i = 0; i < n; i++) dst[i] = (double)float_at(src, i);
}

// MARK: Column sums of float rows

static void colsum_portable(const void *src, long rows, long ld, long n, double *acc) {
    for (long i = 0; i < rows; i++)
        for (long j = 0; j < n; j++) acc[j] += (double)float_at(src, i * ld + j);
}

#if CK_X86
// Four rows per sweep over `acc`: acc[j] is loaded once, the four additions are made in row order
// (each rounded, no reassociation), and stored once, so `acc` traffic is a quarter of one row at a time.
__attribute__((target("avx2")))
static void colsum_f32_x86(const void *src, long rows, long ld, long n, double *acc) {
    const char *s = (const char *)src;
    long i = 0;
    for (; i + 4 <= rows; i += 4) {
        const char *r0 = s + 4 * (i * ld), *r1 = r0 + 4 * ld, *r2 = r1 + 4 * ld, *r3 = r2 + 4 * ld;
        long j = 0;
        for (; j + 4 <= n; j += 4) {
            __m256d a = _mm256_loadu_pd(acc + j);
            a = _mm256_add_pd(a, _mm256_cvtps_pd(_mm_loadu_ps((const float *)(r0 + 4 * j))));
            a = _mm256_add_pd(a, _mm256_cvtps_pd(_mm_loadu_ps((const float *)(r1 + 4 * j))));
            a = _mm256_add_pd(a, _mm256_cvtps_pd(_mm_loadu_ps((const float *)(r2 + 4 * j))));
            a = _mm256_add_pd(a, _mm256_cvtps_pd(_mm_loadu_ps((const float *)(r3 + 4 * j))));
            _mm256_storeu_pd(acc + j, a);
        }
        for (; j < n; j++) {
            double a = acc[j];
            a += (double)float_at(r0, j);
            a += (double)float_at(r1, j);
            a += (double)float_at(r2, j);
            a += (double)float_at(r3, j);
            acc[j] = a;
        }
    }
    if (i < rows) colsum_portable(s + 4 * (i * ld), rows - i, ld, n, acc);
}
#endif

void ck_colsum_f32(const void *src, long rows, long ld, long n, double *acc) {
#if CK_X86
    if (ck_uses_avx2()) { colsum_f32_x86(src, rows, ld, n, acc); return; }
#endif
    colsum_portable(src, rows, ld, n, acc);
}

#pragma STDC FP_CONTRACT OFF

// MARK: Weighted row sums (no FMA: results must match Swift's separate multiply and add)


static inline double elem_at(const void *v, int vtype, long i) {
    switch (vtype) {
    case CK_F32: return (double)float_at(v, i);
    case CK_F16: return (double)half_at(v, i);
    default: { double x; memcpy(&x, (const char *)v + 8 * i, 8); return x; }
    }
}

static void accum_portable(long r, long d, const double *w, long ldw, const long *pos, long n,
                           const void *v, int vtype, double *acc, int subtract) {
    for (long i = 0; i < r; i++) {
        double *y = acc + i * d;
        for (long k = 0; k < n; k++) {
            const long p = pos[k];
            const double a = w[i * ldw + p];
            for (long e = 0; e < d; e++) {
                const double x = elem_at(v, vtype, p * d + e);
                y[e] = subtract ? fma(-a, x, y[e]) : fma(a, x, y[e]);
            }
        }
    }
}

#if CK_X86
// Eight elements of row `p` from column `e`, as two vectors of doubles.
__attribute__((target("avx2,f16c")))
static inline void load8(const void *v, int vtype, long at, __m256d *lo, __m256d *hi) {
    if (vtype == CK_F16) {
        const __m256 f = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const char *)v + 2 * at)));
        *lo = _mm256_cvtps_pd(_mm256_castps256_ps128(f));
        *hi = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
    } else if (vtype == CK_F32) {
        const float *f = (const float *)v + at;
        *lo = _mm256_cvtps_pd(_mm_loadu_ps(f));
        *hi = _mm256_cvtps_pd(_mm_loadu_ps(f + 4));
    } else {
        const double *x = (const double *)v + at;
        *lo = _mm256_loadu_pd(x);
        *hi = _mm256_loadu_pd(x + 4);
    }
}

#define CK_ROWS4 4
__attribute__((target("avx2,fma,f16c")))
static void accum_avx2_t(long r, long d, const double *w, long ldw, const long *pos, long n,
                         const void *v, int vtype, double *acc, int subtract) {
    long i0 = 0;
    for (; i0 + CK_ROWS4 <= r; i0 += CK_ROWS4) {
        for (long e = 0; e < d; e += 8) {
            __m256d a0l = _mm256_loadu_pd(acc + (i0 + 0) * d + e), a0h = _mm256_loadu_pd(acc + (i0 + 0) * d + e + 4);
            __m256d a1l = _mm256_loadu_pd(acc + (i0 + 1) * d + e), a1h = _mm256_loadu_pd(acc + (i0 + 1) * d + e + 4);
            __m256d a2l = _mm256_loadu_pd(acc + (i0 + 2) * d + e), a2h = _mm256_loadu_pd(acc + (i0 + 2) * d + e + 4);
            __m256d a3l = _mm256_loadu_pd(acc + (i0 + 3) * d + e), a3h = _mm256_loadu_pd(acc + (i0 + 3) * d + e + 4);
            const double *w0 = w + (i0 + 0) * ldw, *w1 = w + (i0 + 1) * ldw, *w2 = w + (i0 + 2) * ldw, *w3 = w + (i0 + 3) * ldw;
            // One pass of the four rows over the listed positions, acc ±= w[row][p]·v[p] (one fused
            // multiply-add), written once: OP is CK_FNMADD4 or _mm256_fmadd_pd, chosen outside the loop.
#define CK_ACCUM4(OP)                                                                      \
            for (long k = 0; k < n; k++) {                                                 \
                const long p = pos[k];                                                     \
                __m256d xl, xh;                                                            \
                load8(v, vtype, p * d + e, &xl, &xh);                                      \
                __m256d b = _mm256_set1_pd(w0[p]);                                         \
                a0l = OP(b, xl, a0l); a0h = OP(b, xh, a0h);                                \
                b = _mm256_set1_pd(w1[p]);                                                 \
                a1l = OP(b, xl, a1l); a1h = OP(b, xh, a1h);                                \
                b = _mm256_set1_pd(w2[p]);                                                 \
                a2l = OP(b, xl, a2l); a2h = OP(b, xh, a2h);                                \
                b = _mm256_set1_pd(w3[p]);                                                 \
                a3l = OP(b, xl, a3l); a3h = OP(b, xh, a3h);                                \
            }
            if (subtract) {
                CK_ACCUM4(_mm256_fnmadd_pd)
            } else {
                CK_ACCUM4(_mm256_fmadd_pd)
            }
#undef CK_ACCUM4
            _mm256_storeu_pd(acc + (i0 + 0) * d + e, a0l); _mm256_storeu_pd(acc + (i0 + 0) * d + e + 4, a0h);
            _mm256_storeu_pd(acc + (i0 + 1) * d + e, a1l); _mm256_storeu_pd(acc + (i0 + 1) * d + e + 4, a1h);
            _mm256_storeu_pd(acc + (i0 + 2) * d + e, a2l); _mm256_storeu_pd(acc + (i0 + 2) * d + e + 4, a2h);
            _mm256_storeu_pd(acc + (i0 + 3) * d + e, a3l); _mm256_storeu_pd(acc + (i0 + 3) * d + e + 4, a3h);
        }
    }
    for (; i0 < r; i0++) {
        const double *wi = w + i0 * ldw;
        for (long e = 0; e < d; e += 8) {
            __m256d al = _mm256_loadu_pd(acc + i0 * d + e), ah = _mm256_loadu_pd(acc + i0 * d + e + 4);
            for (long k = 0; k < n; k++) {
                const long p = pos[k];
                __m256d xl, xh;
                load8(v, vtype, p * d + e, &xl, &xh);
                const __m256d b = _mm256_set1_pd(wi[p]);
                if (subtract) { al = _mm256_fnmadd_pd(b, xl, al); ah = _mm256_fnmadd_pd(b, xh, ah); }
                else { al = _mm256_fmadd_pd(b, xl, al); ah = _mm256_fmadd_pd(b, xh, ah); }
            }
            _mm256_storeu_pd(acc + i0 * d + e, al); _mm256_storeu_pd(acc + i0 * d + e + 4, ah);
        }
    }
}
#endif

#if CK_X86
// Bytes per element of `vtype`.
static inline long vtype_width(int vtype) { return vtype == CK_F16 ? 2 : vtype == CK_F32 ? 4 : 8; }

// Asks for the `bytes` of one row at `row` into the cache.
static inline void prefetch_row(const void *row, long bytes) {
    for (long o = 0; o < bytes; o += 64) _mm_prefetch((const char *)row + o, _MM_HINT_T0);
}

// Sixteen elements of row `p` from column `e`, as two vectors of eight doubles (exact).
__attribute__((target("avx512f"), always_inline))
static inline void load16(const void *v, int vtype, long at, __m512d *lo, __m512d *hi) {
    if (vtype == CK_F16) {
        const __m512 f = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const char *)v + 2 * at)));
        *lo = _mm512_cvtps_pd(_mm512_castps512_ps256(f));
        *hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1)));
    } else if (vtype == CK_F32) {
        const float *f = (const float *)v + at;
        *lo = _mm512_cvtps_pd(_mm256_loadu_ps(f));
        *hi = _mm512_cvtps_pd(_mm256_loadu_ps(f + 8));
    } else {
        const double *x = (const double *)v + at;
        *lo = _mm512_loadu_pd(x);
        *hi = _mm512_loadu_pd(x + 8);
    }
}

// The AVX-512 form of `accum_avx2_t`: blocks of 8 rows × 16 columns (16 accumulators), each
// element the fused multiply-add (or its negated form) of the scalar loop, in the order of `pos`.
// `sub` is a constant at each call, so each loop is specialised.
#define CK_ROWS512 8
#define CK_AHEAD512 12
__attribute__((target("avx512f"), always_inline))
static inline __m512d step512(__m512d y, __m512d b, __m512d x, const int sub) {
    return sub ? _mm512_fnmadd_pd(b, x, y) : _mm512_fmadd_pd(b, x, y);
}

__attribute__((target("avx512f"), always_inline))
static inline void accum_avx512_t(long r, long d, const double *w, long ldw, const long *pos, long n,
                                  const void *v, int vtype, double *acc, const int sub) {
    long i0 = 0;
    for (; i0 + CK_ROWS512 <= r; i0 += CK_ROWS512) {
        for (long e = 0; e < d; e += 16) {
            __m512d lo[CK_ROWS512], hi[CK_ROWS512];
            for (int t = 0; t < CK_ROWS512; t++) {
                lo[t] = _mm512_loadu_pd(acc + (i0 + t) * d + e);
                hi[t] = _mm512_loadu_pd(acc + (i0 + t) * d + e + 8);
            }
            const double *wr = w + i0 * ldw;
            const long width = vtype_width(vtype);
            for (long k = 0; k < n; k++) {
                const long p = pos[k];
                // The listed rows are scattered: fetch the one CK_AHEAD512 positions on.
                if (k + CK_AHEAD512 < n) _mm_prefetch((const char *)v + width * (pos[k + CK_AHEAD512] * d + e), _MM_HINT_T0);
                __m512d xl, xh;
                load16(v, vtype, p * d + e, &xl, &xh);
                for (int t = 0; t < CK_ROWS512; t++) {
                    const __m512d b = _mm512_set1_pd(wr[t * ldw + p]);
                    lo[t] = step512(lo[t], b, xl, sub);
                    hi[t] = step512(hi[t], b, xh, sub);
                }
            }
            for (int t = 0; t < CK_ROWS512; t++) {
                _mm512_storeu_pd(acc + (i0 + t) * d + e, lo[t]);
                _mm512_storeu_pd(acc + (i0 + t) * d + e + 8, hi[t]);
            }
        }
    }
    for (; i0 < r; i0++) {
        const double *wi = w + i0 * ldw;
        for (long e = 0; e < d; e += 16) {
            __m512d al = _mm512_loadu_pd(acc + i0 * d + e), ah = _mm512_loadu_pd(acc + i0 * d + e + 8);
            for (long k = 0; k < n; k++) {
                const long p = pos[k];
                __m512d xl, xh;
                load16(v, vtype, p * d + e, &xl, &xh);
                const __m512d b = _mm512_set1_pd(wi[p]);
                al = step512(al, b, xl, sub);
                ah = step512(ah, b, xh, sub);
            }
            _mm512_storeu_pd(acc + i0 * d + e, al);
            _mm512_storeu_pd(acc + i0 * d + e + 8, ah);
        }
    }
}

__attribute__((target("avx512f")))
static void accum_avx512(long r, long d, const double *w, long ldw, const long *pos, long n,
                         const void *v, int vtype, double *acc, int subtract) {
    if (subtract) accum_avx512_t(r, d, w, ldw, pos, n, v, vtype, acc, 1);
    else accum_avx512_t(r, d, w, ldw, pos, n, v, vtype, acc, 0);
}
#endif

void ck_accum_rows(long r, long d, const double *w, long ldw, const long *pos, long n,
                   const void *v, int vtype, double *acc, int subtract) {
#if CK_X86
    if (d % 16 == 0 && ck_uses_avx512()) { accum_avx512(r, d, w, ldw, pos, n, v, vtype, acc, subtract); return; }
    if (d % 8 == 0 && ck_uses_avx2()) { accum_avx2_t(r, d, w, ldw, pos, n, v, vtype, acc, subtract); return; }
#endif
    accum_portable(r, d, w, ldw, pos, n, v, vtype, acc, subtract);
}

void ck_accum_rows_portable(long r, long d, const double *w, long ldw, const long *pos, long n,
                            const void *v, int vtype, double *acc, int subtract) {
    accum_portable(r, d, w, ldw, pos, n, v, vtype, acc, subtract);
}

// MARK: Gathered row sums (no FMA, each row's sum in the order of `pos`)

void ck_gather_sum(long r, const double *w, long ldw, const long *pos, long n, double *sums, int subtract) {
    long i0 = 0;
    // Eight rows at a time: eight independent chains, each the scalar loop of its row.
    for (; i0 + 8 <= r; i0 += 8) {
        const double *w0 = w + i0 * ldw;
        double s0 = sums[i0], s1 = sums[i0 + 1], s2 = sums[i0 + 2], s3 = sums[i0 + 3];
        double s4 = sums[i0 + 4], s5 = sums[i0 + 5], s6 = sums[i0 + 6], s7 = sums[i0 + 7];
        if (subtract) {
            for (long k = 0; k < n; k++) {
                const double *c = w0 + pos[k];
                s0 -= c[0]; s1 -= c[ldw]; s2 -= c[2 * ldw]; s3 -= c[3 * ldw];
                s4 -= c[4 * ldw]; s5 -= c[5 * ldw]; s6 -= c[6 * ldw]; s7 -= c[7 * ldw];
            }
        } else {
            for (long k = 0; k < n; k++) {
                const double *c = w0 + pos[k];
                s0 += c[0]; s1 += c[ldw]; s2 += c[2 * ldw]; s3 += c[3 * ldw];
                s4 += c[4 * ldw]; s5 += c[5 * ldw]; s6 += c[6 * ldw]; s7 += c[7 * ldw];
            }
        }
        sums[i0] = s0; sums[i0 + 1] = s1; sums[i0 + 2] = s2; sums[i0 + 3] = s3;
        sums[i0 + 4] = s4; sums[i0 + 5] = s5; sums[i0 + 6] = s6; sums[i0 + 7] = s7;
    }
    for (; i0 < r; i0++) {
        const double *wi = w + i0 * ldw;
        double s = sums[i0];
        if (subtract) { for (long k = 0; k < n; k++) s -= wi[pos[k]]; }
        else { for (long k = 0; k < n; k++) s += wi[pos[k]]; }
        sums[i0] = s;
    }
}

// MARK: Dot products in the order of KVScope's `dot` (no FMA)

// Eight lanes: lane l sums a[8t + l]·b[8t + l] over t (product rounded, then the sum), the lanes
// are then added in order 0 … 7, then the d mod 8 remaining terms one by one.
static inline double dot_portable(const double *a, const double *b, long d) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long i = 0;
    for (; i + 8 <= d; i += 8)
        for (int l = 0; l < 8; l++) acc[l] = acc[l] + a[i + l] * b[i + l];
    double s = acc[0];
    for (int l = 1; l < 8; l++) s = s + acc[l];
    for (; i < d; i++) s = s + a[i] * b[i];
    return s;
}

// Four dots at a time: `lanes4` leaves the eight lane sums of a_i · b_j for four rows j, and the
// driver ends each dot in `dot`'s order (lanes 0 … 7, then the d mod 8 remaining terms).
typedef void (*ck_lanes4)(const double *ai, const double *const bj[4], long d8, double lanes[4][8]);

static void dot_rows_by(ck_lanes4 lanes4, long r, long c, long d, const double *a, long lda, const double *b, long ldb,
                        double *out, long ldo) {
    const long d8 = d - d % 8;
    for (long i = 0; i < r; i++) {
        const double *ai = a + i * lda;
        long j = 0;
        for (; j + 4 <= c; j += 4) {
            const double *const bj[4] = {b + j * ldb, b + (j + 1) * ldb, b + (j + 2) * ldb, b + (j + 3) * ldb};
            double lanes[4][8];
            lanes4(ai, bj, d8, lanes);
            for (int q = 0; q < 4; q++) {
                double s = lanes[q][0];
                for (int k = 1; k < 8; k++) s = s + lanes[q][k];
                for (long t = d8; t < d; t++) s = s + ai[t] * bj[q][t];
                out[i * ldo + j + q] = s;
            }
        }
        for (; j < c; j++) out[i * ldo + j] = dot_portable(ai, b + j * ldb, d);
    }
}

#if CK_X86
__attribute__((target("avx512f")))
static void lanes4_avx512(const double *ai, const double *const bj[4], long d8, double lanes[4][8]) {
    __m512d s[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()};
    for (long t = 0; t < d8; t += 8) {
        const __m512d x = _mm512_loadu_pd(ai + t);
        for (int q = 0; q < 4; q++) s[q] = _mm512_add_pd(s[q], _mm512_mul_pd(x, _mm512_loadu_pd(bj[q] + t)));
    }
    for (int q = 0; q < 4; q++) _mm512_storeu_pd(lanes[q], s[q]);
}

// Lanes 0 … 3 and 4 … 7 in two registers; each product and sum rounded separately (no FMA).
__attribute__((target("avx2")))
static void lanes4_avx2(const double *ai, const double *const bj[4], long d8, double lanes[4][8]) {
    __m256d lo[4], hi[4];
    for (int q = 0; q < 4; q++) { lo[q] = _mm256_setzero_pd(); hi[q] = lo[q]; }
    for (long t = 0; t < d8; t += 8) {
        const __m256d xl = _mm256_loadu_pd(ai + t), xh = _mm256_loadu_pd(ai + t + 4);
        for (int q = 0; q < 4; q++) {
            lo[q] = _mm256_add_pd(lo[q], _mm256_mul_pd(xl, _mm256_loadu_pd(bj[q] + t)));
            hi[q] = _mm256_add_pd(hi[q], _mm256_mul_pd(xh, _mm256_loadu_pd(bj[q] + t + 4)));
        }
    }
    for (int q = 0; q < 4; q++) { _mm256_storeu_pd(lanes[q], lo[q]); _mm256_storeu_pd(lanes[q] + 4, hi[q]); }
}
#endif

void ck_dot_rows(long r, long c, long d, const double *a, long lda, const double *b, long ldb, double *out, long ldo) {
#if CK_X86
    if (ck_uses_avx512()) { dot_rows_by(lanes4_avx512, r, c, d, a, lda, b, ldb, out, ldo); return; }
    if (ck_uses_avx2()) { dot_rows_by(lanes4_avx2, r, c, d, a, lda, b, ldb, out, ldo); return; }
#endif
    for (long i = 0; i < r; i++)
        for (long j = 0; j < c; j++) out[i * ldo + j] = dot_portable(a + i * lda, b + j * ldb, d);
}

void ck_dot_rows_portable(long r, long c, long d, const double *a, long lda, const double *b, long ldb, double *out, long ldo) {
    for (long i = 0; i < r; i++)
        for (long j = 0; j < c; j++) out[i * ldo + j] = dot_portable(a + i * lda, b + j * ldb, d);
}

// MARK: Merged rows (the merge formula of DecisionApplier, read in place)

static void merge_rows_portable(long d, long n, const long *src, const long *row, const double *a, const double *b,
                                const void *x, int vtype, long nr, const long *pivot, const long *count, double *out) {
    for (long i = 0; i < nr * d; i++) out[i] = 0;
    for (long k = 0; k < n; k++) {
        double *y = out + row[k] * d;
        const long s = src[k] * d, p = pivot[row[k]] * d;
        for (long e = 0; e < d; e++) {
            const double t = a[k] * elem_at(x, vtype, s + e), u = b[k] * elem_at(x, vtype, p + e);
            y[e] = y[e] + (t + u);
        }
    }
    for (long r = 0; r < nr; r++) {
        const double div = (double)(1 + count[r]);
        for (long e = 0; e < d; e++) out[r * d + e] = (elem_at(x, vtype, pivot[r] * d + e) + out[r * d + e]) / div;
    }
}

#if CK_X86
__attribute__((target("avx2,f16c")))
static void merge_rows_avx2(long d, long n, const long *src, const long *row, const double *a, const double *b,
                            const void *x, int vtype, long nr, const long *pivot, const long *count, double *out) {
    memset(out, 0, sizeof(double) * (size_t)(nr * d));
    for (long k = 0; k < n; k++) {
        double *y = out + row[k] * d;
        const long s = src[k] * d, p = pivot[row[k]] * d;
        const __m256d av = _mm256_set1_pd(a[k]), bv = _mm256_set1_pd(b[k]);
        for (long e = 0; e < d; e += 8) {
            __m256d xl, xh, pl, ph;
            load8(x, vtype, s + e, &xl, &xh);
            load8(x, vtype, p + e, &pl, &ph);
            const __m256d tl = _mm256_add_pd(_mm256_mul_pd(av, xl), _mm256_mul_pd(bv, pl));
            const __m256d th = _mm256_add_pd(_mm256_mul_pd(av, xh), _mm256_mul_pd(bv, ph));
            _mm256_storeu_pd(y + e, _mm256_add_pd(_mm256_loadu_pd(y + e), tl));
            _mm256_storeu_pd(y + e + 4, _mm256_add_pd(_mm256_loadu_pd(y + e + 4), th));
        }
    }
    for (long r = 0; r < nr; r++) {
        const __m256d div = _mm256_set1_pd((double)(1 + count[r]));
        double *y = out + r * d;
        for (long e = 0; e < d; e += 8) {
            __m256d pl, ph;
            load8(x, vtype, pivot[r] * d + e, &pl, &ph);
            _mm256_storeu_pd(y + e, _mm256_div_pd(_mm256_add_pd(pl, _mm256_loadu_pd(y + e)), div));
            _mm256_storeu_pd(y + e + 4, _mm256_div_pd(_mm256_add_pd(ph, _mm256_loadu_pd(y + e + 4)), div));
        }
    }
}
#endif

#if CK_X86
// Grouped AVX-512 form: contributions ordered by row (`start[r] ..< start[r + 1]`, each row's in
// their original order), so a row's sum and its pivot stay in registers, 64 columns at a time,
// instead of a load and store of the sum and a reload of the pivot at every contribution. The
// same products, sums and additions, in the same order, as `merge_rows_portable`.
__attribute__((target("avx512f"), always_inline))
static inline void merge_block512(long d, long e, const int nb, const long *src, const double *a, const double *b,
                                  const void *x, const int vtype, long k0, long k1, long p, __m512d div, double *y) {
    __m512d pv[8], acc[8];
    for (int t = 0; t < nb; t++) load16(x, vtype, p + e + 16 * t, &pv[2 * t], &pv[2 * t + 1]);
    for (int t = 0; t < 2 * nb; t++) acc[t] = _mm512_setzero_pd();
    for (long k = k0; k < k1; k++) {
        const __m512d av = _mm512_set1_pd(a[k]), bv = _mm512_set1_pd(b[k]);
        const long s = src[k] * d + e;
        for (int t = 0; t < nb; t++) {
            __m512d xl, xh;
            load16(x, vtype, s + 16 * t, &xl, &xh);
            acc[2 * t] = _mm512_add_pd(acc[2 * t], _mm512_add_pd(_mm512_mul_pd(av, xl), _mm512_mul_pd(bv, pv[2 * t])));
            acc[2 * t + 1] = _mm512_add_pd(acc[2 * t + 1], _mm512_add_pd(_mm512_mul_pd(av, xh), _mm512_mul_pd(bv, pv[2 * t + 1])));
        }
    }
    for (int t = 0; t < 2 * nb; t++) _mm512_storeu_pd(y + e + 8 * t, _mm512_div_pd(_mm512_add_pd(pv[t], acc[t]), div));
}

__attribute__((target("avx512f"), always_inline))
static inline void merge_grouped512_t(long d, const long *src, const double *a, const double *b, const void *x,
                                      const int vtype, long nr, const long *start, const long *pivot, const long *count,
                                      double *out) {
    const long rowBytes = vtype_width(vtype) * d;
    for (long r = 0; r < nr; r++) {
        const __m512d div = _mm512_set1_pd((double)(1 + count[r]));
        // The next row's pivot and sources are scattered rows: fetch them while this row is summed.
        if (r + 1 < nr) {
            prefetch_row((const char *)x + rowBytes * pivot[r + 1], rowBytes);
            for (long k = start[r + 1]; k < start[r + 2]; k++) prefetch_row((const char *)x + rowBytes * src[k], rowBytes);
        }
        long e = 0;
        for (; e + 64 <= d; e += 64) merge_block512(d, e, 4, src, a, b, x, vtype, start[r], start[r + 1], pivot[r] * d, div, out + r * d);
        for (; e < d; e += 16) merge_block512(d, e, 1, src, a, b, x, vtype, start[r], start[r + 1], pivot[r] * d, div, out + r * d);
    }
}

__attribute__((target("avx512f")))
static void merge_grouped512(long d, const long *src, const double *a, const double *b, const void *x, int vtype,
                             long nr, const long *start, const long *pivot, const long *count, double *out) {
    switch (vtype) {
    case CK_F16: merge_grouped512_t(d, src, a, b, x, CK_F16, nr, start, pivot, count, out); break;
    case CK_F32: merge_grouped512_t(d, src, a, b, x, CK_F32, nr, start, pivot, count, out); break;
    default: merge_grouped512_t(d, src, a, b, x, CK_F64, nr, start, pivot, count, out); break;
    }
}
#endif

void ck_merge_rows_grouped(long d, long n, const long *src, const long *row, const double *a, const double *b,
                           const void *x, int vtype, long nr, const long *start, const long *pivot, const long *count,
                           double *out) {
#if CK_X86
    if (d % 16 == 0 && ck_uses_avx512()) { merge_grouped512(d, src, a, b, x, vtype, nr, start, pivot, count, out); return; }
#endif
    ck_merge_rows(d, n, src, row, a, b, x, vtype, nr, pivot, count, out);
}

void ck_merge_rows(long d, long n, const long *src, const long *row, const double *a, const double *b,
                   const void *x, int vtype, long nr, const long *pivot, const long *count, double *out) {
#if CK_X86
    if (d % 8 == 0 && ck_uses_avx2()) { merge_rows_avx2(d, n, src, row, a, b, x, vtype, nr, pivot, count, out); return; }
#endif
    merge_rows_portable(d, n, src, row, a, b, x, vtype, nr, pivot, count, out);
}

void ck_merge_rows_portable(long d, long n, const long *src, const long *row, const double *a, const double *b,
                            const void *x, int vtype, long nr, const long *pivot, const long *count, double *out) {
    merge_rows_portable(d, n, src, row, a, b, x, vtype, nr, pivot, count, out);
}
