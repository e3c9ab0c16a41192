// See cuda_device_ops.h.
#include "cuda_device_ops.h"

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/Exceptions.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/sum.h>
#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>

#include <climits>

namespace rnnfast::cuda {
namespace {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::Float: return CUDA_R_32F;
    case DType::Double: return CUDA_R_64F;
    case DType::Half: return CUDA_R_16F;
    case DType::BFloat16: return CUDA_R_16BF;
  }
  TORCH_CHECK(false, "rnnfast: no cuBLAS type for dtype code ", static_cast<int>(t));
}

c10::ScalarType scalar_type(DType t) {
  switch (t) {
    case DType::Float: return c10::kFloat;
    case DType::Double: return c10::kDouble;
    case DType::Half: return c10::kHalf;
    case DType::BFloat16: return c10::kBFloat16;
  }
  TORCH_CHECK(false, "rnnfast: no torch dtype for dtype code ", static_cast<int>(t));
}

cublasOperation_t op(Trans t) { return t == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T; }

int to_int(int64_t v, const char* what) {
  TORCH_CHECK(v >= 0 && v <= INT_MAX, "rnnfast: ", what, " = ", v,
              " is too large for a cuBLAS call");
  return static_cast<int>(v);
}

}  // namespace

CudaDeviceOps::CudaDeviceOps(c10::Device device)
    : device_(device), stream_(at::cuda::getCurrentCUDAStream(device.index())) {}

void CudaDeviceOps::gemm(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k,
                         const void* a, int64_t lda, const void* b, int64_t ldb, void* c,
                         int64_t ldc, DType ab, DType c_type) {
  // cuBLAS is column-major; a row-major matrix read column-major is its transpose, so the
  // row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T: swap the operands.
  cublasHandle_t handle = at::cuda::getCurrentCUDABlasHandle();
  const bool f64 = ab == DType::Double;
  const double alpha_d = 1.0, beta_d = 0.0;
  const float alpha_f = 1.0f, beta_f = 0.0f;
  TORCH_CUDABLAS_CHECK(cublasGemmEx(
      handle, op(trans_b), op(trans_a), to_int(n, "n"), to_int(m, "m"), to_int(k, "k"),
      f64 ? static_cast<const void*>(&alpha_d) : static_cast<const void*>(&alpha_f), b,
      cuda_type(ab), to_int(ldb, "ldb"), a, cuda_type(ab), to_int(lda, "lda"),
      f64 ? static_cast<const void*>(&beta_d) : static_cast<const void*>(&beta_f), c,
      cuda_type(c_type), to_int(ldc, "ldc"), f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT));
}

void CudaDeviceOps::column_sum(const void* x, int64_t rows, int64_t cols, int64_t ld, void* out,
                               DType type) {
  // torch's reduction is better tuned than one of ours would be, and accumulates 16-bit sums
  // in float32 as the contract asks.
  const auto opts = at::TensorOptions().dtype(scalar_type(type)).device(device_);
  auto result = at::from_blob(out, {cols}, opts);
  const auto rows_of_x = at::from_blob(const_cast<void*>(x), {rows, cols}, {ld, 1}, opts);
  at::sum_out(result, rows_of_x, at::IntArrayRef{0});
}

void CudaDeviceOps::zero(void* p, size_t bytes) {
  // Not zero_(): the same stream order, a fraction of the host cost.
  if (bytes == 0) return;  // an empty tensor's pointer may be null
  C10_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
}

}  // namespace rnnfast::cuda
