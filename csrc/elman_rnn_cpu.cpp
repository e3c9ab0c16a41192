// CPU kernels for rnnfast::elman_rnn (the notebook's token cell) and its backward: the
// recurrence core (recurrence.h) with U_t = P[x_t], gathered rows of P = emb_weight W^T + b.
//
// Forward:  P once per call (V x H), then the core's walk; hs is batch-major (B, T, H).
// Backward: the core's walk gives da_t = dL/da_t (into a (B, T, H) buffer), dL/dh0 and
//           sum_t da_t^T h_{t-1}; then, as large products after the time loop:
//           dP = index_add(da by token)      dbias = sum_v dP[v]
//           demb = dP W                      dweight += dP^T emb_weight.
#include "elman_rnn.h"
#include "pointwise.h"
#include "recurrence.h"
#include "step_gemm.h"

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <cmath>
#include <numeric>
#include <vector>

namespace rnnfast {
namespace {

template <typename index_t>
void check_token_range(const index_t* tokens, int64_t B, int64_t T, int64_t V) {
  for (int64_t i = 0; i < B * T; ++i) {
    const int64_t v = static_cast<int64_t>(tokens[i]);
    TORCH_CHECK_INDEX(v >= 0 && v < V,
                      "rnnfast.elman_rnn: tokens must lie in [0, vocab_size) = [0, ", V,
                      "), found ", v, " at position (", i / T, ", ", i % T, ")");
  }
}

// hs, grad_hs and da are batch-major (B, T, H): row r of step t is row r * T + t.
std::vector<int64_t> batch_major_steps(int64_t T) {
  std::vector<int64_t> first(T);
  std::iota(first.begin(), first.end(), int64_t{0});
  return first;
}

template <typename T>
bool finite_row(const T* row, int64_t H) {
  for (int64_t j = 0; j < H; ++j)
    if (!std::isfinite(row[j])) return false;
  return true;
}

template <typename scalar_t, typename index_t>
void forward_impl(const index_t* tokens, const scalar_t* emb, const scalar_t* w, const scalar_t* b,
                  const scalar_t* h0, scalar_t* wt_scratch, scalar_t* p, scalar_t* steps,
                  int64_t* offsets, scalar_t* hs, int64_t B, int64_t T, int64_t V, int64_t H) {
  for (int64_t i = 0; i < B * T; ++i) offsets[i] = static_cast<int64_t>(tokens[i]) * H;
  const StepGemm<scalar_t> gemm(w, H, wt_scratch);
  // P = b + E W^T, accumulated onto b: a product of zeros adds nothing, so a -0.0 in b stays.
  for (int64_t v = 0; v < V; ++v) std::copy_n(b, H, p + v * H);
  gemm.times_wt(emb, H, p, H, V, /*accumulate=*/true);
  const recurrence::Walk walk{T, B, H, nullptr, false, Activation::kRelu};
  const auto first = batch_major_steps(T);
  const recurrence::GatheredRows<scalar_t> u{p, offsets, T};
  const recurrence::StepRows<scalar_t> out{hs, first.data(), T, H};
  constexpr auto dtype = c10::CppTypeToScalarType<scalar_t>::value;
  const RowTasks tasks = recurrence_tasks(dtype, B, T, H);
  // The walk multiplies by a packed W^T where that pays (step_gemm.h); P's one product above
  // keeps the plain path.
  const bool pack = packs_weight(dtype, H, T, tasks);
  const StepGemm<scalar_t> packed(w, H, nullptr, pack ? Packed::kWt : Packed::kNone);
  const StepGemm<scalar_t>& walk_gemm = pack ? packed : gemm;
  tasks.run([&](int64_t, int64_t b0, int64_t b1) {
    recurrence::forward_rows(walk, u, out, h0, static_cast<scalar_t*>(nullptr), walk_gemm,
                             steps + 2 * b0 * H, b0, b1);
  });
}

template <typename scalar_t, typename index_t>
void backward_impl(const scalar_t* grad_hs, const index_t* tokens, const scalar_t* emb,
                   const scalar_t* w, const scalar_t* hs, const scalar_t* h0, scalar_t* da,
                   scalar_t* carry, scalar_t* step, scalar_t* d_w_parts, scalar_t* d_p,
                   scalar_t* d_emb, scalar_t* d_w, scalar_t* d_b, scalar_t* d_h0,
                   const RowTasks& tasks, int64_t B, int64_t T, int64_t V, int64_t H) {
  constexpr auto dtype = c10::CppTypeToScalarType<scalar_t>::value;
  // The backward multiplies by W only: the walk by a packed W where that pays (step_gemm.h),
  // demb's one product after it on the plain path.
  const StepGemm<scalar_t> gemm(w, H, nullptr);
  const bool pack = packs_weight(dtype, H, T, tasks);
  const StepGemm<scalar_t> packed(w, H, nullptr, pack ? Packed::kW : Packed::kNone);
  const StepGemm<scalar_t>& walk_gemm = pack ? packed : gemm;
  const recurrence::Walk walk{T, B, H, nullptr, false, Activation::kRelu};
  const auto first = batch_major_steps(T);
  const recurrence::StepRows<const scalar_t> out{hs, first.data(), T, H};
  const recurrence::StepRows<const scalar_t> grad_out{grad_hs, first.data(), T, H};
  const recurrence::StepRows<scalar_t> d_u{da, first.data(), T, H};
  const int64_t n_parts = tasks.count();
  std::fill_n(d_w_parts, n_parts * H * H, scalar_t(0));
  tasks.run([&](int64_t, int64_t b0, int64_t b1) {
    scalar_t* part = d_w_parts + std::min<int64_t>(at::get_thread_num(), n_parts - 1) * H * H;
    recurrence::backward_rows(walk, out, &grad_out, static_cast<const scalar_t*>(nullptr), h0,
                              d_u, d_h0, part, walk_gemm, carry + b0 * H, step + b0 * H, b0,
                              b1);
  });

  // dP[v] = sum of da over the positions holding token v.
  std::vector<char> used(V, 0);
  std::fill_n(d_p, V * H, scalar_t(0));
  for (int64_t i = 0; i < B * T; ++i) {
    pointwise::add_to(d_p + tokens[i] * H, da + i * H, H);
    used[tokens[i]] = 1;
  }
  std::fill_n(d_b, H, scalar_t(0));
  for (int64_t v = 0; v < V; ++v) pointwise::add_to(d_b, d_p + v * H, H);

  // demb = dP W; a token the batch never reads gets exactly 0, even where W is not finite.
  gemm.times_w(d_p, H, d_emb, H, V);
  for (int64_t v = 0; v < V; ++v)
    if (!used[v]) std::fill_n(d_emb + v * H, H, scalar_t(0));

  // dW = (the tasks' shares) + dP^T emb. The product also multiplies the zero rows of dP by the
  // embedding rows the batch never reads, which the reference never forms: 0 * x is 0 unless x
  // is NaN or Inf, so then only the used rows take part.
  std::copy_n(d_w_parts, H * H, d_w);
  for (int64_t k = 1; k < n_parts; ++k) pointwise::add_to(d_w, d_w_parts + k * H * H, H * H);
  bool unused_rows_finite = true;
  for (int64_t v = 0; v < V && unused_rows_finite; ++v)
    unused_rows_finite = used[v] || finite_row(emb + v * H, H);
  if (unused_rows_finite) {
    gemm.add_at_b(d_p, H, emb, H, V, d_w);
  } else {
    for (int64_t v = 0; v < V; ++v)
      if (used[v]) gemm.add_at_b(d_p + v * H, H, emb + v * H, H, 1, d_w);
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
  auto carry = at::empty({B, H}, opts);
  auto step = at::empty({B, H}, opts);
  auto d_p = at::empty({V, H}, opts);
  auto d_emb = at::empty({V, H}, opts);
  auto d_w = at::empty({H, H}, opts);
  const RowTasks tasks = recurrence_tasks(emb.scalar_type(), B, T, H);
  auto d_w_parts = at::empty({tasks.count(), H, H}, opts);
  auto d_b = at::empty({H}, opts);
  auto d_h0 = h0.defined() ? at::empty({B, H}, opts) : at::zeros({B, H}, opts);
  AT_DISPATCH_INDEX_TYPES(tokens.scalar_type(), "elman_rnn_backward_cpu_tokens", [&] {
    check_token_range(tokens.const_data_ptr<index_t>(), B, T, V);
    AT_DISPATCH_FLOATING_TYPES(emb.scalar_type(), "elman_rnn_backward_cpu", [&] {
      backward_impl<scalar_t, index_t>(
          grad_hs.const_data_ptr<scalar_t>(), tokens.const_data_ptr<index_t>(),
          emb.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
          hs.const_data_ptr<scalar_t>(), h0.defined() ? h0.const_data_ptr<scalar_t>() : nullptr,
          da.mutable_data_ptr<scalar_t>(), carry.mutable_data_ptr<scalar_t>(),
          step.mutable_data_ptr<scalar_t>(), d_w_parts.mutable_data_ptr<scalar_t>(),
          d_p.mutable_data_ptr<scalar_t>(), d_emb.mutable_data_ptr<scalar_t>(),
          d_w.mutable_data_ptr<scalar_t>(), d_b.mutable_data_ptr<scalar_t>(),
          d_h0.mutable_data_ptr<scalar_t>(), tasks, B, T, V, H);
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
