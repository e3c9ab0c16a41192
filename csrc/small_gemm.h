// A register-blocked AVX-512 kernel for the per-step products at small hidden sizes.
//
// At the book's H = 64 a time step is a (rows x 64) @ (64 x 64) product: a few microseconds of
// arithmetic, of which a BLAS call spends a third in dispatch, packing decisions and edge
// handling. This kernel keeps a 4-row x H block of the result in registers and streams the
// (H x H) matrix from L1, where it stays for the whole sequence.
#pragma once

#include <cstdint>

namespace rnnfast::small_gemm {

// True when the kernel handles this hidden size on this CPU (float32, H a multiple of 16 up
// to 64, AVX-512F present).
bool supports(int64_t H);

// out(rows x H, row stride ld_out) = in(rows x H, row stride ld_in) @ m(H x H, row-major),
// plus out's previous contents when accumulate is true. Only call when supports(H).
void rows_times(const float* in, int64_t ld_in, const float* m, float* out, int64_t ld_out,
                int64_t rows, int64_t H, bool accumulate);

}  // namespace rnnfast::small_gemm
