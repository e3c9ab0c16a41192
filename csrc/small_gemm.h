// Register-blocked AVX-512 and AVX2 kernels for the per-step products at small hidden sizes.
//
// At the book's H = 64 a time step is a (rows x 64) @ (64 x 64) product: a few microseconds of
// arithmetic, of which a BLAS call spends a third in dispatch, packing decisions and edge
// handling. This kernel keeps a 4-row x H block of the result in registers and streams the
// (H x H) matrix from L1, where it stays for the whole sequence.
#pragma once

#include <cstdint>

namespace rnnfast::small_gemm {

// The largest H the AVX2 kernel takes: up to here the (H x H) matrix stays in L1/L2 and the
// kernel beats a BLAS call (MKL picks its generic kernels on AMD CPUs); above, BLAS's packing
// and cache blocking win.
constexpr int64_t kMaxAvx2H = 128;

// The largest H the AVX-512 kernel takes: a 256 x 256 matrix (256 KiB) still sits in a core's
// L2, and MKL runs its AVX2 kernels on AMD CPUs. At 512 the matrix leaves L2 and the products
// go to oneDNN or BLAS (step_gemm.h's kLargeH).
constexpr int64_t kMaxAvx512H = 256;

// True when the kernels handle this hidden size on this CPU (float32; H a multiple of 16 up to
// kMaxAvx512H with AVX-512F, or a multiple of 8 up to kMaxAvx2H with AVX2 and FMA).
bool supports(int64_t H);

// out(rows x H, row stride ld_out) = in(rows x H, row stride ld_in) @ m(H x H, row-major),
// plus out's previous contents when accumulate is true. Only call when supports(H).
void rows_times(const float* in, int64_t ld_in, const float* m, float* out, int64_t ld_out,
                int64_t rows, int64_t H, bool accumulate);

// The general product under both: out(rows x N, row stride ld_out) = in @ m, plus out's
// previous contents when accumulate, else plus bias (N values, added to every row) unless it
// is null; in (rows x K) has element (i, k) at in[i * in_rs + k * in_ks] (any strides: a
// transposed view too), m (K x N) has row stride m_rs. Only call
// when supports_product(N): N a multiple of 16 up to kMaxAvx512H with AVX-512F, or of 8 up
// to kMaxAvx2H with AVX2 and FMA.
bool supports_product(int64_t N);
void product(const float* in, int64_t in_rs, int64_t in_ks, const float* m, int64_t m_rs,
             float* out, int64_t ld_out, int64_t rows, int64_t N, int64_t K, bool accumulate,
             const float* bias);

// acc(H x H, row-major) += a^T b for a and b (k x H) with row strides lda and ldb: the weight
// gradient's sum over a step's rows. Only call when supports(H).
void add_at_b(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t k, int64_t H,
              float* acc);

}  // namespace rnnfast::small_gemm
