// The element-wise loops of the CPU kernels, compiled for several instruction sets.
//
// The extension is built for the x86-64 baseline so that it runs anywhere, which would leave
// these loops at SSE2 width. They are cheap in FLOPs but sit inside the sequential time loop,
// so pointwise.cpp builds them with GCC's target_clones (AVX-512, AVX2, baseline) and the
// loader picks the widest one the CPU supports.
#pragma once

#include <cstdint>

namespace rnnfast::pointwise {

// For each row r < rows: x[r * H + j] = out[r * ld_out + j] = relu(x[r * H + j] + p[o + j]),
// o = offsets[r * offsets_stride]: adds the gathered P[x_t] rows and applies ReLU (NaN stays
// NaN, as in torch.relu), keeping the step in x and storing it into its slot of hs.
void add_rows_relu_store(float* x, const float* p, const int64_t* offsets, int64_t offsets_stride,
                         float* out, int64_t ld_out, int64_t rows, int64_t H);
void add_rows_relu_store(double* x, const double* p, const int64_t* offsets,
                         int64_t offsets_stride, double* out, int64_t ld_out, int64_t rows,
                         int64_t H);

// d[r * H + j] = d2[r * ld + j] = h <= 0 ? 0 : g + carry, with h and g at r * ld + j and
// carry at r * H + j (carry == nullptr: zero; d2 == nullptr: not stored): ReLU's gradient
// taken from its output, as torch does (NaN passes).
void relu_grad_rows(const float* h, const float* g, const float* carry, float* d, float* d2,
                    int64_t rows, int64_t ld, int64_t H);
void relu_grad_rows(const double* h, const double* g, const double* carry, double* d, double* d2,
                    int64_t rows, int64_t ld, int64_t H);

// dst[j] += src[j] for j < n.
void add_to(float* dst, const float* src, int64_t n);
void add_to(double* dst, const double* src, int64_t n);

}  // namespace rnnfast::pointwise
