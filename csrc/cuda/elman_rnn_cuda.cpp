// CUDA kernels of rnnfast::elman_rnn and rnnfast::elman_rnn_backward: validation, device and
// stream, token-error reporting, and the choice between the persistent and the step-wise
// path (paths.h, plan.cpp).
//
// Same math, signature and gradients as the CPU kernel (../elman_rnn_cpu.cpp); float32 and
// float64, and on CUDA also float16/bfloat16 with float32 accumulation. Everything runs on the
// current stream, nothing waits for the device, and nothing is allocated outside torch's
// caching allocator, so the ops can be captured in CUDA graphs and traced by torch.compile.
#include "../elman_rnn.h"
#include "paths.h"
#include "token_error.h"

#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

namespace rnnfast {
namespace {

at::Tensor elman_rnn_cuda(const at::Tensor& tokens_in, const at::Tensor& emb_in,
                          const at::Tensor& weight_in, const at::Tensor& bias_in,
                          const std::optional<at::Tensor>& h0_in) {
  check_forward_args(tokens_in, emb_in, weight_in, bias_in, h0_in);
  const c10::cuda::CUDAGuard device_guard(emb_in.device());
  cuda::raise_pending_token_error();
  const auto [tokens, emb, weight, bias, h0] =
      contiguous_inputs(tokens_in, emb_in, weight_in, bias_in, h0_in);
  const int64_t B = tokens.size(0), H = emb.size(1);

  const auto plan = cuda::choose_kernels(B, H, emb.scalar_type());
  auto hs = plan.has_value() ? cuda::forward_persistent(*plan, tokens, emb, weight, bias, h0)
                             : cuda::forward_stepwise(tokens, emb, weight, bias, h0);
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
  const int64_t B = tokens.size(0), H = emb.size(1);

  const auto plan = cuda::choose_kernels(B, H, emb.scalar_type());
  auto grads = plan.has_value()
                   ? cuda::backward_persistent(*plan, grad_hs, tokens, emb, weight, hs, h0)
                   : cuda::backward_stepwise(grad_hs, tokens, emb, weight, hs, h0);
  cuda::raise_pending_token_error();
  return grads;
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnfast, CUDA, m) {
  m.impl("elman_rnn", &elman_rnn_cuda);
  m.impl("elman_rnn_backward", &elman_rnn_backward_cuda);
}

}  // namespace rnnfast
