// The two spellings in the kernels that only nvcc understands, as hooks for the CPU emulator.
//
// tests/cuda_emulator compiles these very .cu files with g++ as host C++ and runs them on CPU
// threads (a CPU stand-in for compute-sanitizer). Host C++ has no `<<<...>>>` launch syntax and
// no `extern __shared__` array, so the kernels use the two macros below instead; the emulator's
// <cuda_runtime.h> defines RNNFAST_CUDA_EMULATOR and its own versions of both. Under nvcc they
// expand to exactly `kernel<<<...>>>` and an `extern __shared__` array: nothing more.
#pragma once

#include <cuda_runtime.h>

#ifndef RNNFAST_CUDA_EMULATOR

// RNNFAST_LAUNCH(kernel, grid, block, smem_bytes, stream)(args...) launches kernel<<<...>>>(args).
#define RNNFAST_LAUNCH(kernel, grid, block, smem_bytes, stream) \
  kernel<<<(grid), (block), (smem_bytes), (stream)>>>

// RNNFAST_DYNAMIC_SMEM(name); declares the CTA's dynamic shared memory (the launch's
// smem_bytes, 16-byte aligned) as `unsigned char name[]`.
#define RNNFAST_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]

#endif  // RNNFAST_CUDA_EMULATOR
