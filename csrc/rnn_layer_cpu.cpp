// CPU kernels for rnnfast::rnn_layer (one nn.RNN layer, one or both directions) and its backward:
// the recurrence core (recurrence.h) with a dense U.
//
// Forward:  U = X [W_ih]^T + (b_ih + b_hh) for both directions in one GEMM over all steps
//           (N x D H), then each direction's walk, the reverse one from the end.
// Backward: each direction's walk gives dU = dL/da and dL/dhx; then, as large products after
//           the time loop: dX = dU [W_ih] (only when asked for), dW_ih = dU^T X, dW_hh (one
//           product where the rows allow, else summed by the walks), db_ih = db_hh = the column
//           sums of dU.
#include "recurrence.h"
#include "rnn_layer.h"
#include "step_gemm.h"

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/add.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <optional>
#include <vector>

namespace rnnfast {
namespace {

// Where each step's rows lie: in X, U and dU (the input's layout) and in output (time-major or
// packed), and how many rows are alive at each step (packed: batch_sizes; else all).
struct Layout {
  int64_t T, B, N, H, D;
  std::vector<int64_t> first_in, first_out;
  int64_t stride_in;
  at::Tensor batch_sizes;  // contiguous, checked; alive points into it
  const int64_t* alive;

  Layout(const RnnLayerShape& s, const std::optional<at::Tensor>& sizes, bool batch_first)
      : T(s.T.expect_int()),
        B(s.B.expect_int()),
        N(s.N.expect_int()),
        H(s.H.expect_int()),
        D(s.D),
        first_in(T),
        first_out(T),
        stride_in(1),
        alive(nullptr) {
    if (s.packed) {
      batch_sizes = sizes->contiguous();
      check_batch_sizes(batch_sizes, B, N);
      alive = batch_sizes.const_data_ptr<int64_t>();
      int64_t row = 0;
      for (int64_t t = 0; t < T; ++t) {
        first_in[t] = first_out[t] = row;
        row += alive[t];
      }
      return;
    }
    for (int64_t t = 0; t < T; ++t) {
      first_out[t] = t * B;
      first_in[t] = batch_first ? t : t * B;
    }
    stride_in = batch_first ? T : 1;
  }

  recurrence::Walk walk(int64_t d, Activation act) const {
    return {T, B, H, alive, d == 1, act};
  }
  // Direction d's columns of a (N x D H) buffer in the input's or the output's layout.
  template <typename P>
  recurrence::StepRows<P> in_rows(P* base, int64_t d) const {
    return {base + d * H, first_in.data(), stride_in, D * H};
  }
  template <typename P>
  recurrence::StepRows<P> out_rows(P* base, int64_t d) const {
    return {base + d * H, first_out.data(), 1, D * H};
  }
};

// nn.RNN's parameters of direction d: weights[per * d + k], k = 0..3 (w_ih, w_hh, b_ih, b_hh),
// and each direction's W_hh as the kernels read it (contiguous).
struct Params {
  at::TensorList weights;
  int64_t per;
  std::vector<at::Tensor> w_hh;

  Params(at::TensorList w, const RnnLayerShape& s) : weights(w), per(s.has_biases ? 4 : 2) {
    for (int64_t d = 0; d < s.D; ++d) w_hh.push_back(get(d, 1).contiguous());
  }
  const at::Tensor& get(int64_t d, int64_t k) const { return weights[per * d + k]; }
};

// Most elements of b (K x N) for which small_gemm takes a @ b: 256 KiB in float32, which stays
// in a core's L2 while every block of a's rows streams all of it. A taller b (the weight
// gradients' dU^T X, K = every row of every step) is streamed from memory once per six rows of a,
// while a is read down its columns, a cache line per element: at (64, 64, 256) x 2 layers such
// products made a training step take 51 ms on a 2-core Xeon, and 27 ms from BLAS, whose cache
// blocking runs them at full rate (nn.RNN: 40 ms).
constexpr int64_t kSmallProductMaxB = int64_t{64} << 10;

// out = a @ b (+ bias on every row), out contiguous: the input-side products over all steps. In
// float32 with b as narrow as small_gemm takes (up to 256 columns with AVX-512) and no taller than
// kSmallProductMaxB allows, its kernel split over a's rows (each result one chain over k, so the
// same for any thread count): at (64, 16, 64) a training step took 0.23 ms this way against
// 0.28 ms with oneDNN, whose per-call cost such a product does not repay. Others go to oneDNN
// where it takes them (blas.h), else to BLAS.
// a may be any view (a transposed slice of dU too); b is used as it is when its rows are
// contiguous (a column slice of the states too), else copied, which happens only for the small
// W_ih^T.
void input_product_into(const at::Tensor& a, const at::Tensor& b,
                        const std::optional<at::Tensor>& bias, const at::Tensor& out) {
  const int64_t rows = a.size(0), K = a.size(1), N = b.size(1);
  if (a.scalar_type() != at::kFloat || !small_gemm::supports_product(N) ||
      K * N > kSmallProductMaxB || rows == 0 || K == 0) {
    if (bias.has_value()) out.copy_(bias->expand({rows, N}));
    if (blas::onednn_takes(a, b)) {   // never for an empty product: it takes large ones only
      blas::onednn_matmul(a, b, out, bias.has_value());
    } else {
      out.addmm_(a, b, /*beta=*/bias.has_value() ? 1 : 0);   // beta 0 ignores out's contents
    }
    return;
  }
  const auto m = b.stride(1) == 1 ? b : b.contiguous();
  const auto bias_c = bias.has_value() ? bias->contiguous() : at::Tensor();
  const float* in = a.const_data_ptr<float>();
  const int64_t in_rs = a.stride(0), in_ks = a.stride(1);
  const float* mp = m.const_data_ptr<float>();
  const float* bp = bias_c.defined() ? bias_c.const_data_ptr<float>() : nullptr;
  float* op = out.mutable_data_ptr<float>();
  at::parallel_for(0, rows, rows_grain(K * N), [&](int64_t r0, int64_t r1) {
    small_gemm::product(in + r0 * in_rs, in_rs, in_ks, mp, m.stride(0), op + r0 * N, N, r1 - r0,
                        N, K, /*accumulate=*/false, bp);
  });
}

at::Tensor input_product(const at::Tensor& a, const at::Tensor& b,
                         const std::optional<at::Tensor>& bias = std::nullopt) {
  auto out = at::empty({a.size(0), b.size(1)}, a.options());
  input_product_into(a, b, bias, out);
  return out;
}

// Direction d's dW_hh = sum_t (dL/da_t)^T h_{t-1} (recurrence.h) as one product, for time-major
// unpacked rows: d_u_d (T B x H) and states (T B x D H) hold step t in rows [t B, (t + 1) B).
// Walking forward, steps 1..T-1 pair with the states of steps 0..T-2; walking in reverse, steps
// 0..T-2 with those of 1..T-1. The first step of the walk pairs with hx (nothing without it).
at::Tensor hidden_product_after(const at::Tensor& d_u_d, const at::Tensor& states,
                                const at::Tensor& hx, int64_t d, int64_t B) {
  const int64_t N = d_u_d.size(0), H = d_u_d.size(1);
  const auto h_d = states.narrow(1, d * H, H);
  const int64_t later = d == 0 ? B : 0, earlier = d == 0 ? 0 : B;
  auto d_w = input_product(d_u_d.narrow(0, later, N - B).t(), h_d.narrow(0, earlier, N - B));
  if (hx.defined()) {
    const auto first = d_u_d.narrow(0, d == 0 ? 0 : N - B, B);
    d_w.add_(input_product(first.t(), hx.select(0, d)));
  }
  return d_w;
}

// [W_ih of each direction] stacked: (D H x I).
at::Tensor stacked_w_ih(const Params& p, int64_t D) {
  return D == 1 ? p.get(0, 0).contiguous() : at::cat({p.get(0, 0), p.get(1, 0)});
}

std::tuple<at::Tensor, at::Tensor> rnn_layer_cpu(const at::Tensor& input, at::TensorList weights,
                                                 const std::optional<at::Tensor>& hx_in,
                                                 const std::optional<at::Tensor>& batch_sizes,
                                                 c10::SymInt batch_size,
                                                 c10::string_view nonlinearity, bool batch_first,
                                                 bool bidirectional) {
  const RnnLayerShape s = check_rnn_layer_args(input, weights, hx_in, batch_sizes, batch_size,
                                               nonlinearity, batch_first, bidirectional);
  const Layout lay(s, batch_sizes, batch_first);
  const Params p(weights, s);
  const int64_t T = lay.T, B = lay.B, N = lay.N, H = lay.H, D = lay.D;
  const auto opts = input.options();

  const auto x = input.reshape({N, s.I.expect_int()});
  const auto w_ih = stacked_w_ih(p, D);
  std::optional<at::Tensor> bias;
  if (s.has_biases) {
    std::vector<at::Tensor> b;
    for (int64_t d = 0; d < D; ++d) b.push_back(at::add(p.get(d, 2), p.get(d, 3)));
    bias = D == 1 ? b[0] : at::cat(b);
  }
  // Where U's rows lie as the output's (time-major or packed input), U is formed in the output
  // itself and each step overwrites its rows of U with the states: one large buffer fewer, whose
  // fresh pages cost the OS as much to fault in as a tenth of a (256, 128, 1024) forward.
  auto out = at::empty({N, D * H}, opts);
  const bool u_in_out = s.packed || !batch_first;
  const auto u = u_in_out ? out : at::empty({N, D * H}, opts);
  input_product_into(x, w_ih.t(), bias, u);
  auto h_n = at::empty({D, B, H}, opts);
  const auto hx = hx_in.has_value() ? hx_in->contiguous() : at::Tensor();
  auto wt = at::empty({D, uses_transposed_copy(H) ? H : 0, H}, opts);
  auto steps = at::empty({D, 2 * B, H}, opts);
  const RowTasks tasks = recurrence_tasks(input.scalar_type(), B, T, H, D);
  const bool pack = packs_weight(input.scalar_type(), H, T, tasks);

  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "rnn_layer_cpu", [&] {
    std::vector<StepGemm<scalar_t>> gemm;
    for (int64_t d = 0; d < D; ++d)
      gemm.emplace_back(p.w_hh[d].const_data_ptr<scalar_t>(), H,
                        wt.mutable_data_ptr<scalar_t>() + d * wt.stride(0),
                        pack ? Packed::kWt : Packed::kNone);
    const scalar_t* u_p = u.const_data_ptr<scalar_t>();
    scalar_t* out_p = out.mutable_data_ptr<scalar_t>();
    tasks.run([&](int64_t d, int64_t b0, int64_t b1) {
      const scalar_t* h0 = hx.defined() ? hx.const_data_ptr<scalar_t>() + d * B * H : nullptr;
      recurrence::forward_rows(lay.walk(d, s.act), lay.in_rows(u_p, d), lay.out_rows(out_p, d),
                               h0, h_n.mutable_data_ptr<scalar_t>() + d * B * H, gemm[d],
                               steps.mutable_data_ptr<scalar_t>() + (d * 2 * B + 2 * b0) * H,
                               b0, b1);
    });
  });
  if (!s.packed) out = out.view({T, B, D * H});
  return {out, h_n};
}

std::tuple<at::Tensor, std::vector<at::Tensor>, at::Tensor> rnn_layer_backward_cpu(
    const std::optional<at::Tensor>& grad_output_in, const std::optional<at::Tensor>& grad_h_n_in,
    const at::Tensor& input, at::TensorList weights, const std::optional<at::Tensor>& hx_in,
    const std::optional<at::Tensor>& batch_sizes, c10::SymInt batch_size,
    const at::Tensor& output_in, c10::string_view nonlinearity, bool batch_first,
    bool bidirectional, bool need_grad_input) {
  const RnnLayerShape s = check_rnn_layer_backward_args(
      grad_output_in, grad_h_n_in, input, weights, hx_in, batch_sizes, batch_size, output_in,
      nonlinearity, batch_first, bidirectional);
  const Layout lay(s, batch_sizes, batch_first);
  const Params p(weights, s);
  const int64_t T = lay.T, B = lay.B, N = lay.N, H = lay.H, D = lay.D;
  const auto opts = input.options();

  const auto output = output_in.contiguous();
  const auto grad_output =
      grad_output_in.has_value() ? grad_output_in->contiguous() : at::Tensor();
  const auto grad_h_n = grad_h_n_in.has_value() ? grad_h_n_in->contiguous() : at::Tensor();
  const auto hx = hx_in.has_value() ? hx_in->contiguous() : at::Tensor();

  auto d_u = at::empty({N, D * H}, opts);
  auto grad_hx = hx.defined() ? at::empty({D, B, H}, opts) : at::zeros({D, B, H}, opts);
  const RowTasks tasks = recurrence_tasks(input.scalar_type(), B, T, H, D);
  const bool pack = packs_weight(input.scalar_type(), H, T, tasks);
  // Where dU's rows lie as the states' (time-major, not packed), every step's rows pair with the
  // B rows of the walk's previous step, one step away, and dW_hh is one product over all steps
  // after the walks (hidden_product_after): K = T B rows at once rather than T products of a
  // task's rows, which multiply-add at a fraction of the rate. Elsewhere the walks add them up
  // step by step, one partial sum per task.
  const bool dw_after = !s.packed && !batch_first;
  const int64_t n_parts = dw_after ? 0 : tasks.count();
  auto d_w_hh_parts = at::zeros({n_parts, D, H, H}, opts);
  auto carry = at::empty({D, B, H}, opts);
  auto step = at::empty({D, B, H}, opts);

  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "rnn_layer_backward_cpu", [&] {
    std::vector<StepGemm<scalar_t>> gemm;
    for (int64_t d = 0; d < D; ++d)
      gemm.emplace_back(p.w_hh[d].const_data_ptr<scalar_t>(), H, nullptr,
                        pack ? Packed::kW : Packed::kNone);
    const scalar_t* out_p = output.const_data_ptr<scalar_t>();
    const scalar_t* g_p =
        grad_output.defined() ? grad_output.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* d_u_p = d_u.mutable_data_ptr<scalar_t>();
    tasks.run([&](int64_t d, int64_t b0, int64_t b1) {
      const int64_t state = d * B * H;
      std::optional<recurrence::StepRows<const scalar_t>> grad_out;
      if (g_p != nullptr) grad_out = lay.out_rows(g_p, d);
      scalar_t* part = dw_after ? nullptr
                                : d_w_hh_parts.mutable_data_ptr<scalar_t>() +
                                      (std::min<int64_t>(at::get_thread_num(), n_parts - 1) * D +
                                       d) * H * H;
      recurrence::backward_rows(
          lay.walk(d, s.act), lay.out_rows(out_p, d), grad_out ? &*grad_out : nullptr,
          grad_h_n.defined() ? grad_h_n.const_data_ptr<scalar_t>() + state : nullptr,
          hx.defined() ? hx.const_data_ptr<scalar_t>() + state : nullptr, lay.in_rows(d_u_p, d),
          grad_hx.mutable_data_ptr<scalar_t>() + state, part, gemm[d],
          carry.mutable_data_ptr<scalar_t>() + state + b0 * H,
          step.mutable_data_ptr<scalar_t>() + state + b0 * H, b0, b1);
    });
  });

  // Input-side gradients: large products over all steps.
  const auto x = input.reshape({N, s.I.expect_int()});
  const auto grad_input = need_grad_input
                              ? input_product(d_u, stacked_w_ih(p, D)).view(input.sizes())
                              : at::empty({0}, opts);
  // Each gradient its own tensor (an op's outputs may not alias each other).
  std::vector<at::Tensor> grads;
  for (int64_t d = 0; d < D; ++d) {
    const auto d_u_d = d_u.narrow(1, d * H, H);
    grads.push_back(input_product(d_u_d.t(), x));
    grads.push_back(dw_after ? hidden_product_after(d_u_d, output.view({N, D * H}), hx, d, B)
                             : d_w_hh_parts.select(1, d).sum(0));
    if (s.has_biases) {
      grads.push_back(d_u_d.sum(0));
      grads.push_back(grads.back().clone());
    }
  }
  return {grad_input, grads, grad_hx};
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnfast, CPU, m) {
  m.impl("rnn_layer", &rnn_layer_cpu);
  m.impl("rnn_layer_backward", &rnn_layer_backward_cpu);
}

}  // namespace rnnfast
