// Host side of the step-wise path (paths.h) for large H: the time loop, one cuBLAS GEMM and
// one fused pointwise kernel per step (stepwise_kernels.cu), then the gradients that need the
// whole sequence.
//
// Forward:  pe = emb W^T once per call (V x H), then per step
//             c = h_{t-1} W^T   (GEMM; skipped at t = 0 without h0)
//             h_t = relu(c + pe[x_t] + bias)   (pointwise)
// Backward: per step t = T-1 .. 0
//             da_t = (h_t > 0) * (grad_hs_t + carry), u_t = h_{t-1} + emb[x_t],
//             d_emb[x_{t+1}] += carry   (pointwise)
//             carry = da_t W   (GEMM: the gradient of u_t, i.e. of h_{t-1} and emb[x_t])
//           then d_emb[x_0] += carry, grad_h0 = carry, and after the loop
//             dW = da^T u (one GEMM over all B*T positions), d_bias = column sum of da.
// The GEMMs accumulate in float32 (float64 for double); 16-bit inputs keep da and u in their
// own dtype so the GEMMs run on tensor cores, and the carry, pe and d_emb in float32.
#include "cublas_gemm.h"
#include "paths.h"

#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sum.h>
#include <c10/cuda/CUDAException.h>

namespace rnnfast::cuda {

at::Tensor forward_stepwise(const at::Tensor& tokens, const at::Tensor& emb,
                            const at::Tensor& weight, const at::Tensor& bias,
                            const at::Tensor& h0) {
  const int64_t B = tokens.size(0), T = tokens.size(1), V = emb.size(0), H = emb.size(1);
  const auto dtype = emb.scalar_type(), acc = acc_type(dtype);
  auto hs = at::empty({B, T, H}, emb.options());
  auto pe = at::empty({V, H}, emb.options().dtype(acc));
  auto c = at::empty({B, H}, emb.options().dtype(acc));
  const auto stream = at::cuda::getCurrentCUDAStream();

  gemm_row_major(Trans::N, Trans::T, V, H, H, emb.const_data_ptr(), H, weight.const_data_ptr(),
                 H, pe.mutable_data_ptr(), H, dtype, acc);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype,
                                  "rnnfast_elman_rnn_stepwise", [&] {
    using acc_s = acc_t<scalar_t>;
    const ForwardProblem<scalar_t> p{
        tokens.const_data_ptr(), tokens.scalar_type() == at::kLong,
        emb.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
        bias.const_data_ptr<scalar_t>(),
        h0.defined() ? h0.const_data_ptr<scalar_t>() : nullptr, B, T, V, H};
    scalar_t* out = hs.mutable_data_ptr<scalar_t>();
    for (int64_t t = 0; t < T; ++t) {
      // h_{t-1}: row b of it is hs[b, t-1], T*H elements from the next row's.
      const scalar_t* prev = t > 0 ? out + (t - 1) * H : p.h0;
      if (prev != nullptr) {
        gemm_row_major(Trans::N, Trans::T, B, H, H, prev, t > 0 ? T * H : H, p.weight, H,
                       c.mutable_data_ptr(), H, dtype, acc);
      }
      launch_step_forward(p, t, prev != nullptr ? c.const_data_ptr<acc_s>() : nullptr,
                          pe.const_data_ptr<acc_s>(), out, stream);
    }
  });
  return hs;
}

Grads backward_stepwise(const at::Tensor& grad_hs, const at::Tensor& tokens,
                        const at::Tensor& emb, const at::Tensor& weight, const at::Tensor& hs,
                        const at::Tensor& h0) {
  const int64_t B = tokens.size(0), T = tokens.size(1), V = emb.size(0), H = emb.size(1);
  const auto dtype = emb.scalar_type(), acc = acc_type(dtype);
  const auto opts = emb.options();
  auto da = at::empty({B, T, H}, opts);
  auto u = at::empty({B, T, H}, opts);
  auto carry = at::empty({B, H}, opts.dtype(acc));
  auto d_emb = at::empty({V, H}, opts.dtype(acc));
  auto d_w = at::empty({H, H}, opts);
  auto grad_h0 = at::empty({B, H}, opts);
  const auto stream = at::cuda::getCurrentCUDAStream();
  C10_CUDA_CHECK(cudaMemsetAsync(d_emb.mutable_data_ptr(), 0, d_emb.nbytes(), stream));

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype,
                                  "rnnfast_elman_rnn_backward_stepwise", [&] {
    using acc_s = acc_t<scalar_t>;
    const BackwardProblem<scalar_t> p{
        grad_hs.const_data_ptr<scalar_t>(), hs.const_data_ptr<scalar_t>(),
        tokens.const_data_ptr(), tokens.scalar_type() == at::kLong,
        emb.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
        h0.defined() ? h0.const_data_ptr<scalar_t>() : nullptr, B, T, V, H};
    scalar_t* da_p = da.mutable_data_ptr<scalar_t>();
    acc_s* carry_p = carry.mutable_data_ptr<acc_s>();
    acc_s* d_emb_p = d_emb.mutable_data_ptr<acc_s>();
    for (int64_t t = T - 1; t >= 0; --t) {
      launch_step_backward(p, t, t == T - 1 ? nullptr : carry_p, da_p,
                           u.mutable_data_ptr<scalar_t>(), d_emb_p, stream);
      gemm_row_major(Trans::N, Trans::N, B, H, H, da_p + t * H, T * H, p.weight, H, carry_p, H,
                     dtype, acc);
    }
    launch_backward_finish(p, carry_p, d_emb_p, grad_h0.mutable_data_ptr<scalar_t>(), stream);
  });
  // dW = sum over all positions of da_t^T u_t: one GEMM, (H x B*T) @ (B*T x H).
  gemm_row_major(Trans::T, Trans::N, H, H, B * T, da.const_data_ptr(), H, u.const_data_ptr(), H,
                 d_w.mutable_data_ptr(), H, dtype, dtype);
  // Column sum of da; torch accumulates 16-bit sums in float32.
  auto d_b = at::sum(da.view({B * T, H}), 0);
  return {dtype == acc ? d_emb : d_emb.to(dtype), d_w, d_b, grad_h0};
}

}  // namespace rnnfast::cuda
