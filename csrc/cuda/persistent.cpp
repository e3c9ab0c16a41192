// Host side of the persistent path (paths.h): allocations, the launch, and for the backward
// the weight-gradient GEMM over all positions.
#include "cublas_gemm.h"
#include "paths.h"

#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>

namespace rnnfast::cuda {

at::Tensor forward_persistent(const PersistentPlan& plan, const at::Tensor& tokens,
                              const at::Tensor& emb, const at::Tensor& weight,
                              const at::Tensor& bias, const at::Tensor& h0) {
  const int64_t B = tokens.size(0), T = tokens.size(1), V = emb.size(0), H = emb.size(1);
  auto hs = at::empty({B, T, H}, emb.options());
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, emb.scalar_type(),
                                  "rnnfast_elman_rnn_persistent", [&] {
    const ForwardProblem<scalar_t> p{
        tokens.const_data_ptr(), tokens.scalar_type() == at::kLong,
        emb.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
        bias.const_data_ptr<scalar_t>(),
        h0.defined() ? h0.const_data_ptr<scalar_t>() : nullptr, B, T, V, H};
    launch_forward_persistent(plan, p, hs.mutable_data_ptr<scalar_t>(), stream);
  });
  return hs;
}

Grads backward_persistent(const PersistentPlan& plan, const at::Tensor& grad_hs,
                          const at::Tensor& tokens, const at::Tensor& emb,
                          const at::Tensor& weight, const at::Tensor& hs, const at::Tensor& h0) {
  const int64_t B = tokens.size(0), T = tokens.size(1), V = emb.size(0), H = emb.size(1);
  const auto dtype = emb.scalar_type();
  const auto opts = emb.options();
  const auto acc_opts = opts.dtype(acc_type(dtype));
  const auto stream = at::cuda::getCurrentCUDAStream();

  // The kernel's float32 (float64) results. For float32/float64 inputs d_emb, d_w and d_b are
  // the op's outputs themselves; 16-bit inputs get them narrowed at the end.
  auto da = at::empty({B, T, H}, acc_opts);
  auto u = at::empty({B, T, H}, acc_opts);
  auto d_emb = at::empty({V, H}, acc_opts);
  auto d_b = at::empty({H}, acc_opts);
  auto d_w = at::empty({H, H}, acc_opts);
  auto grad_h0 = at::empty({B, H}, opts);
  // The kernel adds into these with atomics. cudaMemsetAsync, not zero_(): same stream
  // order, a fraction of the host cost.
  C10_CUDA_CHECK(cudaMemsetAsync(d_emb.mutable_data_ptr(), 0, d_emb.nbytes(), stream));
  C10_CUDA_CHECK(cudaMemsetAsync(d_b.mutable_data_ptr(), 0, d_b.nbytes(), stream));

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype,
                                  "rnnfast_elman_rnn_backward_persistent", [&] {
    using acc = acc_t<scalar_t>;
    const BackwardProblem<scalar_t> p{
        grad_hs.const_data_ptr<scalar_t>(), hs.const_data_ptr<scalar_t>(),
        tokens.const_data_ptr(), tokens.scalar_type() == at::kLong,
        emb.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
        h0.defined() ? h0.const_data_ptr<scalar_t>() : nullptr, B, T, V, H};
    launch_backward_persistent(plan, p, da.mutable_data_ptr<acc>(), u.mutable_data_ptr<acc>(),
                               d_emb.mutable_data_ptr<acc>(), d_b.mutable_data_ptr<acc>(),
                               grad_h0.mutable_data_ptr<scalar_t>(), stream);
  });
  // dW = sum over all positions of da_t^T u_t: one GEMM, (H x B*T) @ (B*T x H).
  gemm_row_major(Trans::T, Trans::N, H, H, B * T, da.const_data_ptr(), H, u.const_data_ptr(), H,
                 d_w.mutable_data_ptr(), H, acc_type(dtype), acc_type(dtype));

  if (dtype != at::kHalf && dtype != at::kBFloat16) return {d_emb, d_w, d_b, grad_h0};
  auto out_emb = at::empty({V, H}, opts);
  auto out_w = at::empty({H, H}, opts);
  auto out_b = at::empty({H}, opts);
  AT_DISPATCH_REDUCED_FLOATING_TYPES(dtype, "rnnfast_elman_rnn_backward_narrow", [&] {
    NarrowJob<scalar_t> job{};
    job.src[0] = d_emb.const_data_ptr<float>();
    job.dst[0] = out_emb.mutable_data_ptr<scalar_t>();
    job.n[0] = V * H;
    job.src[1] = d_w.const_data_ptr<float>();
    job.dst[1] = out_w.mutable_data_ptr<scalar_t>();
    job.n[1] = H * H;
    job.src[2] = d_b.const_data_ptr<float>();
    job.dst[2] = out_b.mutable_data_ptr<scalar_t>();
    job.n[2] = H;
    launch_narrow(job, stream);
  });
  return {out_emb, out_w, out_b, grad_h0};
}

}  // namespace rnnfast::cuda
