// Shared declarations for rnnfast::rnn_layer, one layer (one or both directions) of an Elman RNN
// over dense inputs, as torch.nn.RNN computes it:
//   h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   act = tanh or relu,
// run by the recurrence core (recurrence.h) with U = X W_ih^T + (b_ih + b_hh), one GEMM over all
// steps.
//
// Layouts. input is (T, B, I), or (B, T, I) with batch_first, or packed (N, I) with batch_sizes
// (a PackedSequence's data). output is time-major (T, B, D * H) whatever the input (as nn.RNN's
// storage is: a batch_first caller gets its transpose), or packed (N, D * H), direction d in
// columns [d H, (d + 1) H). h_n and hx are (D, B, H). weights are nn.RNN's of one layer, in its
// order: (w_ih, w_hh[, b_ih, b_hh]) per direction, forward then reverse.
#pragma once

#include "activation.h"

#include <ATen/core/Tensor.h>
#include <c10/core/SymInt.h>
#include <c10/util/string_view.h>

#include <optional>

namespace rnnfast {

// What the arguments of either op say about the problem (symbolic under torch.compile).
struct RnnLayerShape {
  c10::SymInt T, B, N, I, H;  // steps, batch rows, input rows (T * B unless packed), sizes
  int64_t D;                  // directions
  bool has_biases, packed;
  Activation act;
};

// Validates shapes, dtypes and devices (and what needs no data of batch_sizes); every kernel,
// the Meta ones included, calls it, so the same input is refused with the same message eagerly
// and while tracing. The contents of batch_sizes are checked by the real kernels
// (check_batch_sizes: that check reads data).
RnnLayerShape check_rnn_layer_args(const at::Tensor& input, at::TensorList weights,
                                   const std::optional<at::Tensor>& hx,
                                   const std::optional<at::Tensor>& batch_sizes,
                                   const c10::SymInt& batch_size, c10::string_view nonlinearity,
                                   bool batch_first, bool bidirectional);

// The backward's arguments: the forward's, and output and the incoming gradients shaped as the
// forward's outputs.
RnnLayerShape check_rnn_layer_backward_args(
    const std::optional<at::Tensor>& grad_output, const std::optional<at::Tensor>& grad_h_n,
    const at::Tensor& input, at::TensorList weights, const std::optional<at::Tensor>& hx,
    const std::optional<at::Tensor>& batch_sizes, const c10::SymInt& batch_size,
    const at::Tensor& output, c10::string_view nonlinearity, bool batch_first,
    bool bidirectional);

// batch_sizes must describe N rows of batch_size sequences sorted longest first: each entry in
// [1, batch_size], non-increasing, the first equal to batch_size, the sum N.
void check_batch_sizes(const at::Tensor& batch_sizes, int64_t batch_size, int64_t N);

}  // namespace rnnfast
