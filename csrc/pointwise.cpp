#include "pointwise.h"

#include "vec_math.h"

#include <algorithm>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RNNFAST_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RNNFAST_MULTIVERSION
#endif

namespace rnnfast::pointwise {
namespace {

template <typename scalar_t, typename Act>
inline void add_act_store_impl(scalar_t* x, const scalar_t* const* u, scalar_t* const* out,
                               int64_t rows, int64_t H, Act) {
  for (int64_t r = 0; r < rows; ++r) {
    scalar_t* __restrict__ xr = x + r * H;
    scalar_t* __restrict__ outr = out[r];
    if (u[r] == out[r]) {   // U formed in the output: one restrict pointer for both
      for (int64_t j = 0; j < H; ++j) xr[j] = outr[j] = Act::f(xr[j] + outr[j]);
      continue;
    }
    const scalar_t* __restrict__ ur = u[r];
    for (int64_t j = 0; j < H; ++j) xr[j] = outr[j] = Act::f(xr[j] + ur[j]);
  }
}

template <typename scalar_t, typename Act>
inline void act_grad_impl(const scalar_t* const* h, const scalar_t* const* g,
                          const scalar_t* carry, scalar_t* d, scalar_t* const* d2, int64_t rows,
                          int64_t H, Act) {
  for (int64_t r = 0; r < rows; ++r) {
    const scalar_t* __restrict__ hr = h[r];
    const scalar_t* __restrict__ cr = carry + r * H;
    scalar_t* __restrict__ dr = d + r * H;
    if (g != nullptr) {
      const scalar_t* __restrict__ gr = g[r];
      for (int64_t j = 0; j < H; ++j) dr[j] = Act::grad(hr[j], gr[j] + cr[j]);
    } else {
      for (int64_t j = 0; j < H; ++j) dr[j] = Act::grad(hr[j], cr[j]);
    }
    if (d2 != nullptr) std::copy_n(dr, H, d2[r]);
  }
}

template <typename scalar_t>
inline void add_to_impl(scalar_t* __restrict__ dst, const scalar_t* __restrict__ src, int64_t n) {
  for (int64_t j = 0; j < n; ++j) dst[j] += src[j];
}

// max[c] = the largest x[v][c] over v < rows. A NaN is skipped by the comparison (or, first,
// kept as the maximum); either way it reaches the sums of e^(x - max) and makes them NaN, as
// in torch.
template <typename scalar_t>
inline void column_max(const scalar_t* x, int64_t ld, int64_t rows, int64_t cols,
                       scalar_t* __restrict__ max) {
  std::copy_n(x, cols, max);
  for (int64_t v = 1; v < rows; ++v) {
    const scalar_t* __restrict__ xv = x + v * ld;
    for (int64_t c = 0; c < cols; ++c) max[c] = xv[c] > max[c] ? xv[c] : max[c];
  }
}

template <typename scalar_t>
inline void column_logsumexp_impl(const scalar_t* x, int64_t ld, int64_t rows, int64_t cols,
                                  scalar_t* __restrict__ max, scalar_t* __restrict__ log_sum) {
  column_max(x, ld, rows, cols, max);
  // log_sum holds the sums until the last loop takes their logarithm.
  std::fill_n(log_sum, cols, scalar_t(0));
  for (int64_t v = 0; v < rows; ++v) {
    const scalar_t* __restrict__ xv = x + v * ld;
    for (int64_t c = 0; c < cols; ++c) log_sum[c] += vec_math::exp_nonpositive(xv[c] - max[c]);
  }
  for (int64_t c = 0; c < cols; ++c) log_sum[c] = vec_math::log_positive(log_sum[c]);
}

template <typename scalar_t>
inline void column_softmax_times_impl(const scalar_t* x, int64_t ld, int64_t rows, int64_t cols,
                                      scalar_t scale, scalar_t* d, scalar_t* __restrict__ max,
                                      scalar_t* __restrict__ factor) {
  column_max(x, ld, rows, cols, max);
  // One exponential per entry: d holds e^(x - max) while factor sums them...
  std::fill_n(factor, cols, scalar_t(0));
  for (int64_t v = 0; v < rows; ++v) {
    const scalar_t* __restrict__ xv = x + v * ld;
    scalar_t* __restrict__ dv = d + v * ld;
    for (int64_t c = 0; c < cols; ++c) {
      dv[c] = vec_math::exp_nonpositive(xv[c] - max[c]);
      factor[c] += dv[c];
    }
  }
  // ...then scales them by scale / sum.
  for (int64_t c = 0; c < cols; ++c) factor[c] = scale / factor[c];
  for (int64_t v = 0; v < rows; ++v) {
    scalar_t* __restrict__ dv = d + v * ld;
    for (int64_t c = 0; c < cols; ++c) dv[c] *= factor[c];
  }
}

template <typename scalar_t>
inline void add_row_sums_impl(const scalar_t* x, int64_t ld, int64_t rows, int64_t cols,
                              scalar_t* out) {
  constexpr int64_t kLanes = 16;
  for (int64_t v = 0; v < rows; ++v) {
    const scalar_t* __restrict__ xv = x + v * ld;
    scalar_t lanes[kLanes] = {};
    int64_t c = 0;
    for (; c + kLanes <= cols; c += kLanes)
      for (int64_t j = 0; j < kLanes; ++j) lanes[j] += xv[c + j];
    scalar_t sum = 0;
    for (int64_t j = 0; j < kLanes; ++j) sum += lanes[j];
    for (; c < cols; ++c) sum += xv[c];
    out[v] += sum;
  }
}

}  // namespace

RNNFAST_MULTIVERSION void add_act_store(float* x, const float* const* u, float* const* out,
                                        int64_t rows, int64_t H, Activation act) {
  // (Plain branches: GCC compiles a generic lambda here once, for the default target, rather
  // than inlining it into each clone, and the loop stays at SSE2 width.)
  if (act == Activation::kTanh) return add_act_store_impl(x, u, out, rows, H, Tanh{});
  add_act_store_impl(x, u, out, rows, H, Relu{});
}
RNNFAST_MULTIVERSION void add_act_store(double* x, const double* const* u, double* const* out,
                                        int64_t rows, int64_t H, Activation act) {
  if (act == Activation::kTanh) return add_act_store_impl(x, u, out, rows, H, Tanh{});
  add_act_store_impl(x, u, out, rows, H, Relu{});
}
RNNFAST_MULTIVERSION void act_grad(const float* const* h, const float* const* g,
                                   const float* carry, float* d, float* const* d2, int64_t rows,
                                   int64_t H, Activation act) {
  if (act == Activation::kTanh) return act_grad_impl(h, g, carry, d, d2, rows, H, Tanh{});
  act_grad_impl(h, g, carry, d, d2, rows, H, Relu{});
}
RNNFAST_MULTIVERSION void act_grad(const double* const* h, const double* const* g,
                                   const double* carry, double* d, double* const* d2,
                                   int64_t rows, int64_t H, Activation act) {
  if (act == Activation::kTanh) return act_grad_impl(h, g, carry, d, d2, rows, H, Tanh{});
  act_grad_impl(h, g, carry, d, d2, rows, H, Relu{});
}
RNNFAST_MULTIVERSION void add_to(float* dst, const float* src, int64_t n) {
  add_to_impl(dst, src, n);
}
RNNFAST_MULTIVERSION void add_to(double* dst, const double* src, int64_t n) {
  add_to_impl(dst, src, n);
}

RNNFAST_MULTIVERSION void column_logsumexp(const float* x, int64_t ld, int64_t rows,
                                           int64_t cols, float* max, float* log_sum) {
  column_logsumexp_impl(x, ld, rows, cols, max, log_sum);
}
RNNFAST_MULTIVERSION void column_logsumexp(const double* x, int64_t ld, int64_t rows,
                                           int64_t cols, double* max, double* log_sum) {
  column_logsumexp_impl(x, ld, rows, cols, max, log_sum);
}
RNNFAST_MULTIVERSION void column_softmax_times(const float* x, int64_t ld, int64_t rows,
                                               int64_t cols, float scale, float* d,
                                               float* scratch) {
  column_softmax_times_impl(x, ld, rows, cols, scale, d, scratch, scratch + cols);
}
RNNFAST_MULTIVERSION void column_softmax_times(const double* x, int64_t ld, int64_t rows,
                                               int64_t cols, double scale, double* d,
                                               double* scratch) {
  column_softmax_times_impl(x, ld, rows, cols, scale, d, scratch, scratch + cols);
}
RNNFAST_MULTIVERSION void add_row_sums(const float* x, int64_t ld, int64_t rows, int64_t cols,
                                       float* out) {
  add_row_sums_impl(x, ld, rows, cols, out);
}
RNNFAST_MULTIVERSION void add_row_sums(const double* x, int64_t ld, int64_t rows, int64_t cols,
                                       double* out) {
  add_row_sums_impl(x, ld, rows, cols, out);
}

}  // namespace rnnfast::pointwise
