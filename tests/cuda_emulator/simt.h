// A small SIMT emulator: what nvcc provides to device code, for g++ compiling the project's
// real .cu files as host C++ and running them on CPU threads.
//
// Execution model (simt_runtime.cpp): a launch runs on blockDim.x std::threads (from a pool
// kept between launches), one per CUDA thread of a CTA, and each of them runs its thread of
// every CTA of the grid in turn, with a barrier between CTAs; so no more than 1024 threads run
// (512 for the persistent kernels) and ThreadSanitizer sees every synchronisation the kernels
// rely on. Each CTA gets
//   * __syncthreads(): a barrier over its threads, which must all wait at the same one; a
//     thread that returns leaves it (as on Volta and later, exited threads no longer count);
//   * warps of 32 consecutive threadIdx.x, each with an exchange buffer and a barrier for
//     __shfl_xor_sync. That barrier is hidden from ThreadSanitizer: on a GPU a shuffle orders
//     no memory access, so it must not hide a shared-memory race between lanes;
//   * dynamic shared memory: a fresh heap buffer of exactly the launch's bytes (AddressSanitizer
//     sees an access past it), filled with 0xff bytes (NaN as float or double) so that reading
//     shared memory no thread wrote shows up in the results.
// Misuse a GPU would punish (a shuffle with lanes that have exited or with a partial mask, a
// barrier that never completes, a launch over the shared-memory limit) fails the launch with a
// message, which C10_CUDA_KERNEL_LAUNCH_CHECK turns into an exception.
//
// Only what the rnnfast kernels use is here. `__shared__` is deliberately left undefined:
// a static shared array would silently become per-thread, so it must not compile.
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

// Built-in variables, set by the launcher for each emulated thread.
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
constexpr int warpSize = 32;

namespace simt::detail {

void sync_cta(const char* file, unsigned line);
void shuffle_xor(unsigned mask, const void* in, void* out, size_t bytes, int lane_mask, int width);
unsigned char* dynamic_smem();
// Runs body() as every thread of every CTA; records a failure as the calling thread's last
// error (cudaGetLastError).
void run_grid(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes,
              const std::function<void()>& body);

}  // namespace simt::detail

// The call site is checked: all threads of a CTA must meet at the same __syncthreads (it is
// bar.sync.aligned; divergent barriers are undefined behaviour on a GPU).
inline void __syncthreads(std::source_location where = std::source_location::current()) {
  simt::detail::sync_cta(where.file_name(), where.line());
}

template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = warpSize) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8);
  T result;
  simt::detail::shuffle_xor(mask, &value, &result, sizeof(T), lane_mask, width);
  return result;
}

// Relaxed, like CUDA's atomics.
template <typename T>
T atomicAdd(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_add(value, std::memory_order_relaxed);
}

inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }

inline float __int_as_float(int bits) { return std::bit_cast<float>(bits); }
inline double __longlong_as_double(long long bits) { return std::bit_cast<double>(bits); }


namespace simt {

// kernel<<<grid, block, smem_bytes>>>(args...): the arguments are converted to the kernel's
// parameter types once, on the launching thread, as CUDA copies them into parameter space.
template <typename... Params>
class Launch {
 public:
  Launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes)
      : kernel_(kernel), grid_(grid), block_(block), smem_bytes_(smem_bytes) {}

  template <typename... Args>
  void operator()(Args&&... args) const {
    static_assert(sizeof...(Args) == sizeof...(Params), "wrong number of kernel arguments");
    const std::tuple<Params...> params(std::forward<Args>(args)...);
    detail::run_grid(reinterpret_cast<const void*>(kernel_), grid_, block_, smem_bytes_,
                     [&] { std::apply(kernel_, params); });
  }

 private:
  void (*kernel_)(Params...);
  dim3 grid_, block_;
  size_t smem_bytes_;
};

template <typename... Params>
Launch<Params...> launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
                         cudaStream_t /*stream: launches are synchronous*/) {
  return Launch<Params...>(kernel, grid, block, smem_bytes);
}

// CTAs run at once per launch (default 1: one CTA after the other). More lets
// ThreadSanitizer also see races between CTAs, at blockDim.x threads per CTA.
void set_ctas_at_once(int n);

}  // namespace simt

// The hooks of csrc/cuda/emulator_hooks.cuh.
#define RNNFAST_LAUNCH(kernel, grid, block, smem_bytes, stream) \
  ::simt::launch(kernel, grid, block, smem_bytes, stream)
#define RNNFAST_DYNAMIC_SMEM(name) unsigned char* const name = ::simt::detail::dynamic_smem()
