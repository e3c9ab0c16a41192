// What the CUDA ops' host code (time_loops.h, layer_loops.h) needs from the device besides
// rnnfast's kernels: GEMMs, a column sum and zeroing, behind an interface, so that the same
// host code runs on a GPU (cuda_device_ops.h: cuBLAS) and on the CPU emulator
// (tests/cuda_emulator: host loops).
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <cuda_runtime_api.h>

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
  // out (cols) = the sum of the rows of x (rows x cols, row-major with row stride ld), both of
  // dtype `type`, accumulated in float32 (float64 for double).
  virtual void column_sum(const void* x, int64_t rows, int64_t cols, int64_t ld, void* out,
                          DType type) = 0;
  virtual void zero(void* p, size_t bytes) = 0;
};

}  // namespace rnnfast::cuda
