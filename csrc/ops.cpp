// The one place where rnnfast's op schemas are declared. Kernels live beside it: CPU in
// elman_rnn_cpu.cpp, rnn_layer_cpu.cpp and lm_head_loss_cpu.cpp, CUDA in cuda/, autograd in
// autograd.cpp, Meta (for torch.compile and torch.export) in elman_rnn_meta.cpp,
// lm_head_loss_meta.cpp and rnn_layer_meta.cpp; every kernel checks its arguments with
// checks.cpp.
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(rnnfast, m) {
  // hs[:, t] = relu((hs[:, t-1] + emb_weight[tokens[:, t]]) @ weight^T + bias), hs[:, -1] = h0 or 0.
  m.def("elman_rnn(Tensor tokens, Tensor emb_weight, Tensor weight, Tensor bias, Tensor? h0) -> Tensor");
  // Gradients of elman_rnn w.r.t. (emb_weight, weight, bias, h0); grad_h0 is zeros without h0.
  m.def(
      "elman_rnn_backward(Tensor grad_hs, Tensor tokens, Tensor emb_weight, Tensor weight, "
      "Tensor hs, Tensor? h0) -> (Tensor, Tensor, Tensor, Tensor)");
  // One layer of torch.nn.RNN, one or both directions (layouts and weight order: rnn_layer.h):
  // h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh or relu. batch_sizes (a
  // PackedSequence's) makes input packed; batch_size is the batch (batch_sizes[0] when packed),
  // given so that shapes are known without reading data.
  m.def(
      "rnn_layer(Tensor input, Tensor[] weights, Tensor? hx, Tensor? batch_sizes, "
      "SymInt batch_size, str nonlinearity, bool batch_first, bool bidirectional) -> "
      "(Tensor output, Tensor h_n)");
  // Gradients of rnn_layer w.r.t. (input, weights, hx); grad_hx is zeros without hx. A missing
  // grad_output or grad_h_n reads as zeros. need_grad_input=False skips the dX product (a
  // first layer fed data that takes no gradient) and returns grad_input empty, shape (0,).
  m.def(
      "rnn_layer_backward(Tensor? grad_output, Tensor? grad_h_n, Tensor input, Tensor[] weights, "
      "Tensor? hx, Tensor? batch_sizes, SymInt batch_size, Tensor output, str nonlinearity, "
      "bool batch_first, bool bidirectional, bool need_grad_input=True) -> (Tensor grad_input, "
      "Tensor[] grad_weights, Tensor grad_hx)");
  // logits = hidden @ weight^T + bias; loss = F.cross_entropy(logits, targets), mean over rows.
  // logits (for metrics) take no gradient, and are laid out as their transpose's contiguous
  // storage, strides (1, rows).
  m.def("lm_head_loss(Tensor hidden, Tensor weight, Tensor bias, Tensor targets) -> "
        "(Tensor loss, Tensor logits)");
  // Gradients of lm_head_loss's loss w.r.t. (hidden, weight, bias); the softmax is recomputed
  // from logits.
  m.def(
      "lm_head_loss_backward(Tensor grad_loss, Tensor hidden, Tensor weight, Tensor logits, "
      "Tensor targets) -> (Tensor, Tensor, Tensor)");
}

// Importing rnnfast._C only has to load this library so that the registrations above run; the
// module itself is empty and needs no pybind11.
//
// PyModule_Create2 is the library's only reference to Python. Weak, it resolves to null where no
// Python is loaded, so a C++ program without Python can dlopen the library even with RTLD_NOW
// (to make TorchScript models find the ops); PyInit__C is only ever called by Python.
extern "C" PyObject* PyModule_Create2(PyModuleDef*, int) __attribute__((weak));

extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
