// Meta kernels of rnnfast::rnn_layer and its backward: what torch.compile and torch.export
// trace with (FakeTensor runs them). They call the same checks as the real kernels, so a bad
// shape is refused while tracing with the eager message, and only add the outputs' metadata.
#include "rnn_layer.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <vector>

namespace rnnfast {
namespace {

std::tuple<at::Tensor, at::Tensor> rnn_layer_meta(const at::Tensor& input, at::TensorList weights,
                                                  const std::optional<at::Tensor>& hx,
                                                  const std::optional<at::Tensor>& batch_sizes,
                                                  c10::SymInt batch_size,
                                                  c10::string_view nonlinearity,
                                                  bool batch_first, bool bidirectional) {
  const RnnLayerShape s = check_rnn_layer_args(input, weights, hx, batch_sizes, batch_size,
                                               nonlinearity, batch_first, bidirectional);
  const c10::SymInt DH = s.H * s.D;
  const auto opts = input.options();
  auto output = s.packed ? at::empty_symint({s.N, DH}, opts)
                         : at::empty_symint({s.T, s.B, DH}, opts);
  return {output, at::empty_symint({c10::SymInt(s.D), s.B, s.H}, opts)};
}

std::tuple<at::Tensor, std::vector<at::Tensor>, at::Tensor> rnn_layer_backward_meta(
    const std::optional<at::Tensor>& grad_output, const std::optional<at::Tensor>& grad_h_n,
    const at::Tensor& input, at::TensorList weights, const std::optional<at::Tensor>& hx,
    const std::optional<at::Tensor>& batch_sizes, c10::SymInt batch_size,
    const at::Tensor& output, c10::string_view nonlinearity, bool batch_first,
    bool bidirectional, bool need_grad_input) {
  const RnnLayerShape s =
      check_rnn_layer_backward_args(grad_output, grad_h_n, input, weights, hx, batch_sizes,
                                    batch_size, output, nonlinearity, batch_first, bidirectional);
  std::vector<at::Tensor> grads;
  for (const auto& w : weights) grads.push_back(at::empty_symint(w.sym_sizes(), w.options()));
  auto grad_input = need_grad_input ? at::empty_symint(input.sym_sizes(), input.options())
                                    : at::empty({0}, input.options());
  return {grad_input, grads,
          at::empty_symint({c10::SymInt(s.D), s.B, s.H}, input.options())};
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnfast, Meta, m) {
  m.impl("rnn_layer", &rnn_layer_meta);
  m.impl("rnn_layer_backward", &rnn_layer_backward_meta);
}

}  // namespace rnnfast
