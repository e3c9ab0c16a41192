// Meta kernels of rnnfast::elman_rnn and its backward: what torch.compile and torch.export
// trace with (FakeTensor runs them). They call the same checks as the CPU and CUDA kernels
// (checks.cpp), so a bad shape, dtype or device is refused while tracing with the eager
// message, and only add the outputs' metadata, symbolic where the sizes are. Token ids in range
// are checked by the real kernels only: that check reads data.
#include "elman_rnn.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

namespace rnnfast {
namespace {

at::Tensor elman_rnn_meta(const at::Tensor& tokens, const at::Tensor& emb_weight,
                          const at::Tensor& weight, const at::Tensor& bias,
                          const std::optional<at::Tensor>& h0) {
  check_forward_args(tokens, emb_weight, weight, bias, h0);
  return at::empty_symint({tokens.sym_size(0), tokens.sym_size(1), emb_weight.sym_size(1)},
                          emb_weight.options());
}

// (d_emb, d_weight, d_bias, d_h0), contiguous as the real kernels return them; d_h0 is zeros
// there without h0, but has the same metadata.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> elman_rnn_backward_meta(
    const at::Tensor& grad_hs, const at::Tensor& tokens, const at::Tensor& emb_weight,
    const at::Tensor& weight, const at::Tensor& hs, const std::optional<at::Tensor>& h0) {
  check_backward_args(grad_hs, tokens, emb_weight, weight, hs, h0);
  const c10::SymInt B = tokens.sym_size(0), V = emb_weight.sym_size(0),
                    H = emb_weight.sym_size(1);
  const auto opts = emb_weight.options();
  return {at::empty_symint({V, H}, opts), at::empty_symint({H, H}, opts),
          at::empty_symint({H}, opts), at::empty_symint({B, H}, opts)};
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnfast, Meta, m) {
  m.impl("elman_rnn", &elman_rnn_meta);
  m.impl("elman_rnn_backward", &elman_rnn_backward_meta);
}

}  // namespace rnnfast
