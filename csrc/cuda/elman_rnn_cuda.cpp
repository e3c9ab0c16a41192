// CUDA kernels of rnnfast::elman_rnn and rnnfast::elman_rnn_backward: validation, device and
// stream, token-error reporting, the choice between the persistent and the step-wise path
// (paths.h, plan.cpp), and the tensors that the time loops (time_loops.h) run on.
//
// Same math, signature and gradients as the CPU kernel (../elman_rnn_cpu.cpp); float32 and
// float64, and on CUDA also float16/bfloat16 with float32 accumulation. Everything runs on the
// current stream, nothing waits for the device, and nothing is allocated outside torch's
// caching allocator, so the ops can be captured in CUDA graphs and traced by torch.compile.
#include "../elman_rnn.h"
#include "cuda_device_ops.h"
#include "paths.h"
#include "time_loops.h"
#include "token_error.h"

#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

namespace rnnfast {
namespace {

template <typename scalar_t>
const scalar_t* optional_ptr(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<scalar_t>() : nullptr;
}

at::Tensor elman_rnn_cuda(const at::Tensor& tokens_in, const at::Tensor& emb_in,
                          const at::Tensor& weight_in, const at::Tensor& bias_in,
                          const std::optional<at::Tensor>& h0_in) {
  check_forward_args(tokens_in, emb_in, weight_in, bias_in, h0_in);
  const c10::cuda::CUDAGuard device_guard(emb_in.device());
  cuda::raise_pending_token_error();
  const auto [tokens, emb, weight, bias, h0] =
      contiguous_inputs(tokens_in, emb_in, weight_in, bias_in, h0_in);
  const int64_t B = tokens.size(0), T = tokens.size(1), V = emb.size(0), H = emb.size(1);

  const auto plan = cuda::choose_kernels(B, H, emb.scalar_type());
  auto hs = at::empty({B, T, H}, emb.options());
  cuda::CudaDeviceOps dev(emb.device());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, emb.scalar_type(),
                                  "rnnfast_elman_rnn_cuda", [&] {
    const cuda::ForwardProblem<scalar_t> p{
        tokens.const_data_ptr(), tokens.scalar_type() == at::kLong,
        emb.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
        bias.const_data_ptr<scalar_t>(), optional_ptr<scalar_t>(h0), B, T, V, H};
    const cuda::PersistentPlan* plan_ptr = plan ? &*plan : nullptr;
    auto ws = cuda::workspace(cuda::forward_workspace_bytes(plan_ptr, p), emb);
    cuda::forward(plan_ptr, p, cuda::data_or_null(ws), hs.mutable_data_ptr<scalar_t>(), dev);
  });
  // Costs one host read; catches this call's own bad ids whenever its kernels already ran
  // (always under CUDA_LAUNCH_BLOCKING=1).
  cuda::raise_pending_token_error();
  return hs;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> elman_rnn_backward_cuda(
    const at::Tensor& grad_hs_in, const at::Tensor& tokens_in, const at::Tensor& emb_in,
    const at::Tensor& weight_in, const at::Tensor& hs_in, const std::optional<at::Tensor>& h0_in) {
  check_backward_args(grad_hs_in, tokens_in, emb_in, weight_in, hs_in, h0_in);
  // The embedding (and, on the persistent path, bias) gradients are summed with float
  // atomics, whose order varies from run to run; like index_add_, say so when torch is asked
  // for deterministic algorithms.
  at::globalContext().alertNotDeterministic("rnnfast::elman_rnn_backward (CUDA)");
  const c10::cuda::CUDAGuard device_guard(emb_in.device());
  cuda::raise_pending_token_error();
  const auto [grad_hs, tokens, emb, weight, hs, h0] =
      contiguous_inputs(grad_hs_in, tokens_in, emb_in, weight_in, hs_in, h0_in);
  const int64_t B = tokens.size(0), T = tokens.size(1), V = emb.size(0), H = emb.size(1);

  const auto plan = cuda::choose_kernels(B, H, emb.scalar_type());
  auto d_emb = at::empty({V, H}, emb.options());
  auto d_weight = at::empty({H, H}, emb.options());
  auto d_bias = at::empty({H}, emb.options());
  auto grad_h0 = at::empty({B, H}, emb.options());
  cuda::CudaDeviceOps dev(emb.device());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, emb.scalar_type(),
                                  "rnnfast_elman_rnn_backward_cuda", [&] {
    const cuda::BackwardProblem<scalar_t> p{
        grad_hs.const_data_ptr<scalar_t>(), hs.const_data_ptr<scalar_t>(),
        tokens.const_data_ptr(), tokens.scalar_type() == at::kLong,
        emb.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
        optional_ptr<scalar_t>(h0), B, T, V, H};
    const cuda::Gradients<scalar_t> out{
        d_emb.mutable_data_ptr<scalar_t>(), d_weight.mutable_data_ptr<scalar_t>(),
        d_bias.mutable_data_ptr<scalar_t>(), grad_h0.mutable_data_ptr<scalar_t>()};
    const cuda::PersistentPlan* plan_ptr = plan ? &*plan : nullptr;
    auto ws = cuda::workspace(cuda::backward_workspace_bytes(plan_ptr, p), emb);
    cuda::backward(plan_ptr, p, cuda::data_or_null(ws), out, dev);
  });
  cuda::raise_pending_token_error();
  return {d_emb, d_weight, d_bias, grad_h0};
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnfast, CUDA, m) {
  m.impl("elman_rnn", &elman_rnn_cuda);
  m.impl("elman_rnn_backward", &elman_rnn_backward_cuda);
}

}  // namespace rnnfast
