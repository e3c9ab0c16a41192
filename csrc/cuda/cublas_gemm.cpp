// See cublas_gemm.h.
#include "cublas_gemm.h"

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/Exceptions.h>
#include <c10/util/Exception.h>

#include <climits>

namespace rnnfast::cuda {
namespace {

cudaDataType_t cuda_type(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat: return CUDA_R_32F;
    case c10::kDouble: return CUDA_R_64F;
    case c10::kHalf: return CUDA_R_16F;
    case c10::kBFloat16: return CUDA_R_16BF;
    default: TORCH_CHECK(false, "rnnfast: no cuBLAS type for ", t);
  }
}

cublasOperation_t op(Trans t) { return t == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T; }

int to_int(int64_t v, const char* what) {
  TORCH_CHECK(v >= 0 && v <= INT_MAX, "rnnfast.elman_rnn: ", what, " = ", v,
              " is too large for a cuBLAS call");
  return static_cast<int>(v);
}

}  // namespace

void gemm_row_major(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, const void* a,
                    int64_t lda, const void* b, int64_t ldb, void* c, int64_t ldc,
                    c10::ScalarType ab, c10::ScalarType c_type) {
  // cuBLAS is column-major; a row-major matrix read column-major is its transpose, so the
  // row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T: swap the operands.
  cublasHandle_t handle = at::cuda::getCurrentCUDABlasHandle();
  const bool f64 = ab == c10::kDouble;
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

}  // namespace rnnfast::cuda
