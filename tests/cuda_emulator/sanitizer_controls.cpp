// See sanitizer_controls.h.
#include "sanitizer_controls.h"

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// ---- kernels with a bug that only a sanitizer sees ------------------------------------------

__global__ void missing_syncthreads(int* out) {
  RNNFAST_DYNAMIC_SMEM(smem);
  int* s = reinterpret_cast<int*>(smem);
  s[threadIdx.x] = static_cast<int>(threadIdx.x);
  // __syncthreads() belongs here.
  out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

__global__ void shuffle_as_barrier(int* out) {
  RNNFAST_DYNAMIC_SMEM(smem);
  int* s = reinterpret_cast<int*>(smem);
  s[threadIdx.x] = static_cast<int>(threadIdx.x);
  const int v = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
  out[threadIdx.x] = s[threadIdx.x ^ 1] + v;
}

__global__ void same_word_from_every_cta(int* out) {
  if (threadIdx.x == 0) *out = static_cast<int>(blockIdx.x);
}

__global__ void read_past_smem(int* out, int smem_bytes) {
  RNNFAST_DYNAMIC_SMEM(smem);
  if (threadIdx.x == 0) *out = smem[smem_bytes];
}

// ---- kernels that a correct emulator runs as a GPU does --------------------------------------

__global__ void record_indices(int* out) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  out[2 * i] = static_cast<int>(i);
  out[2 * i + 1] = static_cast<int>(gridDim.x * 10000 + blockDim.x);
}

template <typename T>
__global__ void shuffle_each_offset(T* out) {
  for (int offset = 1; offset < 32; offset <<= 1) {
    out[__builtin_ctz(offset) * blockDim.x + threadIdx.x] =
        __shfl_xor_sync(0xffffffffu, static_cast<T>(threadIdx.x) + T(0.5), offset);
  }
}

__global__ void neighbour_after_syncthreads(int* out) {
  RNNFAST_DYNAMIC_SMEM(smem);
  int* s = reinterpret_cast<int*>(smem);
  s[threadIdx.x] = static_cast<int>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

__global__ void half_return_early(int* out) {
  if (threadIdx.x % 2 == 1) return;  // exited threads no longer hold up __syncthreads
  __syncthreads();
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void shuffle_after_lanes_exit(int* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
}

__global__ void divergent_barriers(int* out) {
  if (threadIdx.x < 16) {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
  } else {
    __syncthreads();
  }
}

__global__ void syncthreads_in_two_branches(int* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void smem_is_fresh_per_cta(int* out) {
  RNNFAST_DYNAMIC_SMEM(smem);
  out[blockIdx.x * blockDim.x + threadIdx.x] = smem[threadIdx.x];  // 0xff: never written
  __syncthreads();
  smem[threadIdx.x] = static_cast<unsigned char>(blockIdx.x);
}

__global__ void touch_smem(int* out) {
  RNNFAST_DYNAMIC_SMEM(smem);
  out[threadIdx.x] = smem[threadIdx.x];
}

int failed = 0;

void expect(bool ok, const std::string& what) {
  std::printf("%s emulator: %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failed;
}

// The launch's error, as C10_CUDA_KERNEL_LAUNCH_CHECK would raise it ("" for none).
std::string launch_error() {
  try {
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

int run_control(const char* name) {
  std::vector<int> out(64, 0);
  const std::string control = name;
  if (control == "control-missing-syncthreads") {
    simt::launch(missing_syncthreads, 1, 64, 64 * sizeof(int), nullptr)(out.data());
  } else if (control == "control-shuffle-is-no-barrier") {
    simt::launch(shuffle_as_barrier, 1, 32, 32 * sizeof(int), nullptr)(out.data());
  } else if (control == "control-race-between-ctas") {
    simt::set_ctas_at_once(2);
    simt::launch(same_word_from_every_cta, 2, 32, 0, nullptr)(out.data());
  } else if (control == "control-smem-overflow") {
    simt::launch(read_past_smem, 1, 32, 128, nullptr)(out.data(), 128);
  } else {
    std::fprintf(stderr, "unknown control %s\n", name);
    return 2;
  }
  std::printf("%s ran: %s\n", name, launch_error().c_str());
  return 0;
}

int run_emulator_self_checks() {
  failed = 0;
  {
    std::vector<int> out(2 * 3 * 40, -1);
    simt::launch(record_indices, 3, 40, 0, nullptr)(out.data());
    bool ok = launch_error().empty();
    for (int i = 0; i < 120; ++i) ok = ok && out[2 * i] == i && out[2 * i + 1] == 30040;
    expect(ok, "threadIdx, blockIdx, blockDim and gridDim of a 3 x 40 launch");
  }
  {
    std::vector<double> out(5 * 64, -1);
    simt::launch(shuffle_each_offset<double>, 1, 64, 0, nullptr)(out.data());
    bool ok = launch_error().empty();
    for (int o = 0; o < 5; ++o) {
      for (int lane = 0; lane < 64; ++lane) {
        ok = ok && out[o * 64 + lane] == ((lane ^ (1 << o)) + 0.5);
      }
    }
    expect(ok, "__shfl_xor_sync(double) at offsets 1..16, two warps");
  }
  {
    std::vector<int> out(96, -1);
    simt::launch(neighbour_after_syncthreads, 1, 96, 96 * sizeof(int), nullptr)(out.data());
    bool ok = launch_error().empty();
    for (int i = 0; i < 96; ++i) ok = ok && out[i] == (i + 1) % 96;
    expect(ok, "__syncthreads publishes shared-memory writes");
  }
  {
    std::vector<int> out(64, 0);
    simt::launch(half_return_early, 1, 64, 0, nullptr)(out.data());
    bool ok = launch_error().empty();
    for (int i = 0; i < 64; ++i) ok = ok && out[i] == (i % 2 == 0);
    expect(ok, "threads that return no longer hold up __syncthreads");
  }
  {
    std::vector<int> out(3 * 32, 0);
    simt::launch(smem_is_fresh_per_cta, 3, 32, 32, nullptr)(out.data());
    bool ok = launch_error().empty();
    for (int v : out) ok = ok && v == 0xff;
    expect(ok, "every CTA starts with fresh, 0xff-filled shared memory");
  }
  {
    std::vector<int> out(32, 0);
    simt::launch(shuffle_after_lanes_exit, 1, 32, 0, nullptr)(out.data());
    const std::string error = launch_error();
    expect(contains(error, "lanes of the warp have exited"),
           "a full-mask shuffle after a lane exited fails the launch (" + error + ")");
  }
  {
    std::vector<int> out(32, 0);
    setenv("SIMT_BARRIER_TIMEOUT_S", "1", 1);
    simt::launch(divergent_barriers, 1, 32, 0, nullptr)(out.data());
    unsetenv("SIMT_BARRIER_TIMEOUT_S");
    const std::string error = launch_error();
    expect(contains(error, "timed out"),
           "a barrier that not every thread reaches fails the launch (" + error + ")");
  }
  {
    std::vector<int> out(32, 0);
    simt::launch(syncthreads_in_two_branches, 1, 32, 0, nullptr)(out.data());
    const std::string error = launch_error();
    expect(contains(error, "divergent barriers"),
           "threads meeting at different __syncthreads fail the launch (" + error + ")");
  }
  {
    std::vector<int> out(32, 0);
    simt::launch(touch_smem, 1, 32, 48 * 1024 + 16, nullptr)(out.data());
    const std::string refused = launch_error();
    C10_CUDA_CHECK(cudaFuncSetAttribute(touch_smem, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        64 * 1024));
    simt::launch(touch_smem, 1, 32, 48 * 1024 + 16, nullptr)(out.data());
    expect(contains(refused, "above the kernel's limit") && launch_error().empty(),
           "more than 48 KiB of shared memory needs cudaFuncSetAttribute (" + refused + ")");
  }
  return failed;
}
