// Stand-in for c10's CUDA error checks in the CPU emulator: the same two macros, throwing
// std::runtime_error with the emulator's description of what went wrong.
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace simt::detail {
// The message of the calling thread's last failed launch (why it failed, where).
const char* last_error_detail();
}  // namespace simt::detail

#define C10_CUDA_CHECK(EXPR)                                                                \
  do {                                                                                      \
    const cudaError_t simt_error_ = (EXPR);                                                 \
    if (simt_error_ != cudaSuccess) {                                                       \
      throw std::runtime_error(std::string("CUDA error: ") + cudaGetErrorString(simt_error_) + \
                               ": " + ::simt::detail::last_error_detail());                \
    }                                                                                       \
  } while (false)

#define C10_CUDA_KERNEL_LAUNCH_CHECK() C10_CUDA_CHECK(cudaGetLastError())
