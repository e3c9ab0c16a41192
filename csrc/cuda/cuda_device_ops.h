// The host code's device operations (device_ops.h) on a GPU: GEMMs through cuBLAS, the
// column sum through ATen, zeroing with cudaMemsetAsync, all on torch's current stream.
//
// Why not at::mm for the GEMMs: the step-wise path issues one GEMM per time step, and a direct
// cuBLAS call costs a fraction of a dispatcher round trip. Why not at::cuda::blas::gemm:
// libtorch_cuda does not export it. The handle is torch's (at::cuda::getCurrentCUDABlasHandle):
// it is bound to the current stream and owns a workspace, which makes the calls safe under
// CUDA graph capture, and it carries the math mode torch set (TF32 only if torch allows it).
#pragma once

#include "device_ops.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/Device.h>

namespace rnnfast::cuda {

class CudaDeviceOps final : public DeviceOps {
 public:
  explicit CudaDeviceOps(c10::Device device);
  cudaStream_t stream() const override { return stream_; }
  void gemm(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, const void* a,
            int64_t lda, const void* b, int64_t ldb, void* c, int64_t ldc, DType ab,
            DType c_type) override;
  void column_sum(const void* x, int64_t rows, int64_t cols, int64_t ld, void* out,
                  DType type) override;
  void zero(void* p, size_t bytes) override;

 private:
  c10::Device device_;
  cudaStream_t stream_;
};

// Scratch for the host code from torch's caching allocator, which keeps it safe to reuse in
// stream order once the op has returned. None when none is needed (the persistent forward):
// at the small sizes of that path an allocation is a noticeable share of a call.
inline at::Tensor workspace(size_t bytes, const at::Tensor& like) {
  if (bytes == 0) return {};
  return at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
}

inline void* data_or_null(at::Tensor& t) { return t.defined() ? t.mutable_data_ptr() : nullptr; }

}  // namespace rnnfast::cuda
