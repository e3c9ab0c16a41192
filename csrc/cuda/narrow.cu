// Narrows float32 accumulators (gradients summed with atomics or by a float32 GEMM) to the
// 16-bit dtype of the op's outputs: up to three buffers in one launch, since at the book's
// sizes a launch costs more than the copy.
#include "emulator_hooks.cuh"
#include "launch.h"

#include <c10/cuda/CUDAException.h>

#include <algorithm>

namespace rnnfast::cuda {
namespace {

constexpr int kThreads = 256;

template <typename scalar_t>
__global__ void narrow_kernel(const NarrowJob<scalar_t> job) {
#pragma unroll
  for (int s = 0; s < 3; ++s) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < job.n[s];
         i += int64_t{gridDim.x} * blockDim.x) {
      job.dst[s][i] = static_cast<scalar_t>(job.src[s][i]);
    }
  }
}

}  // namespace

template <typename scalar_t>
void launch_narrow(const NarrowJob<scalar_t>& job, cudaStream_t stream) {
  const int64_t n = std::max({job.n[0], job.n[1], job.n[2]});
  const auto blocks = static_cast<unsigned>(
      std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, int64_t{1} << 16));
  RNNFAST_LAUNCH(narrow_kernel<scalar_t>, blocks, kThreads, 0, stream)(job);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template void launch_narrow<c10::Half>(const NarrowJob<c10::Half>&, cudaStream_t);
template void launch_narrow<c10::BFloat16>(const NarrowJob<c10::BFloat16>&, cudaStream_t);

}  // namespace rnnfast::cuda
