#include "small_gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RNNFAST_HAVE_AVX512_KERNEL 1
#else
#define RNNFAST_HAVE_AVX512_KERNEL 0
#endif

namespace rnnfast::small_gemm {

#if RNNFAST_HAVE_AVX512_KERNEL
namespace {

// MR rows x NV vectors of 16 floats: MR * NV accumulators, at most 16 of the 32 zmm registers.
template <int MR, int NV>
__attribute__((target("avx512f"))) inline void block(const float* in, int64_t ld_in,
                                                     const float* m, float* out, int64_t ld_out,
                                                     bool accumulate) {
  constexpr int H = 16 * NV;
  __m512 c[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v)
      c[i][v] = accumulate ? _mm512_loadu_ps(out + i * ld_out + 16 * v) : _mm512_setzero_ps();
  for (int k = 0; k < H; ++k) {
    __m512 b[NV];
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(m + k * H + 16 * v);
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(in[i * ld_in + k]);
      for (int v = 0; v < NV; ++v) c[i][v] = _mm512_fmadd_ps(a, b[v], c[i][v]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(out + i * ld_out + 16 * v, c[i][v]);
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

}  // namespace

bool supports(int64_t H) {
  static const bool has_avx512 = __builtin_cpu_supports("avx512f");
  return has_avx512 && H % 16 == 0 && H >= 16 && H <= 64;
}

void rows_times(const float* in, int64_t ld_in, const float* m, float* out, int64_t ld_out,
                int64_t rows, int64_t H, bool accumulate) {
  switch (H / 16) {
    case 1: return rows_times_nv<1>(in, ld_in, m, out, ld_out, rows, accumulate);
    case 2: return rows_times_nv<2>(in, ld_in, m, out, ld_out, rows, accumulate);
    case 3: return rows_times_nv<3>(in, ld_in, m, out, ld_out, rows, accumulate);
    default: return rows_times_nv<4>(in, ld_in, m, out, ld_out, rows, accumulate);
  }
}

#else

bool supports(int64_t) { return false; }
void rows_times(const float*, int64_t, const float*, float*, int64_t, int64_t, int64_t, bool) {}

#endif

}  // namespace rnnfast::small_gemm
