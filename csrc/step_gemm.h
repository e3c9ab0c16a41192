// The CPU step products of the recurrence core (recurrence.h's Gemm): BLAS on raw pointers,
// with the register-blocked small_gemm kernel where it applies.
#pragma once

#include "blas.h"
#include "parallel_grain.h"
#include "small_gemm.h"

#include <algorithm>
#include <type_traits>

namespace rnnfast {

// From this hidden size on the weight is "large" (1 MiB in float32 and more): it no longer sits
// in a core's L2, and the kernels change strategy (kMinRowsPerTaskLargeH, uses_transposed_copy).
constexpr int64_t kLargeH = 512;

// Fewest batch rows a task may own once the weight is large. Each task streams the whole weight
// through its core at every step; with few rows that traffic outweighs the arithmetic, and the
// time loop does better on one thread with each step's product split across cores by BLAS's own
// threads, as the eager loop does. (Measured at (B, T, H) = (64, 16, 1024), 2 threads: 32 rows a
// task ran the forward at 0.65x the eager loop.)
constexpr int64_t kMinRowsPerTaskLargeH = 128;

// Fewest time steps over which a walk's products by W pack it once (blas::PackedRight, which
// has the costs).
constexpr int64_t kMinPackedSteps = 8;

// Whether a walk of `steps` steps can pack its weight: float32 products of a large weight that
// BLAS runs (not oneDNN's machines, which keep their measured path), where libtorch has MKL's
// packing functions. (Below kLargeH the packed products measured no faster: (64, 16, 100)
// backward 0.41 against 0.35 ms.)
inline bool packable(at::ScalarType dtype, int64_t H, int64_t steps) {
  return dtype == at::kFloat && H >= kLargeH && steps >= kMinPackedSteps &&
         blas::PackedRight::available() && !blas::onednn_sgemm_chosen();
}

// How a recurrence over B rows of T steps is split into tasks: each row is T steps of H * H
// multiply-adds (parallel_grain.h's rule), each direction a walk of its own. Where oneDNN
// multiplies a large weight (blas.h), it is one task for all rows and both directions, outside
// any parallel region, so that oneDNN splits each step's product across the cores: over all 256
// rows of a (256, 32, 1024) training step on 2 threads that beat two tasks of 128 rows each
// multiplying on one thread. (The step's element-wise work then runs on one thread.) Where the
// walk may pack W (packable), tasks keep the plain rule without the floor of
// kMinRowsPerTaskLargeH: each task's products by the packed weight on its own thread beat one
// plain product spread over the cores (2-core Xeon, per step: 64 x 1024, 444 against 574 us;
// 32 x 512, 52 against 99 us).
inline RowTasks recurrence_tasks(at::ScalarType dtype, int64_t B, int64_t T, int64_t H,
                                 int64_t directions = 1) {
  if (H >= kLargeH && dtype == at::kFloat && blas::onednn_sgemm_chosen())
    return {B, std::max<int64_t>(1, directions * row_blocks(B) * kRowAlign), directions};
  const int64_t grain = rows_grain(T * H * H);
  if (packable(dtype, H, T)) return {B, grain, directions};
  return {B, H >= kLargeH ? std::max(grain, kMinRowsPerTaskLargeH) : grain, directions};
}

// Whether a walk split into `tasks` packs its weight: where it can, and each task's products
// run on one thread. One task's packed products spread over the cores ran slower than plain
// ones ((64, 32, 1024) forward 43 against 35 ms; (4, 32, 512) 1.08 against 0.75 ms), and with
// the plain rule above that is left to batches of one block of rows.
inline bool packs_weight(at::ScalarType dtype, int64_t H, int64_t steps, const RowTasks& tasks) {
  return packable(dtype, H, steps) && (tasks.count() > 1 || at::get_num_threads() == 1);
}

// W^T as the forward's products take it. Below kLargeH, a transposed copy: MKL's small-matrix
// kernels (and small_gemm) run faster on it than on a transposed operand. From kLargeH on, W
// itself, read transposed by BLAS: the copy would be a single-threaded pass over a weight that
// no longer fits in L2, while the products are split over torch's threads. (Measured, (64, 16,
// H) forward on 2 threads, against the eager loop: H = 512 1.41x without the copy, 1.13x with
// it; H = 1024 1.10x against 0.99x.)
inline bool uses_transposed_copy(int64_t H) { return H < kLargeH; }

// wt = w^T for a square (H x H) matrix, a tile at a time through a small local buffer, so that
// both w and wt are read and written a row segment at a time. A plain (even tiled) transpose
// writes one column of wt at a time: at H = 1024 its rows lie 4 KiB apart, all on the same L1
// cache set, and it took as long as three time steps of the (64, 16, 1024) forward.
template <typename T>
void transpose_square(const T* w, T* wt, int64_t H) {
  constexpr int64_t kTile = 32;
  T tile[kTile][kTile];
  for (int64_t i0 = 0; i0 < H; i0 += kTile) {
    const int64_t ni = std::min(kTile, H - i0);
    for (int64_t j0 = 0; j0 < H; j0 += kTile) {
      const int64_t nj = std::min(kTile, H - j0);
      for (int64_t i = 0; i < ni; ++i)
        for (int64_t j = 0; j < nj; ++j) tile[j][i] = w[(i0 + i) * H + j0 + j];
      for (int64_t j = 0; j < nj; ++j) std::copy_n(tile[j], ni, wt + (j0 + j) * H + i0);
    }
  }
}

// out(rows x H, row stride ld_out) = in(rows x H, row stride ld_in) @ op(m) (+ out when
// accumulate), op(m) = m or m^T. BLAS is column-major, and a row-major matrix read
// column-major is its transpose: out^T = op(m)^T in^T.
template <typename T>
void rows_times(const T* in, int64_t ld_in, const T* m, blas::Op m_op, T* out, int64_t ld_out,
                int64_t rows, int64_t H, bool accumulate = false) {
  if constexpr (std::is_same_v<T, float>) {
    if (m_op == blas::Op::N && small_gemm::supports(H)) {
      small_gemm::rows_times(in, ld_in, m, out, ld_out, rows, H, accumulate);
      return;
    }
  }
  blas::gemm(m_op, blas::Op::N, H, rows, H, T(1), m, H, in, ld_in, T(accumulate ? 1 : 0), out,
             ld_out);
}

// acc(H x H) += a^T b where a and b are (k x H) with row strides lda, ldb, laid out row-major
// as acc[i][j] = sum_r a[r][i] b[r][j].
template <typename T>
void add_at_b(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t k, int64_t H, T* acc) {
  if constexpr (std::is_same_v<T, float>) {
    if (small_gemm::supports(H)) {
      small_gemm::add_at_b(a, lda, b, ldb, k, H, acc);
      return;
    }
  }
  blas::gemm(blas::Op::N, blas::Op::T, H, H, k, T(1), b, ldb, a, lda, T(1), acc, H);
}

// Which of a walk's products by W are packed once (float32 only; packs_weight): the forward's
// (times_wt) or the backward's (times_w). Named, not inferred from wt_scratch, which is null
// in the forward too from kLargeH on (its copy then has no elements).
enum class Packed { kNone, kWt, kW };

// recurrence.h's Gemm for one (H x H) weight W (row-major, as nn.Linear and nn.RNN store it).
// wt_scratch: H * H elements for the transposed copy when uses_transposed_copy(H); null where
// only the backward's products (by W) are needed. Build it outside any parallel region, where
// MKL packs with its own threads.
template <typename T>
class StepGemm {
 public:
  StepGemm(const T* w, int64_t H, T* wt_scratch, Packed packed = Packed::kNone)
      : w_(w), wt_(w), wt_op_(blas::Op::T), H_(H) {
    if constexpr (std::is_same_v<T, float>) {
      if (packed != Packed::kNone) {
        packed_ = blas::PackedRight(w, packed == Packed::kWt ? blas::Op::T : blas::Op::N, H);
        packed_wt_ = packed == Packed::kWt;
        if (packed_wt_ && packed_.packed()) return;
      }
    }
    if (wt_scratch != nullptr && uses_transposed_copy(H)) {
      transpose_square(w, wt_scratch, H);
      wt_ = wt_scratch;
      wt_op_ = blas::Op::N;
    }
  }
  void times_wt(const T* in, int64_t ld_in, T* out, int64_t ld_out, int64_t rows,
                bool accumulate = false) const {
    if (packed_wt_ && !accumulate && packed_rows(in, ld_in, out, ld_out, rows)) return;
    rows_times(in, ld_in, wt_, wt_op_, out, ld_out, rows, H_, accumulate);
  }
  void times_w(const T* in, int64_t ld_in, T* out, int64_t ld_out, int64_t rows) const {
    if (!packed_wt_ && packed_rows(in, ld_in, out, ld_out, rows)) return;
    rows_times(in, ld_in, w_, blas::Op::N, out, ld_out, rows, H_);
  }
  void add_at_b(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t k, T* acc) const {
    rnnfast::add_at_b(a, lda, b, ldb, k, H_, acc);
  }

 private:
  // The product by the packed matrix, where there is one.
  bool packed_rows(const T* in, int64_t ld_in, T* out, int64_t ld_out, int64_t rows) const {
    if constexpr (std::is_same_v<T, float>) {
      if (packed_.packed() && rows > 0 && rows <= INT_MAX && ld_in <= INT_MAX &&
          ld_out <= INT_MAX) {
        packed_.times(in, ld_in, out, ld_out, rows);
        return true;
      }
    }
    return false;
  }

  const T* w_;
  const T* wt_;
  blas::Op wt_op_;
  int64_t H_;
  blas::PackedRight packed_;
  bool packed_wt_ = false;   // packed_ holds W^T (else W)
};

}  // namespace rnnfast
