// Row-major GEMM on raw device pointers through cuBLAS, for the CUDA kernels' host code.
//
// Why not at::mm: the step-wise path issues one GEMM per time step, and a direct cuBLAS call
// costs a fraction of a dispatcher round trip. Why not at::cuda::blas::gemm: libtorch_cuda
// does not export it. The handle is torch's (at::cuda::getCurrentCUDABlasHandle): it is bound
// to the current stream and owns a workspace, which makes the calls safe under CUDA graph
// capture, and it carries the math mode torch set (TF32 only if torch allows it).
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>

namespace rnnfast::cuda {

enum class Trans : char { N, T };

// C(m x n) = op(A) op(B), all row-major with the given row strides (leading dimensions).
// A and B have dtype `ab`, C has dtype `c`; products are accumulated in float32 (float64 for
// double), whatever the storage.
void gemm_row_major(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, const void* a,
                    int64_t lda, const void* b, int64_t ldb, void* c, int64_t ldc,
                    c10::ScalarType ab, c10::ScalarType c_type);

}  // namespace rnnfast::cuda
