#include "pointwise.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RNNFAST_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RNNFAST_MULTIVERSION
#endif

namespace rnnfast::pointwise {
namespace {

template <typename scalar_t>
inline void add_rows_relu_store_impl(scalar_t* x, const scalar_t* p, const int64_t* offsets,
                                     int64_t offsets_stride, scalar_t* out, int64_t ld_out,
                                     int64_t rows, int64_t H) {
  for (int64_t r = 0; r < rows; ++r) {
    scalar_t* __restrict__ xr = x + r * H;
    const scalar_t* __restrict__ pr = p + offsets[r * offsets_stride];
    scalar_t* __restrict__ outr = out + r * ld_out;
    for (int64_t j = 0; j < H; ++j) {
      const scalar_t v = xr[j] + pr[j];
      xr[j] = outr[j] = v < scalar_t(0) ? scalar_t(0) : v;
    }
  }
}

template <typename scalar_t>
inline void relu_grad_rows_impl(const scalar_t* h, const scalar_t* g, const scalar_t* carry,
                                scalar_t* d, scalar_t* d2, int64_t rows, int64_t ld, int64_t H) {
  for (int64_t r = 0; r < rows; ++r) {
    const scalar_t* __restrict__ hr = h + r * ld;
    const scalar_t* __restrict__ gr = g + r * ld;
    const scalar_t* __restrict__ cr = carry == nullptr ? nullptr : carry + r * H;
    scalar_t* __restrict__ dr = d + r * H;
    if (cr != nullptr) {
      for (int64_t j = 0; j < H; ++j) {
        const scalar_t v = gr[j] + cr[j];
        dr[j] = hr[j] <= scalar_t(0) ? scalar_t(0) : v;
      }
    } else {
      for (int64_t j = 0; j < H; ++j) dr[j] = hr[j] <= scalar_t(0) ? scalar_t(0) : gr[j];
    }
    if (d2 != nullptr) {
      scalar_t* __restrict__ d2r = d2 + r * ld;
      for (int64_t j = 0; j < H; ++j) d2r[j] = dr[j];
    }
  }
}

template <typename scalar_t>
inline void add_to_impl(scalar_t* __restrict__ dst, const scalar_t* __restrict__ src, int64_t n) {
  for (int64_t j = 0; j < n; ++j) dst[j] += src[j];
}

}  // namespace

RNNFAST_MULTIVERSION void add_rows_relu_store(float* x, const float* p, const int64_t* offsets,
                                              int64_t offsets_stride, float* out, int64_t ld_out,
                                              int64_t rows, int64_t H) {
  add_rows_relu_store_impl(x, p, offsets, offsets_stride, out, ld_out, rows, H);
}
RNNFAST_MULTIVERSION void add_rows_relu_store(double* x, const double* p, const int64_t* offsets,
                                              int64_t offsets_stride, double* out,
                                              int64_t ld_out, int64_t rows, int64_t H) {
  add_rows_relu_store_impl(x, p, offsets, offsets_stride, out, ld_out, rows, H);
}
RNNFAST_MULTIVERSION void relu_grad_rows(const float* h, const float* g, const float* carry,
                                         float* d, float* d2, int64_t rows, int64_t ld,
                                         int64_t H) {
  relu_grad_rows_impl(h, g, carry, d, d2, rows, ld, H);
}
RNNFAST_MULTIVERSION void relu_grad_rows(const double* h, const double* g, const double* carry,
                                         double* d, double* d2, int64_t rows, int64_t ld,
                                         int64_t H) {
  relu_grad_rows_impl(h, g, carry, d, d2, rows, ld, H);
}
RNNFAST_MULTIVERSION void add_to(float* dst, const float* src, int64_t n) {
  add_to_impl(dst, src, n);
}
RNNFAST_MULTIVERSION void add_to(double* dst, const double* src, int64_t n) {
  add_to_impl(dst, src, n);
}

}  // namespace rnnfast::pointwise
