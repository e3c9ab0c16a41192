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

}  // namespace rnnfast
