// Column-major GEMM on raw pointers for the CPU kernels.
//
// Why not at::mm: at the book's sizes a per-step torch call costs more than the arithmetic.
// Why not at::native::cpublas::gemm: libtorch does not export it. torch's x86 builds do export
// the BLAS they link (MKL's sgemm_/dgemm_), so we call that directly; where a build lacks it,
// or a size exceeds BLAS's 32-bit ints, we fall back to at::addmm_ on views of the same memory.
// Large float32 products can go to libtorch's oneDNN matmul instead (see onednn_sgemm_chosen).
// (Compiled with -fopenmp, like the rest of the extension: see setup.py.)
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/from_blob.h>

#include <omp.h>

#include <climits>
#include <cstdint>

extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc) __attribute__((weak));
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b, const int* ldb,
            const double* beta, double* c, const int* ldc) __attribute__((weak));
// MKL's packed-matrix products (CBLAS, row-major), as libtorch exports them; the enum arguments
// are passed as their int values (blas::PackedRight).
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                      const float* src, int ld, float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a,
                         int lda, const float* b, int ldb, float beta, float* c, int ldc)
    __attribute__((weak));
}

namespace at::native {
// libtorch's oneDNN matmul, declared in ATen/native/mkldnn/Matmul.h, which torch does not
// install: result = beta * result + alpha * mat1 @ mat2, for beta 0 or 1 (any other beta adds
// result once). Weak, so that a torch without it still loads the extension (blas.cpp then
// keeps to BLAS).
TORCH_API void mkldnn_matmul(const at::Tensor& mat1, const at::Tensor& mat2,
                             const at::Tensor& result, float beta, float alpha)
    __attribute__((weak));
}  // namespace at::native

namespace rnnfast::blas {

enum class Op : char { N = 'N', T = 'T' };

// From this many multiply-adds on, a product called outside a parallel region is worth torch's
// multi-threaded path (a few microseconds of overhead) or oneDNN's (about 15 us).
constexpr int64_t kTorchThreadedMacs = int64_t{1} << 22;

// Whether float32 products of kTorchThreadedMacs or more go to oneDNN rather than BLAS. MKL runs
// its AVX2 kernels on CPUs other than Intel's, AVX-512 or not, while oneDNN picks its kernels by
// instruction set: on a 2-core AVX-512 AMD EPYC, libtorch's oneDNN matmul ran a 64 x 512 x 512
// product at 319 GFLOP/s against MKL's 162, and 370 against 177 at 256 x 1024 x 1024. The
// environment variable RNNFAST_CPU_GEMM=auto|blas|onednn (read once per process, at the first
// large float32 product or float32 walk with H >= 512) overrides the choice; auto takes oneDNN
// on an AVX-512 CPU not made by Intel (oneDNN's float32 matmul needs AVX-512 BW/VL/DQ here)
// whose torch has it, BLAS elsewhere.
bool onednn_sgemm_chosen();

// Whether a @ b goes to oneDNN: float32, at least kTorchThreadedMacs, outside a parallel region
// (oneDNN then spreads it over torch's threads), and oneDNN chosen (above).
bool onednn_takes(const at::Tensor& a, const at::Tensor& b);

// out = a @ b (+ out when accumulate) through oneDNN. a, b and out are 2-D views of any strides
// (oneDNN copies a and b to contiguous ones unless they are contiguous or transposed ones).
inline void onednn_matmul(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out,
                          bool accumulate) {
  at::native::mkldnn_matmul(a, b, out, accumulate ? 1.f : 0.f, 1.f);
}

// op(m) of a square (H x H) row-major float32 matrix, packed once into MKL's internal layout as
// the right-hand operand of the row-major products out(rows x H) = in @ op(m), for any number of
// rows. A plain sgemm_ call repacks its operand every time: at H = 1024 that was a sixth of each
// step's product on a 2-core Xeon (128 rows on one thread: 1.87 ms plain, 1.57 ms packed), and
// more at fewer rows (32 x 512: 139 against 97 us); packing costs about two steps' products.
// Empty (packed() false) where libtorch lacks MKL's packing functions (available()) or a size
// exceeds their 32-bit ints.
class PackedRight {
 public:
  // Whether libtorch has MKL's packing functions.
  static bool available() {
    return cblas_sgemm_pack_get_size != nullptr && cblas_sgemm_pack != nullptr &&
           cblas_sgemm_compute != nullptr;
  }
  PackedRight() = default;
  PackedRight(const float* m, Op op, int64_t H);
  bool packed() const { return buffer_.defined(); }
  void times(const float* in, int64_t ld_in, float* out, int64_t ld_out, int64_t rows) const;

 private:
  at::Tensor buffer_;
  int64_t H_ = 0;
};

// A column-major (rows x cols) matrix with leading dimension ld, as a strided tensor view.
template <typename scalar_t>
at::Tensor view_col_major(const scalar_t* p, int64_t rows, int64_t cols, int64_t ld, Op op) {
  auto t = at::from_blob(const_cast<scalar_t*>(p), {rows, cols}, {1, ld},
                         at::TensorOptions().dtype(c10::CppTypeToScalarType<scalar_t>::value));
  return op == Op::T ? t.t() : t;
}

// C(m x n) = alpha * op(A) op(B) + beta * C, all column-major. beta == 0 ignores C's contents.
template <typename scalar_t>
void gemm(Op transa, Op transb, int64_t m, int64_t n, int64_t k, scalar_t alpha, const scalar_t* a,
          int64_t lda, const scalar_t* b, int64_t ldb, scalar_t beta, scalar_t* c, int64_t ldc) {
  const bool fits_int = m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX &&
                        ldb <= INT_MAX && ldc <= INT_MAX;
  // A large product outside our own parallel tasks goes through torch, which spreads it over
  // torch's threads; called directly, MKL ran it on one thread (measured: 0.96 ms against 0.53 ms
  // for a 64 x 1024 x 1024 step on 2 threads).
  const bool torch_threads = !omp_in_parallel() && m * n * k >= kTorchThreadedMacs;
  const char ta = static_cast<char>(transa), tb = static_cast<char>(transb);
  const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
  const int lda_i = static_cast<int>(lda), ldb_i = static_cast<int>(ldb),
            ldc_i = static_cast<int>(ldc);
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (fits_int && !torch_threads && sgemm_ != nullptr) {
      sgemm_(&ta, &tb, &mi, &ni, &ki, &alpha, a, &lda_i, b, &ldb_i, &beta, c, &ldc_i);
      return;
    }
  } else {
    if (fits_int && !torch_threads && dgemm_ != nullptr) {
      dgemm_(&ta, &tb, &mi, &ni, &ki, &alpha, a, &lda_i, b, &ldb_i, &beta, c, &ldc_i);
      return;
    }
  }
  const int64_t a_rows = transa == Op::N ? m : k, a_cols = transa == Op::N ? k : m;
  const int64_t b_rows = transb == Op::N ? k : n, b_cols = transb == Op::N ? n : k;
  auto c_view = view_col_major(c, m, n, ldc, Op::N);
  const auto a_view = view_col_major(a, a_rows, a_cols, lda, transa);
  const auto b_view = view_col_major(b, b_rows, b_cols, ldb, transb);
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (torch_threads && alpha == 1.f && (beta == 0.f || beta == 1.f)) {
      // Row-major, as oneDNN lays matrices out: C^T = op(B)^T op(A)^T.
      const auto lhs = b_view.t(), rhs = a_view.t();
      if (onednn_takes(lhs, rhs)) {
        onednn_matmul(lhs, rhs, c_view.t(), beta == 1.f);
        return;
      }
    }
  }
  c_view.addmm_(a_view, b_view, beta, alpha);
}

}  // namespace rnnfast::blas
