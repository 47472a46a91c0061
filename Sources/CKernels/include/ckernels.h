// CKernels: the few numeric inner loops of KVPolicies that Swift cannot vectorise well at the
// baseline x86-64 target (SSE2, no FMA). Each has an AVX2+FMA (or F16C) version chosen at run
// time and a portable version; results that decide anything are re-checked in Double by the
// Swift callers, so the choice never changes a decision.
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Columns per packed panel of `ck_pack_panels`.
#define CK_PANEL 16

/// 1 when the AVX2+FMA kernels are used on this machine.
int ck_uses_avx2(void);
/// 1 when the AVX-512F form of `ck_accum_rows` is used (off with KVSCOPE_NO_AVX512=1).
int ck_uses_avx512(void);

/// 1 when `ck_top2` uses the AMX tile instructions (bf16 products, f32 sums; Linux on CPUs with
/// AMX-BF16; off with KVSCOPE_NO_AMX=1 or KVSCOPE_NO_AVX512=1).
int ck_uses_amx(void);
/// The largest difference between a `best` or `second` of `ck_top2` and the exact dot product
/// it stands for, for rows of norm at most 1: 0 for the f32 forms, and with AMX
/// `3.1·2⁻¹⁸ + 1.02·K'·2⁻²⁴` with `K' = 3·d` rounded up to a multiple of 32 (the split of each
/// f32 into two bf16 and the f32 accumulation of `K'` products).
double ck_top2_error(long d);
/// 1 when `ck_top2` of `e` rows and `c` columns runs on the AMX tiles (`ck_uses_amx`, at least
/// 16 rows and 32 columns); other calls use the f32 forms.
int ck_top2_uses_amx(long e, long c);

/// Floats needed by `ck_pack_panels` for `c` rows of dimension `d`.
size_t ck_packed_count(long c, long d);

/// Packs the row-major `c`×`d` matrix `b` into panels of CK_PANEL rows, each stored
/// dimension-major: `out[(p·d + k)·CK_PANEL + j] = b[(p·CK_PANEL + j)·d + k]`, zero padded.
void ck_pack_panels(const float *b, long c, long d, float *out);

/// For each of the `e` rows `a_i` of the row-major `e`×`d` matrix `a`, the largest and the
/// second-largest of `a_i · b_k` over the `c` rows of `b` (given packed by `ck_pack_panels`),
/// and an index attaining the largest. When the two largest are equal, `second == best` and the
/// index is unspecified among them. Inputs must be finite. With AMX (`ck_uses_amx`) the sums come
/// from bf16 tile products and may differ from the exact `a_i · b_k` by up to `ck_top2_error(d)`
/// for rows of norm ≤ 1; the f32 forms (AVX-512, AVX2, portable) agree bit for bit.
void ck_top2(const float *a, long e, long d, const float *packed, long c,
             float *best, float *second, int32_t *arg);

/// `out[i·ldo + j] = a_i · b_j` for the `e` rows of the row-major `e`×`d` matrix `a` and the `c`
/// rows of `b` (packed by `ck_pack_panels`); `ldo` must be at least `c` rounded up to CK_PANEL
/// (the padding columns receive 0). Each dot is accumulated over `k` in order, one fused
/// multiply-add a step on AVX-512 and AVX2 (the two agree bit for bit; values can differ from
/// `ck_dots`' and the portable loop's in the last bits).
void ck_dot_block(const float *a, long e, long d, const float *packed, long c, float *out, long ldo);

/// `uint16_t`s needed by `ck_pack_tiles` for `c` columns of dimension `d`.
size_t ck_tiles_count(long c, long d);
/// With AMX (`ck_uses_amx`), the `c` columns given packed by `ck_pack_panels` in the bf16 tile
/// layout of `ck_dot_block_tiles` (each value split into two bf16, as for `ck_top2`); otherwise
/// nothing is written.
void ck_pack_tiles(const float *packed, long c, long d, uint16_t *tiles);
/// `ck_dot_block` from the columns packed twice (`packed` by `ck_pack_panels`, `tiles` by
/// `ck_pack_tiles`): on AMX tiles, each value within `ck_top2_error(d)` of the exact dot product
/// for rows of norm ≤ 1 (the last panel's padding columns receive 0); otherwise `ck_dot_block` itself.
void ck_dot_block_tiles(const float *a, long e, long d, const float *packed, const uint16_t *tiles, long c, float *out, long ldo);

/// `out[b]` = the largest of `row[b·w ..< min(n, (b+1)·w)]` for each group `b` of `w` values
/// (−∞ for none larger; inputs finite).
void ck_group_max(const float *row, long n, long w, float *out);

/// `out[k] = a · b_k` for the `c` rows of the row-major `c`×`d` matrix `b`.
void ck_dots(const float *a, const float *b, long c, long d, float *out);

/// Little-endian IEEE half → double / float, exactly. `src` need not be aligned.
void ck_f16_to_f64(const void *src, long n, double *dst);
void ck_f16_to_f32(const void *src, long n, float *dst);
/// Little-endian float → double, exactly. `src` need not be aligned.
void ck_f32_to_f64(const void *src, long n, double *dst);

/// Column sums of float rows into doubles: for each row `i` of `0 ..< rows` in order and each
/// `j < n`, `acc[j] = acc[j] + (double)src[i·ld + j]`, every addition rounded in `double` exactly
/// as that scalar loop (rows are added one at a time, in ascending order, so the result is
/// bit-identical to widening each row to `double` and adding it). `src` is little-endian float,
/// need not be aligned; `ld ≥ n` floats between row starts.
void ck_colsum_f32(const void *src, long rows, long ld, long n, double *acc);

/// Element types of `ck_accum_rows`'s `v`.
#define CK_F64 0
#define CK_F32 1
#define CK_F16 2

/// For each of the `r` rows `i` and each `k` in `0 ..< n` in order, with `p = pos[k]`:
/// `acc[i·d + e] = fma(±w[i·ldw + p], v[p·d + e], acc[i·d + e])` for `e < d`: one fused
/// multiply-add (a single rounding) per step, so every form (AVX-512, AVX2, the portable loop
/// with C's `fma`) gives the same bits, at twice the rate of a separate product and sum.
/// `v` is little-endian of type `vtype` (CK_F64, CK_F32 or CK_F16), converted exactly.
void ck_accum_rows(long r, long d, const double *w, long ldw, const long *pos, long n,
                   const void *v, int vtype, double *acc, int subtract);
/// The scalar loop `ck_accum_rows` must equal bit for bit (for tests of the vector forms).
void ck_accum_rows_portable(long r, long d, const double *w, long ldw, const long *pos, long n,
                            const void *v, int vtype, double *acc, int subtract);

/// For each of the `r` rows `i` and each `k` in `0 ..< n` in order:
/// `sums[i] = sums[i] ± w[i·ldw + pos[k]]`, exactly the scalar loop of each row.
void ck_gather_sum(long r, const double *w, long ldw, const long *pos, long n, double *sums, int subtract);

/// `out[i·ldo + j] = a_i · b_j` for the `r` rows `a_i` (`lda` apart) and `c` rows `b_j` (`ldb`
/// apart) of dimension `d`, each exactly as KVScope's Swift `dot` sums it: eight lanes over
/// `d` in steps of eight (product rounded, then the sum), the lanes added in order 0 … 7, then the
/// remaining `d mod 8` terms one by one. No fused multiply-add (AVX-512, AVX2 or scalar by CPU).
void ck_dot_rows(long r, long c, long d, const double *a, long lda, const double *b, long ldb, double *out, long ldo);
/// The scalar form `ck_dot_rows` must equal bit for bit (for tests of the vector form).
void ck_dot_rows_portable(long r, long c, long d, const double *a, long lda, const double *b, long ldb, double *out, long ldo);

/// Merged rows of one KV head, the merge formula of `DecisionApplier`: rows `x` of element type
/// `vtype` (`d` apart, read in place and converted exactly), `nr` merged slots with pivot rows
/// `pivot[r]` and `count[r]` contributions, and `n` contributions `k` (in order) of row `src[k]`
/// into slot `row[k]` with weights `a[k]` (source) and `b[k]` (pivot):
/// `acc[r] = Σ_k (a[k]·x[src[k]] + b[k]·x[pivot[r]])` from 0, each product rounded, then their sum,
/// then the addition; then `out[r] = (x[pivot[r]] + acc[r]) / (1 + count[r])`. No fused
/// multiply-add: bit-identical to that scalar loop (AVX2 when `d` is a multiple of 8).
void ck_merge_rows(long d, long n, const long *src, const long *row, const double *a, const double *b,
                   const void *x, int vtype, long nr, const long *pivot, const long *count, double *out);
/// `ck_merge_rows` with the contributions grouped by row: `row` is non-decreasing and row `r`'s
/// contributions are `start[r] ..< start[r + 1]` (`start[nr] = n`), each row's in its order. The
/// same bits as `ck_merge_rows` (each row's sum runs over its contributions in order either way);
/// on AVX-512 each row's sum and pivot stay in registers.
void ck_merge_rows_grouped(long d, long n, const long *src, const long *row, const double *a, const double *b,
                           const void *x, int vtype, long nr, const long *start, const long *pivot, const long *count,
                           double *out);
/// The scalar loop `ck_merge_rows` must equal bit for bit (for tests of the vector form).
void ck_merge_rows_portable(long d, long n, const long *src, const long *row, const double *a, const double *b,
                            const void *x, int vtype, long nr, const long *pivot, const long *count, double *out);

#ifdef __cplusplus
}
#endif

#endif
