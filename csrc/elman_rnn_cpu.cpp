// CPU kernels for rnnfast::elman_rnn (forward) and rnnfast::elman_rnn_backward.
//
// Forward:  P = emb_weight @ weight^T + bias (vocab x hidden, once per call), then
//           h_t = relu(h_{t-1} @ weight^T + P[x_t]).
// Backward: with da_t = dL/da_t (a_t the pre-activation), the only sequential work is
//           carry_{t-1} = da_t @ weight. Everything else is done after the time loop:
//           dP = index_add(da by token)      dbias = sum_v dP[v]
//           demb = dP @ weight               dweight = DA^T [h_{t-1}] + dP^T emb_weight
//
// Batch rows never interact in the recurrence, so each thread walks the whole sequence over its
// own slice of rows: one fork/join per call instead of one per time step.
#include "blas.h"
#include "elman_rnn.h"
#include "parallel_grain.h"
#include "pointwise.h"
#include "small_gemm.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace rnnfast {
namespace {

using blas::Op;

// From this hidden size on the weight is "large" (1 MiB in float32 and more): it no longer sits
// in a core's L2, and the kernels change strategy (kMinRowsPerTaskLargeH, WeightT).
constexpr int64_t kLargeH = 512;

// Fewest batch rows a task may own once the weight is large. Each task streams the whole weight
// through its core at every step; with few rows that traffic outweighs the arithmetic, and the
// time loop does better on one thread with each step's product split across cores by BLAS's own
// threads, as the eager loop does. (Measured at
// (B, T, H) = (64, 16, 1024), 2 threads: 32 rows a task ran the forward at 0.65x the eager loop.)
constexpr int64_t kMinRowsPerTaskLargeH = 128;

// Each batch row is T steps of H * H multiply-adds (parallel_grain.h's rule).
int64_t batch_grain(int64_t T, int64_t H) {
  const int64_t grain = rows_grain(T * H * H);
  return H >= kLargeH ? std::max(grain, kMinRowsPerTaskLargeH) : grain;
}

// Tasks own whole blocks of kRowAlign batch rows. MKL computes a product's rows in blocks and
// the rows past the last full block another way (seen on an AMD EPYC host, float32 and float64),
// so a row's result would depend on where its task's first row lies; with every task starting
// at a multiple of 8 rows, hs is bitwise the same for any thread count.
constexpr int64_t kRowAlign = 8;

int64_t row_blocks(int64_t B) { return (B + kRowAlign - 1) / kRowAlign; }

int64_t block_grain(int64_t T, int64_t H) {
  return (batch_grain(T, H) + kRowAlign - 1) / kRowAlign;
}

int64_t batch_tasks(int64_t B, int64_t T, int64_t H) {
  return task_count(row_blocks(B), block_grain(T, H));
}

// at::parallel_for over the batch rows [0, B) in tasks of whole row blocks: f(row0, row1).
template <typename F>
void parallel_rows(int64_t B, int64_t T, int64_t H, const F& f) {
  at::parallel_for(0, row_blocks(B), block_grain(T, H), [&](int64_t k0, int64_t k1) {
    f(k0 * kRowAlign, std::min(B, k1 * kRowAlign));
  });
}

template <typename index_t>
void check_token_range(const index_t* tokens, int64_t B, int64_t T, int64_t V) {
  for (int64_t i = 0; i < B * T; ++i) {
    const int64_t v = static_cast<int64_t>(tokens[i]);
    TORCH_CHECK_INDEX(v >= 0 && v < V,
                      "rnnfast.elman_rnn: tokens must lie in [0, vocab_size) = [0, ", V,
                      "), found ", v, " at position (", i / T, ", ", i % T, ")");
  }
}

// out(rows x H, row stride ld_out) = in(rows x H, row stride ld_in) @ op(m) + beta * out, with
// op(m) = m, or m^T when m_op is Op::T. BLAS is column-major, and a row-major matrix read
// column-major is its transpose: out^T = op(m)^T in^T.
template <typename scalar_t>
void rows_times(const scalar_t* in, int64_t ld_in, const scalar_t* m, Op m_op, scalar_t* out,
                int64_t ld_out, int64_t rows, int64_t H, scalar_t beta) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (m_op == Op::N && (beta == 0.f || beta == 1.f) && small_gemm::supports(H)) {
      small_gemm::rows_times(in, ld_in, m, out, ld_out, rows, H, beta == 1.f);
      return;
    }
  }
  blas::gemm(m_op, Op::N, H, rows, H, scalar_t(1), m, H, in, ld_in, beta, out, ld_out);
}

// weight^T as the forward's products take it. Below kLargeH, a transposed copy: MKL's
// small-matrix kernels (and small_gemm) run faster on it than on a transposed operand. From
// kLargeH on, weight itself, read transposed by BLAS: the copy would be a single-threaded pass
// over a weight that no longer fits in L2, while the products are split over torch's threads.
// (Measured, (64, 16, H) forward on 2 threads, against the eager loop: H = 512 1.41x without
// the copy, 1.13x with it; H = 1024 1.10x against 0.99x.)
template <typename scalar_t>
struct WeightT {
  const scalar_t* m;
  Op op;
};

bool uses_transposed_copy(int64_t H) { return H < kLargeH; }

// acc(H x H) += a^T b where a and b are (k x H) with row strides lda, ldb: the weight gradient
// sum_r a[r]^T b[r], laid out row-major as acc[i][j] = sum_r a[r][i] b[r][j].
template <typename scalar_t>
void accumulate_at_b(const scalar_t* a, int64_t lda, const scalar_t* b, int64_t ldb, int64_t k,
                     int64_t H, scalar_t beta, scalar_t* acc) {
  blas::gemm(Op::N, Op::T, H, H, k, scalar_t(1), b, ldb,
                a, lda, beta, acc, H);
}

// The time loops below work on contiguous (rows x H) step buffers, and the element-wise pass of
// each step also stores it into its (B, T, H) slot. Reading and writing the strided slots directly would hand BLAS
// rows T*H apart: a power-of-two stride at the usual sizes, which maps every row to the same
// cache sets (the forward ran at 60% of the matmul rate at H = 1024 that way).

// Runs the recurrence over `rows` batch rows (offsets, hs and h0 already offset to the first
// row; rows are T apart in offsets, T*H in hs, H in h0; h0 == nullptr starts from zeros).
// offsets[i] = tokens[i] * H locates P[x] for each position; steps is 2 * rows * H scratch.
template <typename scalar_t>
void forward_rows(const int64_t* offsets, const scalar_t* p, const scalar_t* h0,
                  WeightT<scalar_t> wt, scalar_t* steps, scalar_t* hs, int64_t rows, int64_t T,
                  int64_t H) {
  const int64_t ld = T * H;
  for (int64_t t = 0; t < T; ++t) {
    scalar_t* cur = steps + (t & 1) * rows * H;
    const scalar_t* prev = steps + ((t + 1) & 1) * rows * H;
    if (t > 0) {
      rows_times(prev, H, wt.m, wt.op, cur, H, rows, H, scalar_t(0));
    } else if (h0 != nullptr) {
      rows_times(h0, H, wt.m, wt.op, cur, H, rows, H, scalar_t(0));
    } else {
      // -0.0 is the exact additive identity (+0.0 would turn a -0.0 in P into +0.0), so the
      // first step yields relu(P[x]) bit for bit, signed zeros included.
      std::fill_n(cur, rows * H, scalar_t(-0.0));
    }
    pointwise::add_rows_relu_store(cur, p, offsets + t, T, hs + t * H, ld, rows, H);
  }
}

// Backpropagates through time over `rows` batch rows (all pointers already offset to the first
// row). Writes da_t into da for t >= 1 and da_0 into da0, leaving da[:, 0] zero so that the
// weight gradient can pair da row r with hs row r - 1 in one GEMM. carry and step are
// rows x H scratch. grad_h0 (nullptr when there is no h0) receives da_0 @ w.
template <typename scalar_t>
void backward_rows(const scalar_t* grad_hs, const scalar_t* hs, const scalar_t* w, scalar_t* da,
                   scalar_t* da0, scalar_t* carry, scalar_t* step, scalar_t* grad_h0,
                   int64_t rows, int64_t T, int64_t H) {
  const int64_t ld = T * H;
  for (int64_t t = T - 1; t >= 0; --t) {
    const bool has_carry = t < T - 1;
    scalar_t* da_t = t > 0 ? step : da0;
    pointwise::relu_grad_rows(hs + t * H, grad_hs + t * H, has_carry ? carry : nullptr, da_t,
                              t > 0 ? da + t * H : nullptr, rows, ld, H);
    if (t > 0) {
      rows_times(da_t, H, w, Op::N, carry, H, rows, H, scalar_t(0));
    } else if (grad_h0 != nullptr) {
      rows_times(da_t, H, w, Op::N, grad_h0, H, rows, H, scalar_t(0));
    }
  }
  for (int64_t r = 0; r < rows; ++r) std::fill_n(da + r * ld, H, scalar_t(0));
}

// wt = w^T for a square (H x H) matrix, a tile at a time through a small local buffer, so that
// both w and wt are read and written a row segment at a time. A plain (even tiled) transpose
// writes one column of wt at a time: at H = 1024 its rows lie 4 KiB apart, all on the same L1
// cache set, and it took as long as three time steps of the (64, 16, 1024) forward.
template <typename scalar_t>
void transpose(const scalar_t* w, scalar_t* wt, int64_t H) {
  constexpr int64_t kTile = 32;
  scalar_t tile[kTile][kTile];
  for (int64_t i0 = 0; i0 < H; i0 += kTile) {
    const int64_t ni = std::min(kTile, H - i0);
    for (int64_t j0 = 0; j0 < H; j0 += kTile) {
      const int64_t nj = std::min(kTile, H - j0);
      for (int64_t i = 0; i < ni; ++i)
        for (int64_t j = 0; j < nj; ++j) tile[j][i] = w[(i0 + i) * H + j0 + j];
      for (int64_t j = 0; j < nj; ++j) std::copy_n(tile[j], ni, wt + (j0 + j) * H + i0);
    }
  }
}

template <typename scalar_t, typename index_t>
void forward_impl(const index_t* tokens, const scalar_t* emb, const scalar_t* w, const scalar_t* b,
                  const scalar_t* h0, scalar_t* wt_scratch, scalar_t* p, scalar_t* steps,
                  int64_t* offsets, scalar_t* hs, int64_t B, int64_t T, int64_t V, int64_t H) {
  for (int64_t i = 0; i < B * T; ++i) offsets[i] = static_cast<int64_t>(tokens[i]) * H;
  WeightT<scalar_t> wt{w, Op::T};
  if (uses_transposed_copy(H)) {
    transpose(w, wt_scratch, H);
    wt = {wt_scratch, Op::N};
  }
  for (int64_t v = 0; v < V; ++v) std::copy_n(b, H, p + v * H);
  rows_times(emb, H, wt.m, wt.op, p, H, V, H, scalar_t(1));
  parallel_rows(B, T, H, [&](int64_t b0, int64_t b1) {
    forward_rows(offsets + b0 * T, p, h0 == nullptr ? nullptr : h0 + b0 * H, wt,
                 steps + 2 * b0 * H, hs + b0 * T * H, b1 - b0, T, H);
  });
}

template <typename scalar_t>
bool finite_row(const scalar_t* row, int64_t H) {
  for (int64_t j = 0; j < H; ++j)
    if (!std::isfinite(row[j])) return false;
  return true;
}

// NaN/Inf and the GEMMs that run over mathematically absent terms. The batched GEMMs below also
// multiply an exact zero into terms that the reference loop never forms: the pairs across batch
// rows (da zeroed) and the embedding rows of tokens the batch never reads (dP = 0). 0 * x is 0
// for finite x but NaN for NaN/Inf, so before each such GEMM an O(rows * H) check looks for a
// non-finite value in those terms, and only then is a slower exact path taken.

// acc += sum over the `rows` batch rows of sum_{t>=1} da[r, t]^T hs[r, t-1].
template <typename scalar_t>
void accumulate_recurrent_grad(const scalar_t* da, const scalar_t* hs, int64_t rows, int64_t T,
                               int64_t H, scalar_t* acc) {
  bool boundaries_finite = true;
  for (int64_t r = 1; r < rows && boundaries_finite; ++r)
    boundaries_finite = finite_row(hs + r * T * H - H, H);
  if (boundaries_finite) {
    // Row i of da pairs with row i-1 of hs in one GEMM; the pairs that would cross from one
    // batch row into the next meet the zeroed da[:, 0] (see backward_rows).
    if (rows * T > 1) accumulate_at_b(da + H, H, hs, H, rows * T - 1, H, scalar_t(1), acc);
  } else if (T > 1) {
    for (int64_t r = 0; r < rows; ++r)
      accumulate_at_b(da + r * T * H + H, H, hs + r * T * H, H, T - 1, H, scalar_t(1), acc);
  }
}

template <typename scalar_t, typename index_t>
void backward_impl(const scalar_t* grad_hs, const index_t* tokens, const scalar_t* emb,
                   const scalar_t* w, const scalar_t* hs, const scalar_t* h0, scalar_t* da,
                   scalar_t* da0, scalar_t* carry, scalar_t* step, scalar_t* d_w_parts,
                   scalar_t* d_p, scalar_t* d_emb, scalar_t* d_w, scalar_t* d_b,
                   scalar_t* d_h0, int64_t B, int64_t T, int64_t V, int64_t H, int64_t n_parts) {
  // Each task also forms its rows' share of sum_t da_t^T h_{t-1} while they are hot in cache:
  // one parallel region for the whole sequential part, and no serial GEMM after it.
  std::fill_n(d_w_parts, n_parts * H * H, scalar_t(0));
  parallel_rows(B, T, H, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0, off = b0 * T * H;
    backward_rows(grad_hs + off, hs + off, w, da + off, da0 + b0 * H, carry + b0 * H,
                  step + b0 * H, h0 == nullptr ? nullptr : d_h0 + b0 * H, rows, T, H);
    scalar_t* part = d_w_parts + std::min<int64_t>(at::get_thread_num(), n_parts - 1) * H * H;
    accumulate_recurrent_grad(da + off, hs + off, rows, T, H, part);
    if (h0 != nullptr)
      accumulate_at_b(da0 + b0 * H, H, h0 + b0 * H, H, rows, H, scalar_t(1), part);
  });

  // dP[v] = sum of da over the positions holding token v (da[:, 0] lives in da0).
  std::vector<char> used(V, 0);
  std::fill_n(d_p, V * H, scalar_t(0));
  for (int64_t i = 0; i < B * T; ++i) {
    const scalar_t* src = i % T == 0 ? da0 + (i / T) * H : da + i * H;
    pointwise::add_to(d_p + tokens[i] * H, src, H);
    used[tokens[i]] = 1;
  }
  std::fill_n(d_b, H, scalar_t(0));
  for (int64_t v = 0; v < V; ++v) pointwise::add_to(d_b, d_p + v * H, H);

  // demb = dP W; a token the batch never reads gets exactly 0, even where W is not finite.
  rows_times(d_p, H, w, Op::N, d_emb, H, V, H, scalar_t(0));
  for (int64_t v = 0; v < V; ++v)
    if (!used[v]) std::fill_n(d_emb + v * H, H, scalar_t(0));

  // dW = (the tasks' shares) + dP^T emb, over the used embedding rows only if an unused one is
  // not finite.
  std::copy_n(d_w_parts, H * H, d_w);
  for (int64_t k = 1; k < n_parts; ++k) pointwise::add_to(d_w, d_w_parts + k * H * H, H * H);
  bool unused_rows_finite = true;
  for (int64_t v = 0; v < V && unused_rows_finite; ++v)
    unused_rows_finite = used[v] || finite_row(emb + v * H, H);
  if (unused_rows_finite) {
    accumulate_at_b(d_p, H, emb, H, V, H, scalar_t(1), d_w);
  } else {
    for (int64_t v = 0; v < V; ++v)
      if (used[v]) accumulate_at_b(d_p + v * H, H, emb + v * H, H, 1, H, scalar_t(1), d_w);
  }
}

at::Tensor elman_rnn_cpu(const at::Tensor& tokens_in, const at::Tensor& emb_in,
                         const at::Tensor& weight_in, const at::Tensor& bias_in,
                         const std::optional<at::Tensor>& h0_in) {
  check_forward_args(tokens_in, emb_in, weight_in, bias_in, h0_in);
  const auto [tokens, emb, weight, bias, h0] =
      contiguous_inputs(tokens_in, emb_in, weight_in, bias_in, h0_in);
  const int64_t B = tokens.size(0), T = tokens.size(1), V = emb.size(0), H = emb.size(1);

  auto hs = at::empty({B, T, H}, emb.options());
  auto p = at::empty({V, H}, emb.options());
  auto steps = at::empty({2, B, H}, emb.options());
  auto wt = at::empty({uses_transposed_copy(H) ? H : 0, H}, emb.options());
  auto offsets = at::empty({B, T}, tokens.options().dtype(at::kLong));
  AT_DISPATCH_INDEX_TYPES(tokens.scalar_type(), "elman_rnn_cpu_tokens", [&] {
    check_token_range(tokens.const_data_ptr<index_t>(), B, T, V);
    AT_DISPATCH_FLOATING_TYPES(emb.scalar_type(), "elman_rnn_cpu", [&] {
      forward_impl<scalar_t, index_t>(
          tokens.const_data_ptr<index_t>(), emb.const_data_ptr<scalar_t>(),
          weight.const_data_ptr<scalar_t>(), bias.const_data_ptr<scalar_t>(),
          h0.defined() ? h0.const_data_ptr<scalar_t>() : nullptr, wt.mutable_data_ptr<scalar_t>(),
          p.mutable_data_ptr<scalar_t>(), steps.mutable_data_ptr<scalar_t>(),
          offsets.mutable_data_ptr<int64_t>(), hs.mutable_data_ptr<scalar_t>(), B, T, V, H);
    });
  });
  return hs;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> elman_rnn_backward_cpu(
    const at::Tensor& grad_hs_in, const at::Tensor& tokens_in, const at::Tensor& emb_in,
    const at::Tensor& weight_in, const at::Tensor& hs_in, const std::optional<at::Tensor>& h0_in) {
  check_backward_args(grad_hs_in, tokens_in, emb_in, weight_in, hs_in, h0_in);
  const auto [grad_hs, tokens, emb, weight, hs, h0] =
      contiguous_inputs(grad_hs_in, tokens_in, emb_in, weight_in, hs_in, h0_in);
  const int64_t B = tokens.size(0), T = tokens.size(1), V = emb.size(0), H = emb.size(1);

  const auto opts = emb.options();
  auto da = at::empty({B, T, H}, opts);
  auto da0 = at::empty({B, H}, opts);
  auto carry = at::empty({B, H}, opts);
  auto step = at::empty({B, H}, opts);
  auto d_p = at::empty({V, H}, opts);
  auto d_emb = at::empty({V, H}, opts);
  auto d_w = at::empty({H, H}, opts);
  const int64_t n_parts = batch_tasks(B, T, H);
  auto d_w_parts = at::empty({n_parts, H, H}, opts);
  auto d_b = at::empty({H}, opts);
  auto d_h0 = h0.defined() ? at::empty({B, H}, opts) : at::zeros({B, H}, opts);
  AT_DISPATCH_INDEX_TYPES(tokens.scalar_type(), "elman_rnn_backward_cpu_tokens", [&] {
    check_token_range(tokens.const_data_ptr<index_t>(), B, T, V);
    AT_DISPATCH_FLOATING_TYPES(emb.scalar_type(), "elman_rnn_backward_cpu", [&] {
      backward_impl<scalar_t, index_t>(
          grad_hs.const_data_ptr<scalar_t>(), tokens.const_data_ptr<index_t>(),
          emb.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
          hs.const_data_ptr<scalar_t>(), h0.defined() ? h0.const_data_ptr<scalar_t>() : nullptr,
          da.mutable_data_ptr<scalar_t>(), da0.mutable_data_ptr<scalar_t>(),
          carry.mutable_data_ptr<scalar_t>(), step.mutable_data_ptr<scalar_t>(),
          d_w_parts.mutable_data_ptr<scalar_t>(),
          d_p.mutable_data_ptr<scalar_t>(),
          d_emb.mutable_data_ptr<scalar_t>(), d_w.mutable_data_ptr<scalar_t>(),
          d_b.mutable_data_ptr<scalar_t>(), d_h0.mutable_data_ptr<scalar_t>(), B, T, V, H,
          n_parts);
    });
  });
  return {d_emb, d_w, d_b, d_h0};
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnfast, CPU, m) {
  m.impl("elman_rnn", &elman_rnn_cpu);
  m.impl("elman_rnn_backward", &elman_rnn_backward_cpu);
}

}  // namespace rnnfast
