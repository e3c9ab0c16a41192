// See persistent_plan.h; plan.cpp explains the switch point between the two CUDA paths.
#include "persistent_plan.h"

#include <algorithm>

namespace rnnfast::cuda {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

size_t align16(size_t n) { return (n + 15) & ~size_t{15}; }

}  // namespace

std::optional<PersistentPlan> plan_for(int64_t B, int64_t H, size_t elem_size, size_t acc_size,
                                       int sms, size_t smem_limit) {
  // Rows per CTA: enough CTAs to cover every SM once, as long as the CTA's outputs fit in
  // kPersistentMaxThreads threads doing at most kPersistentMaxOutputsPerGroup outputs each.
  int64_t rows = std::min<int64_t>(
      ceil_div(B, sms),
      std::max<int64_t>(1, kPersistentMaxThreads * kPersistentMaxOutputsPerGroup / H));
  for (; rows >= 1; rows = rows == 1 ? 0 : rows / 2) {
    const int64_t outputs = rows * H;
    // Lanes per dot product: as many as keep >= 8 terms per lane and fit the CTA. More lanes
    // shorten the critical path of a step (fewer sequential multiply-adds, a log2 shuffle).
    int64_t group = 1;
    while (group < 32 && 2 * group * 8 <= H && outputs * 2 * group <= kPersistentMaxThreads) {
      group *= 2;
    }
    const int64_t threads =
        std::min<int64_t>(kPersistentMaxThreads, ceil_div(outputs * group, 32) * 32);
    const int64_t per_group = ceil_div(outputs, threads / group);
    if (per_group > kPersistentMaxOutputsPerGroup) continue;
    // Row stride of W in shared memory, ldw = group (mod 32): the 32/group dot products a warp
    // works on read rows i, i+1, ... at the same offsets, and this padding puts them in
    // different banks.
    const int64_t ldw = H + (((group - H) % 32) + 32) % 32;
    const size_t state_offset = align16(static_cast<size_t>(H * ldw) * elem_size);
    const size_t smem = state_offset + 2 * static_cast<size_t>(outputs) * acc_size;
    if (smem > smem_limit) continue;
    return PersistentPlan{static_cast<int>(rows), static_cast<int>(threads),
                          static_cast<int>(group), static_cast<int>(per_group),
                          static_cast<int>(ldw),    state_offset,
                          smem,                     ceil_div(B, rows)};
  }
  return std::nullopt;
}

}  // namespace rnnfast::cuda
