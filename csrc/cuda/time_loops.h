// The CUDA op's host code on raw device pointers, without ATen: for each path (paths.h), the
// time loop and everything between the kernel launches (GEMMs, zeroing, narrowing). As
// haste's lib/ does, the loops own their time steps and take from the caller only memory (a
// workspace) and the device operations that are not kernels of ours (DeviceOps).
//
// elman_rnn_cuda.cpp runs them on a GPU with cuBLAS (cuda_device_ops.h); tests/cuda_emulator
// runs the same functions on the CPU emulator with host GEMMs, so that the emulator checks the
// host code that ships, not a copy of it.
#pragma once

#include "device_ops.h"
#include "launch.h"

#include <cstddef>
#include <cstdint>

namespace rnnfast::cuda {

// The op's gradients, in the input dtype (launch.h's shapes): d_emb (V, H), d_weight (H, H),
// d_bias (H), grad_h0 (B, H).
template <typename scalar_t>
struct Gradients {
  scalar_t* d_emb;
  scalar_t* d_weight;
  scalar_t* d_bias;
  scalar_t* grad_h0;
};

// `plan` is the persistent path's launch shape, or null for the step-wise path. The workspace
// is device memory of at least the *_workspace_bytes of the same plan and problem; nothing in
// it is read before it is written.
template <typename scalar_t>
size_t forward_workspace_bytes(const PersistentPlan* plan, const ForwardProblem<scalar_t>& p);
template <typename scalar_t>
void forward(const PersistentPlan* plan, const ForwardProblem<scalar_t>& p, void* workspace,
             scalar_t* hs, DeviceOps& dev);

template <typename scalar_t>
size_t backward_workspace_bytes(const PersistentPlan* plan, const BackwardProblem<scalar_t>& p);
template <typename scalar_t>
void backward(const PersistentPlan* plan, const BackwardProblem<scalar_t>& p, void* workspace,
              const Gradients<scalar_t>& out, DeviceOps& dev);

}  // namespace rnnfast::cuda
