// Shared declarations for the rnnfast::lm_head_loss kernels.
//
// The op is the language model's head and loss in one: for hidden (N, H), weight (V, H),
// bias (V) and targets (N),
//   logits = hidden @ weight^T + bias                                  (N, V)
//   loss   = mean_n (logsumexp(logits[n]) - logits[n, targets[n]])     (0-dim)
// which is F.cross_entropy(F.linear(hidden, weight, bias), targets).
#pragma once

#include <ATen/core/Tensor.h>

namespace rnnfast {

// Validates shapes, dtypes and devices (CPU only: there is no CUDA kernel). Target values are
// checked by the kernel itself: that check reads data.
void check_lm_head_loss_args(const at::Tensor& hidden, const at::Tensor& weight,
                             const at::Tensor& bias, const at::Tensor& targets);

void check_lm_head_loss_backward_args(const at::Tensor& grad_loss, const at::Tensor& hidden,
                                      const at::Tensor& weight, const at::Tensor& logits,
                                      const at::Tensor& targets);

}  // namespace rnnfast
