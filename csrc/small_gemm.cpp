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

// The square step product at H <= 64, with H known at compile time: MR rows x NV vectors of 16
// floats, at most 16 of the 32 zmm registers (the general block below, 6 rows at a run-time K,
// ran the book-sized op's backward slower).
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

// One register block of the product, MR rows x NV vectors of kWidth floats: MR * NV
// accumulators, each result one chain of fused multiply-adds over k in order, whatever the block
// it falls in, so that a row's values do not depend on where its task starts. "in" has general
// strides, so that the same kernel also forms the weight gradient's a^T b (its "in" is a read
// down the columns). The product is summed from zero and added once to out (as BLAS does with
// beta = 1) or to a bias row: chaining it onto a large accumulated weight gradient would round
// every term at the total's scale. The block is written once per instruction set, since a
// target attribute belongs to a whole function; everything around it (strip) is shared. (The
// unroll pragmas matter: without them GCC keeps the accumulator array in memory and stores
// every register back at each k, which halved the kernel's rate.)
struct Avx2 {
  static constexpr int kWidth = 8;
  static constexpr int kMaxVectors = 2;   // 6 x 2 accumulators of the 16 ymm registers

  template <int MR, int NV>
  __attribute__((target("avx2,fma"))) static void block(const float* in, int64_t in_rs,
                                                        int64_t in_ks, const float* m,
                                                        int64_t m_rs, float* out,
                                                        int64_t ld_out, int64_t K,
                                                        bool accumulate, const float* bias) {
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
        __m256 r = c[i][v];
        if (accumulate) r = _mm256_add_ps(_mm256_loadu_ps(o), r);
        else if (bias != nullptr) r = _mm256_add_ps(_mm256_loadu_ps(bias + 8 * v), r);
        _mm256_storeu_ps(o, r);
      }
  }
};

struct Avx512 {
  static constexpr int kWidth = 16;
  static constexpr int kMaxVectors = 4;   // 6 x 4 accumulators of the 32 zmm registers

  template <int MR, int NV>
  __attribute__((target("avx512f"))) static void block(const float* in, int64_t in_rs,
                                                      int64_t in_ks, const float* m,
                                                      int64_t m_rs, float* out, int64_t ld_out,
                                                      int64_t K, bool accumulate,
                                                      const float* bias) {
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
        __m512 r = c[i][v];
        if (accumulate) r = _mm512_add_ps(_mm512_loadu_ps(o), r);
        else if (bias != nullptr) r = _mm512_add_ps(_mm512_loadu_ps(bias + 16 * v), r);
        _mm512_storeu_ps(o, r);
      }
  }
};

// Rows [0, rows) of one column strip NV vectors wide: blocks of 6 rows, then the rest at once.
template <typename Isa, int NV>
void strip(const float* in, int64_t in_rs, int64_t in_ks, const float* m, int64_t m_rs,
           float* out, int64_t ld_out, int64_t rows, int64_t K, bool acc, const float* bias) {
  constexpr int MR = 6;
  int64_t r = 0;
  for (; r + MR <= rows; r += MR)
    Isa::template block<MR, NV>(in + r * in_rs, in_rs, in_ks, m, m_rs, out + r * ld_out, ld_out,
                                K, acc, bias);
  const float* i0 = in + r * in_rs;
  float* o0 = out + r * ld_out;
  switch (rows - r) {
    case 5: return Isa::template block<5, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc,
                                                             bias);
    case 4: return Isa::template block<4, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc,
                                                             bias);
    case 3: return Isa::template block<3, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc,
                                                             bias);
    case 2: return Isa::template block<2, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc,
                                                             bias);
    case 1: return Isa::template block<1, NV>(i0, in_rs, in_ks, m, m_rs, o0, ld_out, K, acc,
                                                             bias);
    default: return;
  }
}

// The strip of the last `vectors` (at most NV) vectors of columns, as one strip.
template <typename Isa, int NV>
void last_strip(int64_t vectors, const float* in, int64_t in_rs, int64_t in_ks, const float* m,
                int64_t m_rs, float* out, int64_t ld_out, int64_t rows, int64_t K, bool acc,
                const float* bias) {
  if (vectors == NV)
    return strip<Isa, NV>(in, in_rs, in_ks, m, m_rs, out, ld_out, rows, K, acc, bias);
  if constexpr (NV > 1)
    last_strip<Isa, NV - 1>(vectors, in, in_rs, in_ks, m, m_rs, out, ld_out, rows, K, acc, bias);
}

// out(rows x N) = in(rows x K) @ m(K x N) (+ out, or + the bias row), N a multiple of
// Isa::kWidth: strips as wide as the registers allow, then one strip of the vectors left.
template <typename Isa>
void product_with(const float* in, int64_t in_rs, int64_t in_ks, const float* m, int64_t m_rs,
                  float* out, int64_t ld_out, int64_t rows, int64_t N, int64_t K, bool acc,
                  const float* bias) {
  constexpr int W = Isa::kWidth, NV = Isa::kMaxVectors;
  const auto bias_at = [&](int64_t c) { return bias == nullptr ? nullptr : bias + c; };
  int64_t c = 0;
  for (; c + NV * W <= N; c += NV * W)
    strip<Isa, NV>(in, in_rs, in_ks, m + c, m_rs, out + c, ld_out, rows, K, acc, bias_at(c));
  if (c < N)
    last_strip<Isa, NV - 1>((N - c) / W, in, in_rs, in_ks, m + c, m_rs, out + c, ld_out, rows,
                            K, acc, bias_at(c));
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

// With AVX-512 where N is a multiple of 16, AVX2 otherwise (N a multiple of 8).
void product(const float* in, int64_t in_rs, int64_t in_ks, const float* m, int64_t m_rs,
             float* out, int64_t ld_out, int64_t rows, int64_t N, int64_t K, bool acc,
             const float* bias) {
  if (has_avx512() && N % Avx512::kWidth == 0)
    return product_with<Avx512>(in, in_rs, in_ks, m, m_rs, out, ld_out, rows, N, K, acc, bias);
  product_with<Avx2>(in, in_rs, in_ks, m, m_rs, out, ld_out, rows, N, K, acc, bias);
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
  product(in, ld_in, 1, m, H, out, ld_out, rows, H, H, accumulate, nullptr);
}

void add_at_b(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t k, int64_t H,
              float* acc) {
  // acc[i][j] += sum_r a[r][i] b[r][j]: "in" is a^T, row i read down column i of a.
  product(a, 1, lda, b, ldb, acc, H, H, H, k, true, nullptr);
}

#else

bool supports(int64_t) { return false; }
void rows_times(const float*, int64_t, const float*, float*, int64_t, int64_t, int64_t, bool) {}
void add_at_b(const float*, int64_t, const float*, int64_t, int64_t, int64_t, float*) {}
bool supports_product(int64_t) { return false; }
void product(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, int64_t,
             int64_t, int64_t, bool, const float*) {}

#endif

}  // namespace rnnfast::small_gemm
