// The one recurrence core every CPU op runs: h_t = act(h_{t-1} W^T + U_t), forward and back
// through time, on raw pointers (no ATen: the ops allocate, form U, and call these).
//
// The math, derived once (docs and the other kernels point here). With a_t = h_{t-1} W^T + U_t,
// h_t = act(a_t) and a loss L that reads every h_t (and the last state of each row, h_n):
//   dL/da_t = (dL/dh_t + dL/da_{t+1} W) * act'(a_t),   act' taken from h_t (relu: h_t > 0;
//                                                       tanh: 1 - h_t^2),
//   dL/dW   = sum_t (dL/da_t)^T h_{t-1},   dL/dU_t = dL/da_t,   dL/dh0 = dL/da_first W.
// Only the carry dL/da_{t+1} W is sequential; everything input-side (dU into the embedding or
// input weights) is left to the ops, as large products after the time loop. The two ways of
// forming U (the `u` argument, anything with a row(t, r) method):
// - tokens: U_t = P[x_t], P = E W^T + b, rows gathered from a table (rnnfast::elman_rnn);
// - dense: U = X W_ih^T + (b_ih + b_hh), one large GEMM over all steps (rnnfast::rnn_layer).
//
// Variable lengths (packed sequences) need no masks: sequences are sorted longest first, so the
// rows alive at step t are the prefix [0, alive[t]). A reverse walk (t from T-1 down to 0) sees
// the prefix grow; the rows that join at a step start from h0, and every row ends at its own
// last step, where its h_n is taken. Walking forward the prefix shrinks: all rows join at t = 0
// and end at their length. One rule covers both: at walk step s the rows [0, min(n_s, n_{s-1}))
// continue from the previous step, the rows [n_{s-1}, n_s) join, and the rows
// [n_{s+1}, n_s) end (n_s = rows alive at walk step s, 0 outside the walk).
//
// Batch rows never interact, so each task owns a block of rows for the whole sequence: one
// fork/join per call. The step products run on contiguous (rows x H) step buffers; only the
// element-wise pass reads U and writes the outputs, through per-row pointers, so any layout of
// them (batch-major, time-major, packed, a column slice of both directions) is the same code.
#pragma once

#include "activation.h"
#include "pointwise.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace rnnfast::recurrence {

// Rows of a (rows x ld) buffer laid out by step: row r of step t is row first[t] + r * stride.
// (Batch-major (B, T, H): first[t] = t, stride = T. Time-major: first[t] = t * B, stride 1.
// Packed: first[t] = the step's offset in the data, stride 1. A direction's half of a
// bidirectional output: base offset by d * H, ld = 2 H.)
template <typename T>
struct StepRows {
  T* base;
  const int64_t* first;
  int64_t stride;
  int64_t ld;
  T* row(int64_t t, int64_t r) const { return base + (first[t] + r * stride) * ld; }
  // Rows r and r + 1 of one step lie this many elements apart.
  int64_t row_step() const { return stride * ld; }
};

// U_t = P[x_t]: row r of step t is the table row at offsets[r * T + t] (token id times H).
template <typename T>
struct GatheredRows {
  const T* table;
  const int64_t* offsets;
  int64_t T_;
  const T* row(int64_t t, int64_t r) const { return table + offsets[r * T_ + t]; }
};

// The shape of one walk through time.
struct Walk {
  int64_t T, B, H;
  const int64_t* alive;  // rows alive at step t (a prefix, sorted longest first); null: all B
  bool reverse;          // walk t from T - 1 down to 0
  Activation act;

  int64_t time(int64_t s) const { return reverse ? T - 1 - s : s; }
  // Rows of the task [b0, b1) alive at walk step s (0 outside the walk).
  int64_t alive_in(int64_t s, int64_t b0, int64_t b1) const {
    if (s < 0 || s >= T) return 0;
    const int64_t n = alive == nullptr ? B : alive[time(s)];
    return std::clamp<int64_t>(n - b0, 0, b1 - b0);
  }
};

// The step product out(rows x H) = in(rows x H) @ W^T (+ out when accumulate), in and out with
// row strides ld_in and ld_out, and the backward's in @ W and acc += a^T b: supplied by the op
// (BLAS, or small_gemm for small H), so that the core stays free of any library.
// Gemm must provide:
//   times_wt(in, ld_in, out, ld_out, rows)         out = in @ W^T
//   times_w(in, ld_in, out, ld_out, rows)          out = in @ W
//   add_at_b(a, lda, b, ldb, rows, acc)            acc(H x H) += a^T b

// Runs the walk over the task's rows [b0, b1): writes every state to out, and each row's last
// state to h_n (B x H, may be null). h0 (B x H) or null (start from 0). steps: 2 (b1-b0) H.
template <typename T, typename USource, typename Gemm>
void forward_rows(const Walk& w, const USource& u, const StepRows<T>& out, const T* h0, T* h_n,
                  const Gemm& gemm, T* steps, int64_t b0, int64_t b1) {
  const int64_t H = w.H, rows = b1 - b0;
  std::vector<const T*> u_rows(rows);
  std::vector<T*> out_rows(rows);
  for (int64_t s = 0; s < w.T; ++s) {
    const int64_t t = w.time(s);
    const int64_t n = w.alive_in(s, b0, b1);
    const int64_t n_prev = w.alive_in(s - 1, b0, b1);
    const int64_t n_next = w.alive_in(s + 1, b0, b1);
    const int64_t cont = std::min(n, n_prev);
    T* cur = steps + (s & 1) * rows * H;
    const T* prev = steps + ((s + 1) & 1) * rows * H;
    if (cont > 0) gemm.times_wt(prev, H, cur, H, cont);
    if (n > cont) {
      if (h0 != nullptr) {
        gemm.times_wt(h0 + (b0 + cont) * H, H, cur + cont * H, H, n - cont);
      } else {
        // -0.0 is the exact additive identity (+0.0 would turn a -0.0 in U into +0.0), so a
        // row's first step yields act(U) bit for bit, signed zeros included.
        std::fill_n(cur + cont * H, (n - cont) * H, T(-0.0));
      }
    }
    for (int64_t r = 0; r < n; ++r) {
      u_rows[r] = u.row(t, b0 + r);
      out_rows[r] = out.row(t, b0 + r);
    }
    pointwise::add_act_store(cur, u_rows.data(), out_rows.data(), n, H, w.act);
    if (h_n != nullptr && n > n_next)
      std::copy_n(cur + n_next * H, (n - n_next) * H, h_n + (b0 + n_next) * H);
  }
}

// Backpropagates the walk through the task's rows [b0, b1). Inputs: out (the forward's states),
// grad_out (same layout as out; null: no gradient reached the outputs), grad_h_n (B x H or
// null), h0 (B x H or null). Writes dL/da_t into d_u (the layout of U's rows), dL/dh0 into
// grad_h0 (B x H, when h0 is given), and adds sum_t (dL/da_t)^T h_{t-1} into d_w (H x H;
// null: the op forms that sum itself after the walk, from d_u and out).
// carry and step: (b1 - b0) H scratch each.
template <typename T, typename Gemm>
void backward_rows(const Walk& w, const StepRows<const T>& out,
                   const StepRows<const T>* grad_out, const T* grad_h_n, const T* h0,
                   const StepRows<T>& d_u, T* grad_h0, T* d_w, const Gemm& gemm, T* carry,
                   T* step, int64_t b0, int64_t b1) {
  const int64_t H = w.H, rows = b1 - b0;
  std::vector<const T*> h_rows(rows), g_rows(rows);
  std::vector<T*> d_rows(rows);
  for (int64_t s = w.T - 1; s >= 0; --s) {
    const int64_t t = w.time(s);
    const int64_t n = w.alive_in(s, b0, b1);
    const int64_t n_prev = w.alive_in(s - 1, b0, b1);
    const int64_t n_next = w.alive_in(s + 1, b0, b1);
    // Rows that end at this step start their carry from dL/dh_n instead of a later step's.
    const int64_t ending = std::min(n, n_next);
    if (n > ending) {
      if (grad_h_n != nullptr) {
        std::copy_n(grad_h_n + (b0 + ending) * H, (n - ending) * H, carry + ending * H);
      } else {
        std::fill_n(carry + ending * H, (n - ending) * H, T(0));
      }
    }
    for (int64_t r = 0; r < n; ++r) {
      h_rows[r] = out.row(t, b0 + r);
      if (grad_out != nullptr) g_rows[r] = grad_out->row(t, b0 + r);
      d_rows[r] = d_u.row(t, b0 + r);
    }
    pointwise::act_grad(h_rows.data(), grad_out != nullptr ? g_rows.data() : nullptr, carry,
                        step, d_rows.data(), n, H, w.act);
    // The rows that continue from the previous walk step pair with its states; those that
    // joined here pair with h0 (nothing when they started from zeros).
    const int64_t cont = std::min(n, n_prev);
    if (cont > 0) {
      if (d_w != nullptr)
        gemm.add_at_b(step, H, out.row(w.time(s - 1), b0), out.row_step(), cont, d_w);
      gemm.times_w(step, H, carry, H, cont);
    }
    if (n > cont && h0 != nullptr) {
      if (d_w != nullptr) gemm.add_at_b(step + cont * H, H, h0 + (b0 + cont) * H, H, n - cont, d_w);
      gemm.times_w(step + cont * H, H, grad_h0 + (b0 + cont) * H, H, n - cont);
    }
  }
}

}  // namespace rnnfast::recurrence
