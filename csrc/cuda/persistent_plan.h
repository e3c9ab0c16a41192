// The launch shape of the persistent kernels for a problem size and a device's limits.
//
// Pure C++ (no ATen, no CUDA call): plan.cpp feeds it the current device's properties, and the
// CPU emulator of the kernels (tests/cuda_emulator) feeds it those of any device, so that the
// kernels are tested with the very plans they run with.
#pragma once

#include "launch.h"

#include <cstddef>
#include <cstdint>
#include <optional>

namespace rnnfast::cuda {

// The plan for B batch rows of hidden size H, elements of `elem_size` bytes accumulated in
// `acc_size` bytes, on a device with `sms` multiprocessors and `smem_limit` bytes of dynamic
// shared memory per CTA; nullopt when W and one batch row's state do not fit.
std::optional<PersistentPlan> plan_for(int64_t B, int64_t H, size_t elem_size, size_t acc_size,
                                       int sms, size_t smem_limit);

}  // namespace rnnfast::cuda
