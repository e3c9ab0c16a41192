// When the CPU kernels split rows over threads: the one rule both ops follow.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace rnnfast {

// Smallest amount of work (multiply-adds, about 10 us at this machine's rate) worth a thread of
// its own. A parallel region costs a few microseconds on a quiet machine, and on a busy one it
// waits for every worker to be scheduled (milliseconds), while eager torch's tiny ops never go
// parallel: below this an op stays on the calling thread.
constexpr int64_t kMinMacsPerTask = int64_t{1} << 20;

// The grain for at::parallel_for over rows that each cost macs_per_row multiply-adds: enough
// rows that a task holds at least kMinMacsPerTask.
inline int64_t rows_grain(int64_t macs_per_row) {
  const int64_t per_row = std::max<int64_t>(macs_per_row, 1);
  return std::max<int64_t>(1, (kMinMacsPerTask + per_row - 1) / per_row);
}

// How many tasks at::parallel_for makes of `rows` rows with this grain: one per thread, at most
// one per grain. Kernels that keep one partial sum per task size their buffers with it.
inline int64_t task_count(int64_t rows, int64_t grain) {
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (rows + grain - 1) / grain));
}

// Recurrence kernels split batch rows into tasks of whole blocks of kRowAlign rows. MKL computes
// a product's rows in blocks and the rows past the last full block another way (seen on an AMD
// EPYC host, float32 and float64), so a row's result would depend on where its task's first row
// lies; with every task starting at a multiple of 8 rows, the states are bitwise the same for
// any thread count.
constexpr int64_t kRowAlign = 8;

inline int64_t row_blocks(int64_t rows) { return (rows + kRowAlign - 1) / kRowAlign; }

// The tasks at::parallel_for makes of `rows` rows in whole blocks, at least `grain` rows each,
// for each of `directions` independent walks over the same rows (a bidirectional layer's two).
struct RowTasks {
  int64_t rows, grain, directions = 1;

  int64_t block_grain() const { return (grain + kRowAlign - 1) / kRowAlign; }
  int64_t count() const { return task_count(directions * row_blocks(rows), block_grain()); }

  // f(direction, row0, row1) for each task, in parallel.
  template <typename F>
  void run(const F& f) const {
    const int64_t blocks = row_blocks(rows);
    at::parallel_for(0, directions * blocks, block_grain(), [&](int64_t k0, int64_t k1) {
      for (int64_t d = k0 / blocks; d * blocks < k1; ++d) {
        const int64_t first = std::max(k0, d * blocks) - d * blocks;
        const int64_t last = std::min(k1, (d + 1) * blocks) - d * blocks;
        f(d, first * kRowAlign, std::min(rows, last * kRowAlign));
      }
    });
  }
};

}  // namespace rnnfast
