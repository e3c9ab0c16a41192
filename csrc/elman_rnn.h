// Shared declarations for the rnnfast::elman_rnn kernels.
//
// The op computes, for every time step t of a token sequence,
//   h_t = relu((h_{t-1} + emb_weight[tokens[:, t]]) @ weight^T + bias),   h_{-1} = h0 (or 0),
// and returns hs = [h_0, ..., h_{T-1}] with shape (B, T, H).
#pragma once

#include <ATen/core/Tensor.h>
#include <optional>
#include <tuple>

namespace rnnfast {

// Validates shapes, dtypes and devices of the forward arguments. Every kernel calls it, so the
// same input is refused with the same message on every backend. (Token values are checked by
// the kernels themselves: that check reads data.)
void check_forward_args(const at::Tensor& tokens, const at::Tensor& emb_weight,
                        const at::Tensor& weight, const at::Tensor& bias,
                        const std::optional<at::Tensor>& h0);

void check_backward_args(const at::Tensor& grad_hs, const at::Tensor& tokens,
                         const at::Tensor& emb_weight, const at::Tensor& weight,
                         const at::Tensor& hs, const std::optional<at::Tensor>& h0);

// The arguments as the kernels take them: contiguous (they index raw pointers), h0 undefined
// when absent. Every backend's kernel starts from these, after its checks.
struct ForwardInputs {
  at::Tensor tokens, emb, weight, bias, h0;
};
struct BackwardInputs {
  at::Tensor grad_hs, tokens, emb, weight, hs, h0;
};

inline at::Tensor contiguous_or_undefined(const std::optional<at::Tensor>& t) {
  return t.has_value() ? t->contiguous() : at::Tensor();
}

inline ForwardInputs contiguous_inputs(const at::Tensor& tokens, const at::Tensor& emb_weight,
                                       const at::Tensor& weight, const at::Tensor& bias,
                                       const std::optional<at::Tensor>& h0) {
  return {tokens.contiguous(), emb_weight.contiguous(), weight.contiguous(), bias.contiguous(),
          contiguous_or_undefined(h0)};
}

inline BackwardInputs contiguous_inputs(const at::Tensor& grad_hs, const at::Tensor& tokens,
                                        const at::Tensor& emb_weight, const at::Tensor& weight,
                                        const at::Tensor& hs,
                                        const std::optional<at::Tensor>& h0) {
  return {grad_hs.contiguous(), tokens.contiguous(), emb_weight.contiguous(),
          weight.contiguous(),  hs.contiguous(),     contiguous_or_undefined(h0)};
}

}  // namespace rnnfast
