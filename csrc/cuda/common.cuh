// Device helpers shared by the rnnfast CUDA kernels. Kept free of ATen's tensor headers so
// that nvcc compiles the .cu files quickly.
#pragma once

#include "emulator_hooks.cuh"
#include "launch.h"
#include "token_error.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>

namespace rnnfast::cuda {

template <typename T>
__device__ __forceinline__ T quiet_nan();
template <>
__device__ __forceinline__ float quiet_nan<float>() {
  return __int_as_float(0x7fc00000);
}
template <>
__device__ __forceinline__ double quiet_nan<double>() {
  return __longlong_as_double(0x7ff8000000000000ll);
}

// relu that keeps NaN as NaN, as torch.relu (and the CPU kernel) do.
template <typename T>
__device__ __forceinline__ T relu(T x) {
  return x < T(0) ? T(0) : x;
}

// relu's gradient from its output, as torch's threshold_backward: it passes where h > 0 (a NaN
// state passes it).
template <typename T>
__device__ __forceinline__ T relu_grad(T h, T g) {
  return h <= T(0) ? T(0) : g;
}

// tanh, and its gradient from its output: g (1 - h^2), as torch's tanh_backward.
__device__ __forceinline__ float tanh_act(float x) { return tanhf(x); }
__device__ __forceinline__ double tanh_act(double x) { return tanh(x); }
template <typename T>
__device__ __forceinline__ T tanh_grad(T h, T g) {
  return g * (T(1) - h * h);
}

// Rounds an accumulator to the storage type and back: h_t is stored in the input dtype, and
// the recurrence continues from exactly what was stored (as an eager loop in that dtype does).
template <typename scalar_t>
__device__ __forceinline__ acc_t<scalar_t> round_to(acc_t<scalar_t> x) {
  return static_cast<acc_t<scalar_t>>(static_cast<scalar_t>(x));
}

// Token ids come as int64 or int32; one runtime flag instead of a second template parameter
// halves the number of kernel instantiations (compile time), and the branch is uniform.
struct Tokens {
  const void* data;
  bool int64;
  int64_t seq_len;
  int64_t vocab_size;

  __device__ __forceinline__ int64_t load(int64_t row, int64_t t) const {
    const int64_t i = row * seq_len + t;
    return int64 ? static_cast<const int64_t*>(data)[i]
                 : static_cast<int64_t>(static_cast<const int32_t*>(data)[i]);
  }
  __device__ __forceinline__ bool valid(int64_t id) const { return id >= 0 && id < vocab_size; }
};

// Records an invalid id for the host (token_error.h). Plain stores, no atomics: the record
// lives in host memory, where device atomics are not guaranteed; one 64-bit store carries
// the part that differs between writers.
__device__ __forceinline__ void report_bad_token(TokenErrorRecord* rec, const Tokens& tok,
                                                 int64_t row, int64_t t, int64_t id) {
  const int64_t pos = row * tok.seq_len + t;
  const unsigned long long p = pos < 0x7fffffffll ? static_cast<unsigned long long>(pos)
                                                  : 0x7fffffffull;
  const int id32 = id > INT_MAX ? INT_MAX : (id < INT_MIN ? INT_MIN : static_cast<int>(id));
  volatile TokenErrorRecord* r = rec;
  r->seq_len = tok.seq_len;
  r->vocab_size = tok.vocab_size;
  __threadfence_system();
  r->word = (1ull << 63) | (p << 32) | static_cast<unsigned long long>(static_cast<unsigned>(id32));
  __threadfence_system();
}

// emb_weight[id, k] widened, or NaN (and a report) when id is out of range.
template <typename scalar_t>
__device__ __forceinline__ acc_t<scalar_t> embedding_or_nan(const scalar_t* emb, int64_t H,
                                                            int64_t id, int64_t k,
                                                            const Tokens& tok,
                                                            TokenErrorRecord* rec, int64_t row,
                                                            int64_t t) {
  if (tok.valid(id)) return static_cast<acc_t<scalar_t>>(emb[id * H + k]);
  report_bad_token(rec, tok, row, t, id);
  return quiet_nan<acc_t<scalar_t>>();
}

// Lets `kernel` use more than 48 KiB of dynamic shared memory: once per kernel and device, at
// the device's maximum, so that later launches make no extra CUDA call (one made while a CUDA
// graph is being captured could be refused). `done` is the kernel's own: one bit per device.
template <typename Kernel>
void allow_large_smem(Kernel kernel, size_t smem_bytes, std::atomic<unsigned long long>& done) {
  if (smem_bytes <= 48 * 1024) return;
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  const unsigned long long bit = device < 64 ? 1ull << device : 0;
  if (bit != 0 && (done.load(std::memory_order_acquire) & bit)) return;
  int max_smem = 0;
  C10_CUDA_CHECK(
      cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      max_smem));
  done.fetch_or(bit, std::memory_order_release);
}

// The pointwise kernels (one thread per element, grid-stride loops): threads per CTA, and a
// grid for n elements; 2^16 CTAs of 256 threads already fill any current GPU.
constexpr int kPointwiseThreads = 256;

inline unsigned pointwise_grid(int64_t n) {
  const int64_t ctas = (n + kPointwiseThreads - 1) / kPointwiseThreads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(ctas, int64_t{1} << 16)));
}

// Batch rows owned by this CTA of a persistent kernel: plan.rows_per_cta, fewer in the last.
__device__ __forceinline__ int rows_in_cta(const PersistentPlan& plan, int64_t B) {
  const int64_t left = B - static_cast<int64_t>(blockIdx.x) * plan.rows_per_cta;
  return static_cast<int>(left < plan.rows_per_cta ? left : plan.rows_per_cta);
}

// Sum over the `group` consecutive lanes (a power of two <= 32) that share one dot product.
// Every lane of the warp must call it, whatever its own group is doing.
template <typename T>
__device__ __forceinline__ T group_sum(T v, int group) {
  for (int offset = group >> 1; offset > 0; offset >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

}  // namespace rnnfast::cuda
