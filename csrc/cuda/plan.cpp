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
#include "persistent_plan.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace rnnfast::cuda {
namespace {

constexpr int64_t kMaxMacsPerSmPerStep = int64_t{1} << 20;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

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
