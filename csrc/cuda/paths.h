// The two ways the CUDA op runs (time_loops.cpp), and the choice between them (plan.cpp).
//
// persistent (persistent_*.cu): small H. One kernel walks the whole sequence with W in shared
//   memory; the backward adds one GEMM for the weight gradient.
// stepwise (stepwise_kernels.cu): large H. One cuBLAS GEMM plus one fused pointwise kernel per
//   time step; the gradients are finished after the loop.
#pragma once

#include "launch.h"

#include <c10/core/ScalarType.h>

#include <optional>

namespace rnnfast::cuda {

// The persistent kernels' launch shape for this problem on the current device, or nullopt
// when W and the state do not fit in one CTA's shared memory.
std::optional<PersistentPlan> plan_persistent(int64_t B, int64_t H, c10::ScalarType dtype);

// The persistent plan if the persistent kernels should run, nullopt for the step-wise path.
// RNNFAST_CUDA_KERNEL=persistent|stepwise in the environment overrides the size-based choice
// (for tests and measurements); it is read on every call.
std::optional<PersistentPlan> choose_kernels(int64_t B, int64_t H, c10::ScalarType dtype);

// The dtype the kernels accumulate in: float32, or float64 for float64 inputs.
inline c10::ScalarType acc_type(c10::ScalarType t) {
  return t == c10::kDouble ? c10::kDouble : c10::kFloat;
}

}  // namespace rnnfast::cuda
