// Meta kernels of rnnfast::lm_head_loss and its backward: what torch.compile and torch.export
// trace with (FakeTensor runs them). They call the same checks as the CPU kernel (checks.cpp),
// so a bad shape, dtype or device is refused while tracing with the eager message, and only add
// the outputs' metadata, symbolic where the sizes are. Targets in range are checked by the CPU
// kernel only: that check reads data.
#include "lm_head_loss.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_strided.h>
#include <torch/library.h>

namespace rnnfast {
namespace {

// (loss, logits), logits laid out as the CPU kernel lays them out: logits.t() is contiguous,
// strides (1, rows) (see lm_head_loss_cpu.cpp).
std::tuple<at::Tensor, at::Tensor> lm_head_loss_meta(const at::Tensor& hidden,
                                                     const at::Tensor& weight,
                                                     const at::Tensor& bias,
                                                     const at::Tensor& targets) {
  check_lm_head_loss_args(hidden, weight, bias, targets);
  const c10::SymInt N = hidden.sym_size(0), V = weight.sym_size(0);
  const auto opts = hidden.options();
  return {at::empty_symint({}, opts),
          at::empty_strided_symint({N, V}, {c10::SymInt(1), N}, opts)};
}

// (d_hidden, d_weight, d_bias), contiguous as the CPU kernel returns them.
std::tuple<at::Tensor, at::Tensor, at::Tensor> lm_head_loss_backward_meta(
    const at::Tensor& grad_loss, const at::Tensor& hidden, const at::Tensor& weight,
    const at::Tensor& logits, const at::Tensor& targets) {
  check_lm_head_loss_backward_args(grad_loss, hidden, weight, logits, targets);
  const auto opts = hidden.options();
  return {at::empty_symint(hidden.sym_sizes(), opts), at::empty_symint(weight.sym_sizes(), opts),
          at::empty_symint({weight.sym_size(0)}, opts)};
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnfast, Meta, m) {
  m.impl("lm_head_loss", &lm_head_loss_meta);
  m.impl("lm_head_loss_backward", &lm_head_loss_backward_meta);
}

}  // namespace rnnfast
