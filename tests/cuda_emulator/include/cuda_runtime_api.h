// Stand-in for the CUDA runtime's host API, for the CPU emulator (see ../simt.h): the types and
// the few calls that the kernels' launchers make, answered for an emulated H200.
#pragma once

#include <cstddef>

#define RNNFAST_CUDA_EMULATOR 1

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;

// Launches run synchronously on the calling thread's behalf; a stream is only a name.
using cudaStream_t = struct CUstream_st*;

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
};

enum cudaDeviceAttr {
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};

// Returns and clears the calling thread's last error, as CUDA does.
cudaError_t cudaGetLastError();
const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);

namespace simt::detail {
cudaError_t set_max_dynamic_smem(const void* kernel, int bytes);
}  // namespace simt::detail

template <typename Kernel>
cudaError_t cudaFuncSetAttribute(Kernel* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  return simt::detail::set_max_dynamic_smem(reinterpret_cast<const void*>(kernel), value);
}
