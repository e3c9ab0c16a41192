// The element-wise loops of the CPU kernels, compiled for several instruction sets.
//
// The extension is built for the x86-64 baseline so that it runs anywhere, which would leave
// these loops at SSE2 width. They are cheap in FLOPs but sit inside the sequential time loop,
// so pointwise.cpp builds them with GCC's target_clones (AVX-512, AVX2, baseline) and the
// loader picks the widest one the CPU supports.
#pragma once

#include "activation.h"

#include <cstdint>

namespace rnnfast::pointwise {

// The recurrence's step (recurrence.h): for each row r < rows,
//   x[r * H + j] = out[r][j] = act(x[r * H + j] + u[r][j]),
// adding the step's input rows to the products already in x, keeping the new state in x and
// storing it into its output row. u[r] may be out[r] (U formed in the output), else the two do
// not overlap. NaN stays NaN.
void add_act_store(float* x, const float* const* u, float* const* out, int64_t rows, int64_t H,
                   Activation act);
void add_act_store(double* x, const double* const* u, double* const* out, int64_t rows,
                   int64_t H, Activation act);

// Its gradient: for each row r < rows,
//   d[r * H + j] = d2[r][j] = act'(h[r][j]) * (g[r][j] + carry[r * H + j]),
// with act' taken from the output h as torch does (relu: the gradient passes where h > 0, so a
// NaN state passes it; tanh: 1 - h^2). g == nullptr reads as zeros (no gradient reached the
// outputs); d2 == nullptr: not stored.
void act_grad(const float* const* h, const float* const* g, const float* carry, float* d,
              float* const* d2, int64_t rows, int64_t H, Activation act);
void act_grad(const double* const* h, const double* const* g, const double* carry, double* d,
              double* const* d2, int64_t rows, int64_t H, Activation act);

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
