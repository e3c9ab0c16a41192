// The CUDA op's host code on raw device pointers, without ATen: for each path (paths.h), the
// time loop and everything between the kernel launches (GEMMs, zeroing, narrowing). As
// haste's lib/ does, the loops own their time steps and take from the caller only memory (a
// workspace) and the device operations that are not kernels of ours (DeviceOps).
//
// elman_rnn_cuda.cpp runs them on a GPU with cuBLAS (cuda_device_ops.h); tests/cuda_emulator
// runs the same functions on the CPU emulator with host GEMMs, so that the emulator checks the
// host code that ships, not a copy of it.
#pragma once

#include "launch.h"

#include <cstddef>
#include <cstdint>

namespace rnnfast::cuda {

enum class Trans : char { N, T };
// In the order of tests/cuda_emulator/entry_points.h's dtype codes.
enum class DType : char { Float, Double, Half, BFloat16 };

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::Float; }
template <>
constexpr DType dtype_of<double>() { return DType::Double; }
template <>
constexpr DType dtype_of<c10::Half>() { return DType::Half; }
template <>
constexpr DType dtype_of<c10::BFloat16>() { return DType::BFloat16; }

// What the time loops need from the device besides rnnfast's kernels. Every call is ordered on
// stream() after the work issued before it.
class DeviceOps {
 public:
  virtual ~DeviceOps() = default;
  virtual cudaStream_t stream() const = 0;
  // C (m x n) = op(A) op(B), all row-major with row strides lda, ldb, ldc; A and B of dtype ab,
  // C of dtype c; products accumulated in float32 (float64 for double), whatever the storage.
  virtual void gemm(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, const void* a,
                    int64_t lda, const void* b, int64_t ldb, void* c, int64_t ldc, DType ab,
                    DType c_type) = 0;
  // out (cols) = the sum of the rows of x (rows x cols, row-major), both of dtype `type`,
  // accumulated in float32 (float64 for double).
  virtual void column_sum(const void* x, int64_t rows, int64_t cols, void* out, DType type) = 0;
  virtual void zero(void* p, size_t bytes) = 0;
};

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
