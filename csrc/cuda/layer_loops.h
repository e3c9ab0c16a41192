// rnnfast::rnn_layer's CUDA host code on raw device pointers, without ATen (as time_loops.h is
// for the token op): the input GEMM, each direction's walk through time (a cuBLAS GEMM and one
// pointwise kernel per step, layer_kernels.cu), and the gradients after the walks as large
// GEMMs. rnn_layer_cuda.cpp runs it on a GPU; tests/cuda_emulator runs the same functions on
// the CPU emulator. The math is recurrence.h's, with U = X W_ih^T + (b_ih + b_hh).
//
// Layouts, as the CPU kernel's (../rnn_layer.h): x (N, I) holds the input's rows in its own
// order (time-major (T, B), batch-first (B, T), or packed); out (N, D H) is time-major or packed,
// direction d in columns [d H, (d + 1) H); h0, h_n, grad_h_n and grad_hx are (D, B, H).
#pragma once

#include "device_ops.h"
#include "launch.h"

#include <cstddef>
#include <cstdint>

namespace rnnfast::cuda {

template <typename scalar_t>
struct LayerProblem {
  const scalar_t* x;
  const scalar_t* w_ih;       // (D H, I): each direction's weight_ih, stacked
  const scalar_t* bias;       // (D H): b_ih + b_hh of each direction, or null
  const scalar_t* w_hh[2];    // (H, H) of each direction
  const scalar_t* h0;         // or null: start from zeros
  const int64_t* batch_sizes; // host memory, T entries (packed input), or null
  int64_t T, B, N, I, H, D;
  bool batch_first;           // x is (B, T, I) (never with batch_sizes)
  bool tanh;                  // else relu
};

// The backward's inputs besides the forward's, and its outputs (the weights' gradients in
// nn.RNN's order of each direction; biases' null without biases).
template <typename scalar_t>
struct LayerGradients {
  const scalar_t* out;        // the forward's output
  const scalar_t* grad_out;   // or null: no gradient reached the output
  const scalar_t* grad_h_n;   // or null
  scalar_t* grad_x;           // (N, I), or null: not asked for
  scalar_t* w_ih[2];
  scalar_t* w_hh[2];
  scalar_t* b_ih[2];
  scalar_t* b_hh[2];
  scalar_t* grad_hx;          // zeros without h0
};

// The workspace is device memory of at least *_workspace_bytes for the same problem; nothing
// in it is read before it is written.
template <typename scalar_t>
size_t layer_forward_workspace_bytes(const LayerProblem<scalar_t>& p);
template <typename scalar_t>
void layer_forward(const LayerProblem<scalar_t>& p, void* workspace, scalar_t* out,
                   scalar_t* h_n, DeviceOps& dev);

template <typename scalar_t>
size_t layer_backward_workspace_bytes(const LayerProblem<scalar_t>& p);
template <typename scalar_t>
void layer_backward(const LayerProblem<scalar_t>& p, const LayerGradients<scalar_t>& g,
                    void* workspace, DeviceOps& dev);

}  // namespace rnnfast::cuda
