// rnnfast::rnn_layer's pointwise kernels (launch.h), one launch per time step and direction
// beside the step's cuBLAS GEMM; layer_loops.cpp runs the walks. One thread per (row, unit).
#include "common.cuh"

#include <c10/cuda/CUDAException.h>

namespace rnnfast::cuda {
namespace {

template <typename scalar_t>
__global__ void layer_forward_step_kernel(const LayerForwardStep<scalar_t> s) {
  using acc = acc_t<scalar_t>;
  const int64_t n = s.rows * s.H;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < n;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = idx / s.H, j = idx % s.H;
    acc a = s.u[r * s.u_ld + j];
    if (r < s.from_c) a += s.c[idx];
    if (s.bias != nullptr) a += static_cast<acc>(s.bias[j]);
    const scalar_t h = static_cast<scalar_t>(s.tanh ? tanh_act(a) : relu(a));
    s.out[r * s.out_ld + j] = h;
    if (r >= s.ending) s.h_n[idx] = h;
  }
}

template <typename scalar_t>
__global__ void layer_backward_step_kernel(const LayerBackwardStep<scalar_t> s) {
  using acc = acc_t<scalar_t>;
  const int64_t n = s.rows * s.H;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < n;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = idx / s.H, j = idx % s.H;
    acc g = r < s.ending ? s.carry[idx]
                         : (s.grad_h_n != nullptr ? static_cast<acc>(s.grad_h_n[idx]) : acc(0));
    if (s.grad_out != nullptr) g += static_cast<acc>(s.grad_out[r * s.out_ld + j]);
    const acc h = static_cast<acc>(s.out[r * s.out_ld + j]);
    s.da[r * s.in_ld + j] = static_cast<scalar_t>(s.tanh ? tanh_grad(h, g) : relu_grad(h, g));
    const scalar_t prev = r < s.cont ? s.prev[r * s.out_ld + j]
                                     : (s.h0 != nullptr ? s.h0[idx] : scalar_t(0));
    s.hprev[r * s.in_ld + j] = prev;
  }
}

}  // namespace

template <typename scalar_t>
void launch_layer_forward_step(const LayerForwardStep<scalar_t>& s, cudaStream_t stream) {
  RNNFAST_LAUNCH(layer_forward_step_kernel<scalar_t>, pointwise_grid(s.rows * s.H), kPointwiseThreads, 0,
                 stream)(s);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t>
void launch_layer_backward_step(const LayerBackwardStep<scalar_t>& s, cudaStream_t stream) {
  RNNFAST_LAUNCH(layer_backward_step_kernel<scalar_t>, pointwise_grid(s.rows * s.H), kPointwiseThreads, 0,
                 stream)(s);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define RNNFAST_INSTANTIATE(T)                                                              \
  template void launch_layer_forward_step<T>(const LayerForwardStep<T>&, cudaStream_t);     \
  template void launch_layer_backward_step<T>(const LayerBackwardStep<T>&, cudaStream_t);
RNNFAST_FOR_EACH_KERNEL_DTYPE(RNNFAST_INSTANTIATE)
#undef RNNFAST_INSTANTIATE

}  // namespace rnnfast::cuda
