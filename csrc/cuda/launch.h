// The interface between the host code (*.cpp, compiled by the C++ compiler with ATen) and the
// kernels (*.cu, compiled by nvcc without ATen's tensor headers, which keeps nvcc fast): plain
// structs of raw pointers and sizes, and one launcher per kernel, explicitly instantiated in
// the .cu files for float, double, c10::Half and c10::BFloat16.
//
// All tensors are contiguous and row-major: tokens (B, T), emb (V, H), weight (H, H),
// bias (H), h0 (B, H) or null, hs and grad_hs (B, T, H).
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace rnnfast::cuda {

// Accumulation type: float for float/half/bfloat16, double for double.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};
template <typename T>
using acc_t = typename Acc<T>::type;

// Applies X to each dtype the kernels are built for: the explicit instantiations of every
// launcher below use this one list.
#define RNNFAST_FOR_EACH_KERNEL_DTYPE(X) X(float) X(double) X(c10::Half) X(c10::BFloat16)

template <typename scalar_t>
struct ForwardProblem {
  const void* tokens;
  bool tokens_int64;
  const scalar_t* emb;
  const scalar_t* weight;
  const scalar_t* bias;
  const scalar_t* h0;  // null: start from zeros
  int64_t B, T, V, H;
};

template <typename scalar_t>
struct BackwardProblem {
  const scalar_t* grad_hs;
  const scalar_t* hs;
  const void* tokens;
  bool tokens_int64;
  const scalar_t* emb;
  const scalar_t* weight;
  const scalar_t* h0;  // null: no h0 (grad_h0 is written as zeros)
  int64_t B, T, V, H;
};

// ---- persistent kernels (small H): one launch walks the whole sequence ---------------------

// Threads per CTA at most, and outputs (batch row, hidden unit) per thread group at most.
constexpr int kPersistentMaxThreads = 512;
constexpr int kPersistentMaxOutputsPerGroup = 4;

// How the persistent kernels are launched; chosen by plan_for (persistent_plan.cpp) for the
// current device's limits (plan_persistent, plan.cpp).
// Each CTA owns `rows_per_cta` batch rows for the whole sequence, keeps weight in shared memory
// (rows padded to `ldw` elements) and the state of its rows in `2 * rows_per_cta * H`
// accumulators after it (double-buffered, at byte offset `state_offset`). Each output of a
// step is one dot product of length H, computed by `group` consecutive lanes; a group does
// `outputs_per_group` of them per step.
struct PersistentPlan {
  int rows_per_cta;
  int threads;
  int group;
  int outputs_per_group;
  int ldw;
  size_t state_offset;
  size_t smem_bytes;
  int64_t ctas;
};

// hs = the forward of the op.
template <typename scalar_t>
void launch_forward_persistent(const PersistentPlan& plan, const ForwardProblem<scalar_t>& p,
                               scalar_t* hs, cudaStream_t stream);

// The sequential part of the backward (recurrence.h's math, in the u_t form of
// persistent_backward.cu), plus what can ride along with it:
//   da (B, T, H): dL/da_t, the gradient of the pre-activation;
//   u (B, T, H): u_t = h_{t-1} + emb[x_t], the input of the matmul (so dW = da^T u);
//   d_emb (V, H) += the gradient of u_t scattered by token (must be zeroed before);
//   d_bias (H) += sum of da (must be zeroed before);
//   grad_h0 (B, H) = gradient of h0, or zeros without h0.
template <typename scalar_t>
void launch_backward_persistent(const PersistentPlan& plan, const BackwardProblem<scalar_t>& p,
                                acc_t<scalar_t>* da, acc_t<scalar_t>* u, acc_t<scalar_t>* d_emb,
                                acc_t<scalar_t>* d_bias, scalar_t* grad_h0, cudaStream_t stream);

// ---- step-wise path (large H): cuBLAS GEMM per step + these fused pointwise kernels --------

// hs[:, t] = relu(c + pe[tokens[:, t]] + bias), c (B, H) = h_{t-1} W^T or null (zeros), pe
// (V, H) = emb W^T.
template <typename scalar_t>
void launch_step_forward(const ForwardProblem<scalar_t>& p, int64_t t, const acc_t<scalar_t>* c,
                         const acc_t<scalar_t>* pe, scalar_t* hs, cudaStream_t stream);

// For step t, with carry (B, H) = da_{t+1} W (null at t = T-1), the gradient of u_{t+1}:
//   d_emb[tokens[:, t+1]] += carry;  da[:, t] = (hs[:, t] > 0) * (grad_hs[:, t] + carry);
//   u[:, t] = h_{t-1} + emb[tokens[:, t]].
template <typename scalar_t>
void launch_step_backward(const BackwardProblem<scalar_t>& p, int64_t t,
                          const acc_t<scalar_t>* carry, scalar_t* da, scalar_t* u,
                          acc_t<scalar_t>* d_emb, cudaStream_t stream);

// After the loop, carry = da_0 W: d_emb[tokens[:, 0]] += carry; grad_h0 = carry (or zeros).
template <typename scalar_t>
void launch_backward_finish(const BackwardProblem<scalar_t>& p, const acc_t<scalar_t>* carry,
                            acc_t<scalar_t>* d_emb, scalar_t* grad_h0, cudaStream_t stream);

// ---- rnnfast::rnn_layer: one pointwise kernel per time step beside its cuBLAS GEMMs -------
//
// (layer_loops.cpp runs the walks.) Each launch covers the `rows` batch rows alive at one step
// of one direction; every pointer is already offset to that step's first row and that
// direction's columns, and consecutive rows lie `*_ld` elements apart (which is how a
// time-major, batch-first, packed or bidirectional layout reaches the kernels).

// h = act(c + u + bias) for each alive row, stored into out; the rows from `ending` on have
// ended (their last step) and also store h into h_n.
template <typename scalar_t>
struct LayerForwardStep {
  const acc_t<scalar_t>* u;     // X W_ih^T of this step
  int64_t u_ld;
  const acc_t<scalar_t>* c;     // (rows, H): h_{t-1} W_hh^T for rows [0, from_c); others 0
  int64_t from_c;
  const scalar_t* bias;         // (H) = b_ih + b_hh, or null
  scalar_t* out;
  int64_t out_ld;
  scalar_t* h_n;                // (B, H) of this direction
  int64_t ending;
  int64_t rows, H;
  bool tanh;
};

// For each alive row, recurrence.h's da_t (the carry from the later step for rows [0, ending),
// grad_h_n or 0 for the rows that end here) and hprev = h_{t-1} (rows [0, cont) from the
// previous walk step, the rows that joined here from h0 or 0), so that dW_hh is one GEMM after
// the walk (layer_loops.cpp).
template <typename scalar_t>
struct LayerBackwardStep {
  const scalar_t* out;          // this step's states
  const scalar_t* prev;         // the previous walk step's (null at the walk's first step)
  int64_t out_ld;               // for both
  int64_t cont;
  const scalar_t* h0;           // (B, H) of this direction, or null
  const scalar_t* grad_out;     // laid out as out, or null
  const acc_t<scalar_t>* carry; // (rows, H)
  int64_t ending;
  const scalar_t* grad_h_n;     // (B, H) of this direction, or null
  scalar_t* da;
  scalar_t* hprev;
  int64_t in_ld;                // for both
  int64_t rows, H;
  bool tanh;
};

template <typename scalar_t>
void launch_layer_forward_step(const LayerForwardStep<scalar_t>& s, cudaStream_t stream);
template <typename scalar_t>
void launch_layer_backward_step(const LayerBackwardStep<scalar_t>& s, cudaStream_t stream);

// ---- float32 accumulators to 16-bit outputs, up to three buffers in one launch --------------

template <typename scalar_t>
struct NarrowJob {
  const float* src[3];
  scalar_t* dst[3];
  int64_t n[3];
};

template <typename scalar_t>
void launch_narrow(const NarrowJob<scalar_t>& job, cudaStream_t stream);

}  // namespace rnnfast::cuda
