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

// The LM head's softmax (lm_head_loss_cpu.cpp), on logits stored transposed: x is a
// (rows x cols) matrix with row stride ld whose row v holds logit v of cols batch rows, so
// that every loop runs along contiguous batch rows, whatever the vocabulary size (rows).

// For each column c < cols: max[c] = max_v x[v][c] and log_sum[c] = log(sum_v e^(x[v][c] - max[c])),
// with rows >= 1. As in torch.log_softmax, a column holding NaN or +Inf, or only -Inf, gets a
// NaN log_sum (Inf - Inf), and so a NaN loss and softmax.
void column_logsumexp(const float* x, int64_t ld, int64_t rows, int64_t cols, float* max,
                      float* log_sum);
void column_logsumexp(const double* x, int64_t ld, int64_t rows, int64_t cols, double* max,
                      double* log_sum);

// d[v * ld + c] = softmax of column c at v, times scale: e^(x - max) * (scale / sum_v e^(x - max)),
// one exponential per entry. scratch holds 2 * cols values.
void column_softmax_times(const float* x, int64_t ld, int64_t rows, int64_t cols, float scale,
                          float* d, float* scratch);
void column_softmax_times(const double* x, int64_t ld, int64_t rows, int64_t cols, double scale,
                          double* d, double* scratch);

// out[v] += sum_{c < cols} x[v * ld + c] for v < rows, in 16 interleaved partial sums: a fixed
// order, the same on every instruction set, that still vectorises.
void add_row_sums(const float* x, int64_t ld, int64_t rows, int64_t cols, float* out);
void add_row_sums(const double* x, int64_t ld, int64_t rows, int64_t cols, double* out);

}  // namespace rnnfast::pointwise
