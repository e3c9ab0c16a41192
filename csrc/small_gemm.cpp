#include "small_gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RNNFAST_HAVE_X86_KERNELS 1
#else
#define RNNFAST_HAVE_X86_KERNELS 0
#endif

namespace rnnfast::small_gemm {

#if RNNFAST_HAVE_X86_KERNELS
namespace {

// MR rows x NV vectors of 16 floats: MR * NV accumulators, at most 16 of the 32 zmm registers.
// (The unroll pragmas matter: without them GCC keeps the accumulator array in memory and
// stores every register back at each k, which halved the kernel's rate.)
template <int MR, int NV>
__attribute__((target("avx512f"))) inline void block(const float* in, int64_t ld_in,
                                                     const float* m, float* out, int64_t ld_out,
                                                     bool accumulate) {
  constexpr int H = 16 * NV;
  __m512 c[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      c[i][v] = _mm512_setzero_ps();
  for (int k = 0; k < H; ++k) {
    __m512 b[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(m + k * H + 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(in[i * ld_in + k]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) c[i][v] = _mm512_fmadd_ps(a, b[v], c[i][v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      float* o = out + i * ld_out + 16 * v;
      _mm512_storeu_ps(o, accumulate ? _mm512_add_ps(_mm512_loadu_ps(o), c[i][v]) : c[i][v]);
    }
}

template <int NV>
__attribute__((target("avx512f"))) void rows_times_nv(const float* in, int64_t ld_in,
                                                       const float* m, float* out,
                                                       int64_t ld_out, int64_t rows,
                                                       bool accumulate) {
  constexpr int MR = NV <= 2 ? 6 : 4;
  int64_t r = 0;
  for (; r + MR <= rows; r += MR)
    block<MR, NV>(in + r * ld_in, ld_in, m, out + r * ld_out, ld_out, accumulate);
  for (; r < rows; ++r) block<1, NV>(in + r * ld_in, ld_in, m, out + r * ld_out, ld_out, accumulate);
}

// The same register blocking for AVX2 (16 ymm registers): MR rows x NV vectors of 8 floats,
// with general strides, so that one kernel also forms the weight gradient's a^T b (its "in" is
// a read down the columns). Each result is one chain of fused multiply-adds over k in order,
// whatever the block it falls in, so a row's values do not depend on where its task starts.
// The product is summed from zero and added to out once, as BLAS does with beta = 1: chaining
// it onto a large accumulated weight gradient would round every term at the total's scale.
template <int MR, int NV>
__attribute__((target("avx2,fma"))) inline void block_avx2(const float* in, int64_t in_rs,
                                                          int64_t in_ks, const float* m,
                                                          int64_t m_rs, float* out,
                                                          int64_t ld_out, int64_t K,
                                                          bool accumulate) {
  __m256 c[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      c[i][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m256 b[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) b[v] = _mm256_loadu_ps(m + k * m_rs + 8 * v);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(in + i * in_rs + k * in_ks);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) c[i][v] = _mm256_fmadd_ps(a, b[v], c[i][v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      float* o = out + i * ld_out + 8 * v;
      _mm256_storeu_ps(o, accumulate ? _mm256_add_ps(_mm256_loadu_ps(o), c[i][v]) : c[i][v]);
    }
}

// Rows [0, rows) of one column strip NV vectors wide: blocks of 6 rows, then the rest at once.
template <int NV>
__attribute__((target("avx2,fma"))) void strip_avx2(const float* in, int64_t in_rs,
                                                    int64_t in_ks, const float* m, int64_t m_rs,
                                                    float* out, int64_t ld_out, int64_t rows,
                                                    int64_t K, bool acc) {
  constexpr int MR = 6;
  int64_t r = 0;
  for (; r + MR <= rows; r += MR)
    block_avx2<MR, NV>(in + r * in_rs, in_rs, in_ks, m, m_rs, out + r * ld_out, ld_out, K, acc);
  const float* i0 = in + r * in_rs;
  float* o0 = out + r * ld_out;
  switch (rows - r) {
    case 5: return block_avx2<5, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc);
    case 4: return block_avx2<4, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc);
    case 3: return block_avx2<3, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc);
    case 2: return block_avx2<2, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc);
    case 1: return block_avx2<1, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc);
    default: return;
  }
}

// block_avx2 with 512-bit vectors: MR rows x NV vectors of 16 floats, at most 24 of the 32 zmm
// registers for accumulators. The same one chain over k per result.
template <int MR, int NV>
__attribute__((target("avx512f"))) inline void block_avx512(const float* in, int64_t in_rs,
                                                            int64_t in_ks, const float* m,
                                                            int64_t m_rs, float* out,
                                                            int64_t ld_out, int64_t K,
                                                            bool accumulate) {
  __m512 c[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      c[i][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m512 b[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(m + k * m_rs + 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(in[i * in_rs + k * in_ks]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) c[i][v] = _mm512_fmadd_ps(a, b[v], c[i][v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      float* o = out + i * ld_out + 16 * v;
      _mm512_storeu_ps(o, accumulate ? _mm512_add_ps(_mm512_loadu_ps(o), c[i][v]) : c[i][v]);
    }
}

template <int NV>
__attribute__((target("avx512f"))) void strip_avx512(const float* in, int64_t in_rs,
                                                      int64_t in_ks, const float* m,
                                                      int64_t m_rs, float* out, int64_t ld_out,
                                                      int64_t rows, int64_t K, bool acc) {
  constexpr int MR = 6;
  int64_t r = 0;
  for (; r + MR <= rows; r += MR)
    block_avx512<MR, NV>(in + r * in_rs, in_rs, in_ks, m, m_rs, out + r * ld_out, ld_out, K,
                         acc);
  const float* i0 = in + r * in_rs;
  float* o0 = out + r * ld_out;
  switch (rows - r) {
    case 5: return block_avx512<5, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc);
    case 4: return block_avx512<4, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc);
    case 3: return block_avx512<3, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc);
    case 2: return block_avx512<2, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc);
    case 1: return block_avx512<1, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc);
    default: return;
  }
}

bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}

bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}

}  // namespace

// out(rows x N) (+)= in(rows x K) @ m(K x N): with AVX-512, strips of 64 columns, then 32 and
// 16 (N a multiple of 16); with AVX2, strips of 16 columns, then 8 (N a multiple of 8).
void product(const float* in, int64_t in_rs, int64_t in_ks, const float* m, int64_t m_rs,
               float* out, int64_t ld_out, int64_t rows, int64_t N, int64_t K, bool acc) {
  int64_t c = 0;
  if (has_avx512() && N % 16 == 0) {
    for (; c + 64 <= N; c += 64)
      strip_avx512<4>(in, in_rs, in_ks, m + c, m_rs, out + c, ld_out, rows, K, acc);
    if (c + 32 <= N) {
      strip_avx512<2>(in, in_rs, in_ks, m + c, m_rs, out + c, ld_out, rows, K, acc);
      c += 32;
    }
    if (c < N) strip_avx512<1>(in, in_rs, in_ks, m + c, m_rs, out + c, ld_out, rows, K, acc);
    return;
  }
  for (; c + 16 <= N; c += 16)
    strip_avx2<2>(in, in_rs, in_ks, m + c, m_rs, out + c, ld_out, rows, K, acc);
  if (c < N) strip_avx2<1>(in, in_rs, in_ks, m + c, m_rs, out + c, ld_out, rows, K, acc);
}

bool supports_product(int64_t N) {
  if (has_avx512() && N % 16 == 0 && N >= 16 && N <= kMaxAvx512H) return true;
  return has_avx2() && N % 8 == 0 && N >= 8 && N <= kMaxAvx2H;
}

bool supports(int64_t H) { return supports_product(H); }

void rows_times(const float* in, int64_t ld_in, const float* m, float* out, int64_t ld_out,
                int64_t rows, int64_t H, bool accumulate) {
  if (has_avx512() && H % 16 == 0 && H <= 64) {
    switch (H / 16) {
      case 1: return rows_times_nv<1>(in, ld_in, m, out, ld_out, rows, accumulate);
      case 2: return rows_times_nv<2>(in, ld_in, m, out, ld_out, rows, accumulate);
      case 3: return rows_times_nv<3>(in, ld_in, m, out, ld_out, rows, accumulate);
      default: return rows_times_nv<4>(in, ld_in, m, out, ld_out, rows, accumulate);
    }
  }
  product(in, ld_in, 1, m, H, out, ld_out, rows, H, H, accumulate);
}

void add_at_b(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t k, int64_t H,
              float* acc) {
  // acc[i][j] += sum_r a[r][i] b[r][j]: "in" is a^T, row i read down column i of a.
  product(a, 1, lda, b, ldb, acc, H, H, H, k, true);
}

#else

bool supports(int64_t) { return false; }
void rows_times(const float*, int64_t, const float*, float*, int64_t, int64_t, int64_t, bool) {}
void add_at_b(const float*, int64_t, const float*, int64_t, int64_t, int64_t, float*) {}
bool supports_product(int64_t) { return false; }
void product(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, int64_t,
             int64_t, int64_t, bool) {}

#endif

}  // namespace rnnfast::small_gemm
