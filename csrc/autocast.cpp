// Autocast for rnnfast::elman_rnn and rnnfast::rnn_layer: both run in float32 under
// torch.autocast.
//
// Why cast up rather than run in bfloat16/float16: the recurrence feeds every state into the
// next one, so rounding the carried state to 8 (bf16) or 11 (fp16) mantissa bits at each of T
// steps compounds; the CPU kernels exist in float32/float64 only. This is autocast's own
// "float32 list" policy (as for softmax or layer_norm): lower-precision floating inputs are
// cast to float32, float64 inputs are left alone, and the output (hs) is float32. Layers around
// the op (h_o, a Linear) still run in the autocast dtype.
//
// The casts happen above the Autograd key, so autograd records them and gradients flow back to
// inputs of any dtype; the backward op itself then only ever sees float32 (or float64).
#include <ATen/autocast_mode.h>
#include "op_handles.h"

#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

namespace rnnfast {
namespace {

template <c10::DeviceType device, c10::DispatchKey autocast_key>
at::Tensor elman_rnn_autocast(const at::Tensor& tokens, const at::Tensor& emb_weight,
                              const at::Tensor& weight, const at::Tensor& bias,
                              const std::optional<at::Tensor>& h0) {
  // Below this guard the call skips autocast and goes on to Autograd and the kernels.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key);
  // cached_cast casts only floating tensors that are not float64 (tokens stay integers), and
  // caches the casts of leaf weights for the length of the autocast region, as built-in ops do.
  return elman_rnn_op().call(tokens, at::autocast::cached_cast(at::kFloat, emb_weight, device),
                             at::autocast::cached_cast(at::kFloat, weight, device),
                             at::autocast::cached_cast(at::kFloat, bias, device),
                             at::autocast::cached_cast(at::kFloat, h0, device));
}

// rnnfast.RNN's layers, by the same policy and for the same reason.
template <c10::DeviceType device, c10::DispatchKey autocast_key>
std::tuple<at::Tensor, at::Tensor> rnn_layer_autocast(
    const at::Tensor& input, at::TensorList weights, const std::optional<at::Tensor>& hx,
    const std::optional<at::Tensor>& batch_sizes, c10::SymInt batch_size,
    c10::string_view nonlinearity, bool batch_first, bool bidirectional) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key);
  const auto w = at::autocast::cached_cast(at::kFloat, weights, device);
  return rnn_layer_op().call(at::autocast::cached_cast(at::kFloat, input, device), w,
                             at::autocast::cached_cast(at::kFloat, hx, device), batch_sizes,
                             std::move(batch_size), nonlinearity, batch_first, bidirectional);
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnfast, AutocastCPU, m) {
  m.impl("elman_rnn",
         &elman_rnn_autocast<c10::DeviceType::CPU, c10::DispatchKey::AutocastCPU>);
  m.impl("rnn_layer",
         &rnn_layer_autocast<c10::DeviceType::CPU, c10::DispatchKey::AutocastCPU>);
}

#ifdef RNNFAST_WITH_CUDA
// The same policy on CUDA, although the CUDA kernels also take float16/bfloat16: they store
// each state in the input dtype (common.cuh's round_to), so the compounding above applies.
TORCH_LIBRARY_IMPL(rnnfast, AutocastCUDA, m) {
  m.impl("elman_rnn",
         &elman_rnn_autocast<c10::DeviceType::CUDA, c10::DispatchKey::AutocastCUDA>);
  m.impl("rnn_layer",
         &rnn_layer_autocast<c10::DeviceType::CUDA, c10::DispatchKey::AutocastCUDA>);
}
#endif

}  // namespace rnnfast
