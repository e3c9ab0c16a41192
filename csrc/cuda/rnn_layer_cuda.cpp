// CUDA kernels of rnnfast::rnn_layer and its backward: the checks the CPU kernels make, the
// tensors, and the host code of layer_loops.h on them (cuBLAS GEMMs and layer_kernels.cu).
// Same signature, layouts and gradients as ../rnn_layer_cpu.cpp; float32 and float64, and
// float16/bfloat16 accumulating in float32. Everything runs on the current stream and nothing
// waits for the device (batch_sizes is a CPU tensor, as a PackedSequence's is).
#include "../rnn_layer.h"
#include "cuda_device_ops.h"
#include "layer_loops.h"

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/add.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <optional>
#include <vector>

namespace rnnfast {
namespace {

// The arguments as layer_loops.h takes them (contiguous, each direction's W_ih stacked and
// its two biases summed), kept alive for the call.
struct LayerInputs {
  at::Tensor x, w_ih, bias, w_hh[2], h0, batch_sizes;

  LayerInputs(const RnnLayerShape& s, const at::Tensor& input, at::TensorList weights,
              const std::optional<at::Tensor>& hx, const std::optional<at::Tensor>& sizes) {
    const int64_t per = s.has_biases ? 4 : 2;
    x = input.contiguous();
    std::vector<at::Tensor> w, b;
    for (int64_t d = 0; d < s.D; ++d) {
      w.push_back(weights[per * d]);
      w_hh[d] = weights[per * d + 1].contiguous();
      if (s.has_biases) b.push_back(at::add(weights[per * d + 2], weights[per * d + 3]));
    }
    w_ih = s.D == 1 ? w[0].contiguous() : at::cat(w);
    if (s.has_biases) bias = s.D == 1 ? b[0] : at::cat(b);
    if (hx.has_value()) h0 = hx->contiguous();
    if (s.packed) {
      batch_sizes = sizes->contiguous();
      check_batch_sizes(batch_sizes, s.B.expect_int(), s.N.expect_int());
    }
  }

  template <typename S>
  cuda::LayerProblem<S> problem(const RnnLayerShape& s, bool batch_first) const {
    const auto ptr = [](const at::Tensor& t) {
      return t.defined() ? t.const_data_ptr<S>() : nullptr;
    };
    return {x.const_data_ptr<S>(),
            w_ih.const_data_ptr<S>(),
            ptr(bias),
            {ptr(w_hh[0]), ptr(w_hh[1])},
            ptr(h0),
            batch_sizes.defined() ? batch_sizes.const_data_ptr<int64_t>() : nullptr,
            s.T.expect_int(),
            s.B.expect_int(),
            s.N.expect_int(),
            s.I.expect_int(),
            s.H.expect_int(),
            s.D,
            batch_first && !s.packed,
            s.act == Activation::kTanh};
  }
};

std::tuple<at::Tensor, at::Tensor> rnn_layer_cuda(const at::Tensor& input, at::TensorList weights,
                                                  const std::optional<at::Tensor>& hx,
                                                  const std::optional<at::Tensor>& batch_sizes,
                                                  c10::SymInt batch_size,
                                                  c10::string_view nonlinearity,
                                                  bool batch_first, bool bidirectional) {
  const RnnLayerShape s = check_rnn_layer_args(input, weights, hx, batch_sizes, batch_size,
                                               nonlinearity, batch_first, bidirectional);
  const c10::cuda::CUDAGuard device_guard(input.device());
  const LayerInputs in(s, input, weights, hx, batch_sizes);
  const int64_t T = s.T.expect_int(), B = s.B.expect_int(), N = s.N.expect_int();
  const int64_t H = s.H.expect_int(), D = s.D;
  auto out = s.packed ? at::empty({N, D * H}, input.options())
                      : at::empty({T, B, D * H}, input.options());
  auto h_n = at::empty({D, B, H}, input.options());
  cuda::CudaDeviceOps dev(input.device());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
                                  "rnnfast_rnn_layer_cuda", [&] {
    const auto p = in.problem<scalar_t>(s, batch_first);
    auto ws = cuda::workspace(cuda::layer_forward_workspace_bytes(p), input);
    cuda::layer_forward(p, cuda::data_or_null(ws), out.mutable_data_ptr<scalar_t>(),
                        h_n.mutable_data_ptr<scalar_t>(), dev);
  });
  return {out, h_n};
}

std::tuple<at::Tensor, std::vector<at::Tensor>, at::Tensor> rnn_layer_backward_cuda(
    const std::optional<at::Tensor>& grad_output, const std::optional<at::Tensor>& grad_h_n,
    const at::Tensor& input, at::TensorList weights, const std::optional<at::Tensor>& hx,
    const std::optional<at::Tensor>& batch_sizes, c10::SymInt batch_size,
    const at::Tensor& output, c10::string_view nonlinearity, bool batch_first,
    bool bidirectional, bool need_grad_input) {
  const RnnLayerShape s = check_rnn_layer_backward_args(
      grad_output, grad_h_n, input, weights, hx, batch_sizes, batch_size, output, nonlinearity,
      batch_first, bidirectional);
  const c10::cuda::CUDAGuard device_guard(input.device());
  const LayerInputs in(s, input, weights, hx, batch_sizes);
  const auto out = output.contiguous();
  const auto g_out = grad_output.has_value() ? grad_output->contiguous() : at::Tensor();
  const auto g_h_n = grad_h_n.has_value() ? grad_h_n->contiguous() : at::Tensor();
  const auto opts = input.options();
  auto grad_input = need_grad_input ? at::empty(input.sizes(), opts) : at::empty({0}, opts);
  std::vector<at::Tensor> grads;
  for (const auto& w : weights) grads.push_back(at::empty(w.sizes(), opts));
  auto grad_hx = at::empty({s.D, s.B.expect_int(), s.H.expect_int()}, opts);
  const int64_t per = s.has_biases ? 4 : 2;
  cuda::CudaDeviceOps dev(input.device());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
                                  "rnnfast_rnn_layer_backward_cuda", [&] {
    using S = scalar_t;
    const auto p = in.problem<S>(s, batch_first);
    cuda::LayerGradients<S> g{out.const_data_ptr<S>(),
                              g_out.defined() ? g_out.const_data_ptr<S>() : nullptr,
                              g_h_n.defined() ? g_h_n.const_data_ptr<S>() : nullptr,
                              need_grad_input ? grad_input.mutable_data_ptr<S>() : nullptr,
                              {}, {}, {nullptr, nullptr}, {nullptr, nullptr},
                              grad_hx.mutable_data_ptr<S>()};
    for (int64_t d = 0; d < s.D; ++d) {
      g.w_ih[d] = grads[per * d].mutable_data_ptr<S>();
      g.w_hh[d] = grads[per * d + 1].mutable_data_ptr<S>();
      if (s.has_biases) {
        g.b_ih[d] = grads[per * d + 2].mutable_data_ptr<S>();
        g.b_hh[d] = grads[per * d + 3].mutable_data_ptr<S>();
      }
    }
    auto ws = cuda::workspace(cuda::layer_backward_workspace_bytes(p), input);
    cuda::layer_backward(p, g, cuda::data_or_null(ws), dev);
  });
  return {grad_input, grads, grad_hx};
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnfast, CUDA, m) {
  m.impl("rnn_layer", &rnn_layer_cuda);
  m.impl("rnn_layer_backward", &rnn_layer_backward_cuda);
}

}  // namespace rnnfast
