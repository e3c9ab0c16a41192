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

// Smallest amount of recurrent work (multiply-adds) worth a thread of its own: below it the
// fork/join costs more than it saves.
constexpr int64_t kMinMacsPerTask = int64_t{1} << 16;

int64_t batch_grain(int64_t T, int64_t H) {
  const int64_t per_row = std::max<int64_t>(T * H * H, 1);
  return std::max<int64_t>(1, (kMinMacsPerTask + per_row - 1) / per_row);
}

template <typename index_t>
void check_token_range(const index_t* tokens, int64_t B, int64_t T, int64_t V) {
  for (int64_t i = 0; i < B * T; ++i) {
    const int64_t v = static_cast<int64_t>(tokens[i]);
    TORCH_CHECK_INDEX(v >= 0 && v < V, "rnnfast.elman_rnn: tokens must lie in [0, vocab_size) = [0, ",
                      V, "), found ", v, " at position (", i / T, ", ", i % T, ")");
  }
}

// out(rows x H, row stride ld_out) (+)= in(rows x H, row stride ld_in) @ w^T.
// BLAS is column-major: out^T = w * in^T, and row-major w read column-major is w^T.
template <typename scalar_t>
void rows_times_wt(const scalar_t* in, int64_t ld_in, const scalar_t* w, scalar_t* out,
                   int64_t ld_out, int64_t rows, int64_t H, scalar_t beta) {
  blas::gemm(Op::T, Op::N, H, rows, H, scalar_t(1), w, H,
                in, ld_in, beta, out, ld_out);
}

// out(rows x H) = in(rows x H) @ w, both with their own row strides.
template <typename scalar_t>
void rows_times_w(const scalar_t* in, int64_t ld_in, const scalar_t* w, scalar_t* out,
                  int64_t ld_out, int64_t rows, int64_t H) {
  blas::gemm(Op::N, Op::N, H, rows, H, scalar_t(1), w,
                H, in, ld_in, scalar_t(0), out, ld_out);
}

// acc(H x H) += a^T b where a and b are (k x H) with row strides lda, ldb: the weight gradient
// sum_r a[r]^T b[r], laid out row-major as acc[i][j] = sum_r a[r][i] b[r][j].
template <typename scalar_t>
void accumulate_at_b(const scalar_t* a, int64_t lda, const scalar_t* b, int64_t ldb, int64_t k,
                     int64_t H, scalar_t beta, scalar_t* acc) {
  blas::gemm(Op::N, Op::T, H, H, k, scalar_t(1), b, ldb,
                a, lda, beta, acc, H);
}

// Runs the recurrence over `rows` batch rows. On entry hs holds P[x_t] for every step; on exit
// it holds h_t. Rows are T*H apart in hs and H apart in h0 (nullptr: start from zeros).
template <typename scalar_t>
void forward_rows(scalar_t* hs, const scalar_t* h0, const scalar_t* w, int64_t rows, int64_t T,
                  int64_t H) {
  const int64_t ld = T * H;
  for (int64_t t = 0; t < T; ++t) {
    scalar_t* out = hs + t * H;
    if (t > 0) {
      rows_times_wt(out - H, ld, w, out, ld, rows, H, scalar_t(1));
    } else if (h0 != nullptr) {
      rows_times_wt(h0, H, w, out, ld, rows, H, scalar_t(1));
    }
    for (int64_t r = 0; r < rows; ++r) {
      scalar_t* o = out + r * ld;
      // `x < 0 ? 0 : x` keeps NaN as NaN, as torch.relu does.
      for (int64_t j = 0; j < H; ++j) o[j] = o[j] < scalar_t(0) ? scalar_t(0) : o[j];
    }
  }
}

// Backpropagates through time over `rows` batch rows (all pointers already offset to the first
// row). Writes da_t into da for t >= 1 and da_0 into da0, leaving da[:, 0] zero so that the
// weight gradient can pair da row r with hs row r - 1 in one GEMM. carry is rows x H scratch.
// grad_h0 (nullptr when there is no h0) receives da_0 @ w.
template <typename scalar_t>
void backward_rows(const scalar_t* grad_hs, const scalar_t* hs, const scalar_t* w, scalar_t* da,
                   scalar_t* da0, scalar_t* carry, scalar_t* grad_h0, int64_t rows, int64_t T,
                   int64_t H) {
  const int64_t ld = T * H;
  for (int64_t t = T - 1; t >= 0; --t) {
    const bool has_carry = t < T - 1;
    scalar_t* da_t = t > 0 ? da + t * H : da0;
    const int64_t ld_da = t > 0 ? ld : H;
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* g = grad_hs + r * ld + t * H;
      const scalar_t* h = hs + r * ld + t * H;
      const scalar_t* c = carry + r * H;
      scalar_t* d = da_t + r * ld_da;
      // relu's gradient as torch computes it from the output: zero where h <= 0 (NaN passes).
      if (has_carry) {
        for (int64_t j = 0; j < H; ++j) d[j] = h[j] <= scalar_t(0) ? scalar_t(0) : g[j] + c[j];
      } else {
        for (int64_t j = 0; j < H; ++j) d[j] = h[j] <= scalar_t(0) ? scalar_t(0) : g[j];
      }
    }
    if (t > 0) {
      rows_times_w(da_t, ld_da, w, carry, H, rows, H);
    } else if (grad_h0 != nullptr) {
      rows_times_w(da_t, ld_da, w, grad_h0, H, rows, H);
    }
  }
  for (int64_t r = 0; r < rows; ++r) std::fill_n(da + r * ld, H, scalar_t(0));
}

template <typename scalar_t, typename index_t>
void forward_impl(const index_t* tokens, const scalar_t* emb, const scalar_t* w, const scalar_t* b,
                  const scalar_t* h0, scalar_t* p, scalar_t* hs, int64_t B, int64_t T, int64_t V,
                  int64_t H) {
  for (int64_t v = 0; v < V; ++v) std::copy_n(b, H, p + v * H);
  rows_times_wt(emb, H, w, p, H, V, H, scalar_t(1));

  at::parallel_for(0, B * T, std::max<int64_t>(1, 4096 / H), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) std::copy_n(p + tokens[i] * H, H, hs + i * H);
  });
  at::parallel_for(0, B, batch_grain(T, H), [&](int64_t b0, int64_t b1) {
    forward_rows(hs + b0 * T * H, h0 == nullptr ? nullptr : h0 + b0 * H, w, b1 - b0, T, H);
  });
}

// True when every row r of x (rows of length H, row r starting at r * stride + offset) for which
// selected(r) holds is free of NaN and Inf.
template <typename scalar_t, typename Selected>
bool all_finite_rows(const scalar_t* x, int64_t H, int64_t n_rows, Selected selected,
                     int64_t stride = -1, int64_t offset = 0) {
  if (stride < 0) stride = H;
  for (int64_t r = 0; r < n_rows; ++r) {
    if (!selected(r)) continue;
    const scalar_t* row = x + r * stride + offset;
    for (int64_t j = 0; j < H; ++j)
      if (!std::isfinite(row[j])) return false;
  }
  return true;
}

template <typename scalar_t, typename index_t>
void backward_impl(const scalar_t* grad_hs, const index_t* tokens, const scalar_t* emb,
                   const scalar_t* w, const scalar_t* hs, const scalar_t* h0, scalar_t* da,
                   scalar_t* da0, scalar_t* carry, scalar_t* d_p, scalar_t* d_emb, scalar_t* d_w,
                   scalar_t* d_b, scalar_t* d_h0, int64_t B, int64_t T, int64_t V, int64_t H) {
  at::parallel_for(0, B, batch_grain(T, H), [&](int64_t b0, int64_t b1) {
    backward_rows(grad_hs + b0 * T * H, hs + b0 * T * H, w, da + b0 * T * H, da0 + b0 * H,
                  carry + b0 * H, h0 == nullptr ? nullptr : d_h0 + b0 * H, b1 - b0, T, H);
  });

  // dP[v] = sum of da over the positions holding token v (da[:, 0] lives in da0).
  std::vector<char> used(V, 0);
  std::fill_n(d_p, V * H, scalar_t(0));
  for (int64_t i = 0; i < B * T; ++i) {
    const scalar_t* src = i % T == 0 ? da0 + (i / T) * H : da + i * H;
    scalar_t* dst = d_p + tokens[i] * H;
    used[tokens[i]] = 1;
    for (int64_t j = 0; j < H; ++j) dst[j] += src[j];
  }
  std::fill_n(d_b, H, scalar_t(0));
  for (int64_t v = 0; v < V; ++v)
    for (int64_t j = 0; j < H; ++j) d_b[j] += d_p[v * H + j];

  // NaN/Inf safety. The GEMMs below also run over terms that are mathematically absent: rows of
  // tokens the batch never reads (dP = 0) and pairs across batch rows (da zeroed). 0 * x is 0
  // for finite x but NaN for NaN/Inf, so a non-finite value there would leak into gradients
  // that the reference loop (and nn.Embedding) leave untouched. The checks cost O((V + B) * H);
  // the slower exact paths run only when such a value is actually present.
  rows_times_w(d_p, H, w, d_emb, H, V, H);
  for (int64_t v = 0; v < V; ++v)  // an absent token's gradient is 0 even for a non-finite weight
    if (!used[v]) std::fill_n(d_emb + v * H, H, scalar_t(0));

  // dW = sum_{t>=1} da_t^T h_{t-1} + da_0^T h0 + dP^T emb.
  if (all_finite_rows(emb, H, V, [&](int64_t v) { return !used[v]; })) {
    accumulate_at_b(d_p, H, emb, H, V, H, scalar_t(0), d_w);
  } else {  // a non-finite row of an absent token: multiply the used rows only
    std::vector<scalar_t> dp_used, emb_used;
    for (int64_t v = 0; v < V; ++v) {
      if (!used[v]) continue;
      dp_used.insert(dp_used.end(), d_p + v * H, d_p + (v + 1) * H);
      emb_used.insert(emb_used.end(), emb + v * H, emb + (v + 1) * H);
    }
    const int64_t n_used = static_cast<int64_t>(dp_used.size()) / H;
    accumulate_at_b(dp_used.data(), H, emb_used.data(), H, n_used, H, scalar_t(0), d_w);
  }
  // Row i of da pairs with row i-1 of hs in one GEMM; the pairs that cross from one batch row
  // into the next have da zeroed (see backward_rows). That zero meets the previous batch row's
  // last state: if one of those states is non-finite, pair each batch row with itself instead.
  const bool boundaries_finite =
      all_finite_rows(hs, H, B, [&](int64_t r) { return r > 0; }, T * H, -H);
  if (boundaries_finite) {
    if (B * T > 1) accumulate_at_b(da + H, H, hs, H, B * T - 1, H, scalar_t(1), d_w);
  } else if (T > 1) {
    for (int64_t r = 0; r < B; ++r)
      accumulate_at_b(da + r * T * H + H, H, hs + r * T * H, H, T - 1, H, scalar_t(1), d_w);
  }
  if (h0 != nullptr) accumulate_at_b(da0, H, h0, H, B, H, scalar_t(1), d_w);
}

at::Tensor elman_rnn_cpu(const at::Tensor& tokens_in, const at::Tensor& emb_in,
                         const at::Tensor& weight_in, const at::Tensor& bias_in,
                         const std::optional<at::Tensor>& h0_in) {
  check_forward_args(tokens_in, emb_in, weight_in, bias_in, h0_in);
  const auto tokens = tokens_in.contiguous();
  const auto emb = emb_in.contiguous();
  const auto weight = weight_in.contiguous();
  const auto bias = bias_in.contiguous();
  const auto h0 = h0_in.has_value() ? h0_in->contiguous() : at::Tensor();
  const int64_t B = tokens.size(0), T = tokens.size(1), V = emb.size(0), H = emb.size(1);

  auto hs = at::empty({B, T, H}, emb.options());
  auto p = at::empty({V, H}, emb.options());
  AT_DISPATCH_INDEX_TYPES(tokens.scalar_type(), "elman_rnn_cpu_tokens", [&] {
    check_token_range(tokens.const_data_ptr<index_t>(), B, T, V);
    AT_DISPATCH_FLOATING_TYPES(emb.scalar_type(), "elman_rnn_cpu", [&] {
      forward_impl<scalar_t, index_t>(
          tokens.const_data_ptr<index_t>(), emb.const_data_ptr<scalar_t>(),
          weight.const_data_ptr<scalar_t>(), bias.const_data_ptr<scalar_t>(),
          h0.defined() ? h0.const_data_ptr<scalar_t>() : nullptr, p.mutable_data_ptr<scalar_t>(),
          hs.mutable_data_ptr<scalar_t>(), B, T, V, H);
    });
  });
  return hs;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> elman_rnn_backward_cpu(
    const at::Tensor& grad_hs_in, const at::Tensor& tokens_in, const at::Tensor& emb_in,
    const at::Tensor& weight_in, const at::Tensor& hs_in, const std::optional<at::Tensor>& h0_in) {
  check_backward_args(grad_hs_in, tokens_in, emb_in, weight_in, hs_in, h0_in);
  const auto grad_hs = grad_hs_in.contiguous();
  const auto tokens = tokens_in.contiguous();
  const auto emb = emb_in.contiguous();
  const auto weight = weight_in.contiguous();
  const auto hs = hs_in.contiguous();
  const auto h0 = h0_in.has_value() ? h0_in->contiguous() : at::Tensor();
  const int64_t B = tokens.size(0), T = tokens.size(1), V = emb.size(0), H = emb.size(1);

  const auto opts = emb.options();
  auto da = at::empty({B, T, H}, opts);
  auto da0 = at::empty({B, H}, opts);
  auto carry = at::empty({B, H}, opts);
  auto d_p = at::empty({V, H}, opts);
  auto d_emb = at::empty({V, H}, opts);
  auto d_w = at::empty({H, H}, opts);
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
          carry.mutable_data_ptr<scalar_t>(), d_p.mutable_data_ptr<scalar_t>(),
          d_emb.mutable_data_ptr<scalar_t>(), d_w.mutable_data_ptr<scalar_t>(),
          d_b.mutable_data_ptr<scalar_t>(), d_h0.mutable_data_ptr<scalar_t>(), B, T, V, H);
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
