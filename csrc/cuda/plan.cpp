// Launch shape of the persistent kernels, and the choice between the two paths (paths.h).
//
// The switch point, an estimate to be measured with benchmarks/gpu_bench.py (set
// RNNFAST_CUDA_KERNEL to time both paths on one size):
//  * The persistent kernels need W (H*H elements, rows padded) plus two (rows x H) float
//    state buffers in one CTA's shared memory: on an H100/H200 (227 KiB per CTA) that is
//    H up to about 224 for float32, 330 for float16/bfloat16 and 160 for float64.
//  * Within that, they win while a step's work per SM stays small: the step-wise path pays two
//    launches per step (~5-8 us of GEMM + pointwise latency each step even when the math takes
//    < 1 us), the persistent kernel one launch per call. But its matvec runs from shared
//    memory at roughly 64 multiply-adds per clock per SM, far below the tensor-core GEMM, so
//    once a step needs more than ~2^20 multiply-adds per SM (~8 us at that rate, about the
//    step-wise path's per-step cost) the GEMM path is the better bet. Example: H = 256 bf16
//    stays persistent up to B ~ 2000 on 132 SMs; the book's H = 64 up to B ~ 34000.
#include "paths.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

namespace rnnfast::cuda {
namespace {

constexpr int64_t kMaxMacsPerSmPerStep = int64_t{1} << 20;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

size_t align16(size_t n) { return (n + 15) & ~size_t{15}; }

std::optional<PersistentPlan> plan_for(int64_t B, int64_t H, size_t elem, size_t acc, int sms,
                                       size_t smem_limit) {
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
    const size_t state_offset = align16(static_cast<size_t>(H * ldw) * elem);
    const size_t smem = state_offset + 2 * static_cast<size_t>(outputs) * acc;
    if (smem > smem_limit) continue;
    return PersistentPlan{static_cast<int>(rows), static_cast<int>(threads),
                          static_cast<int>(group), static_cast<int>(per_group),
                          static_cast<int>(ldw),    state_offset,
                          smem,                     ceil_div(B, rows)};
  }
  return std::nullopt;
}

}  // namespace

std::optional<PersistentPlan> plan_persistent(int64_t B, int64_t H, c10::ScalarType dtype) {
  const cudaDeviceProp* prop = at::cuda::getCurrentDeviceProperties();
  return plan_for(B, H, c10::elementSize(dtype), c10::elementSize(acc_type(dtype)),
                  prop->multiProcessorCount, prop->sharedMemPerBlockOptin);
}

std::optional<PersistentPlan> choose_kernels(int64_t B, int64_t H, c10::ScalarType dtype) {
  const char* env = std::getenv("RNNFAST_CUDA_KERNEL");
  const std::string forced = env == nullptr ? "" : env;
  TORCH_CHECK_VALUE(forced.empty() || forced == "auto" || forced == "persistent" ||
                        forced == "stepwise",
                    "rnnfast: RNNFAST_CUDA_KERNEL must be auto, persistent or stepwise, got '",
                    forced, "'");
  if (forced == "stepwise") return std::nullopt;
  auto plan = plan_persistent(B, H, dtype);
  if (forced == "persistent") {
    TORCH_CHECK_VALUE(plan.has_value(), "rnnfast: RNNFAST_CUDA_KERNEL=persistent, but a (", H,
                      ", ", H, ") ", c10::toString(dtype),
                      " weight does not fit in one CTA's shared memory on this GPU");
    return plan;
  }
  if (!plan.has_value()) return std::nullopt;
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  if (ceil_div(B, sms) * H * H > kMaxMacsPerSmPerStep) return std::nullopt;
  return plan;
}

}  // namespace rnnfast::cuda
