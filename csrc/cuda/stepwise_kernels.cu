// Pointwise kernels of the step-wise path (large H), one launch per time step beside the
// step's cuBLAS GEMM (time_loops.cpp runs the loop). Each fuses everything a step needs besides
// the GEMM so that a step costs exactly two launches. One thread per (batch row, unit).
#include "common.cuh"

#include <c10/cuda/CUDAException.h>

namespace rnnfast::cuda {
namespace {

template <typename scalar_t>
__global__ void step_forward_kernel(const ForwardProblem<scalar_t> p, const Tokens tok,
                                    TokenErrorRecord* err, const int64_t t,
                                    const acc_t<scalar_t>* __restrict__ c,
                                    const acc_t<scalar_t>* __restrict__ pe,
                                    scalar_t* __restrict__ hs) {
  using acc = acc_t<scalar_t>;
  const int64_t n = p.B * p.H;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < n;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = idx / p.H, j = idx % p.H;
    const int64_t id = tok.load(r, t);
    acc a = c != nullptr ? c[idx] : acc(0);
    if (tok.valid(id)) {
      a += pe[id * p.H + j];
    } else {
      report_bad_token(err, tok, r, t, id);
      a = quiet_nan<acc>();
    }
    a += static_cast<acc>(p.bias[j]);
    hs[(r * p.T + t) * p.H + j] = static_cast<scalar_t>(relu(a));
  }
}

template <typename scalar_t>
__global__ void step_backward_kernel(const BackwardProblem<scalar_t> p, const Tokens tok,
                                     TokenErrorRecord* err, const int64_t t,
                                     const acc_t<scalar_t>* __restrict__ carry,
                                     scalar_t* __restrict__ da, scalar_t* __restrict__ u,
                                     acc_t<scalar_t>* __restrict__ d_emb) {
  using acc = acc_t<scalar_t>;
  const int64_t n = p.B * p.H, H = p.H, T = p.T;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < n;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = idx / H, k = idx % H;
    acc g = acc(0);
    if (carry != nullptr) {
      g = carry[idx];  // dL/du_{t+1}
      const int64_t next = tok.load(r, t + 1);
      if (tok.valid(next)) atomicAdd(d_emb + next * H + k, g);  // reported when u_{t+1} was made
    }
    const int64_t at = (r * T + t) * H + k;
    const acc h = static_cast<acc>(p.hs[at]);
    da[at] = static_cast<scalar_t>(h <= acc(0) ? acc(0) : static_cast<acc>(p.grad_hs[at]) + g);
    const acc h_prev = t > 0 ? static_cast<acc>(p.hs[at - H])
                             : (p.h0 != nullptr ? static_cast<acc>(p.h0[idx]) : acc(0));
    const acc e = embedding_or_nan(p.emb, H, tok.load(r, t), k, tok, err, r, t);
    u[at] = static_cast<scalar_t>(h_prev + e);
  }
}

template <typename scalar_t>
__global__ void backward_finish_kernel(const BackwardProblem<scalar_t> p, const Tokens tok,
                                       const acc_t<scalar_t>* __restrict__ carry,
                                       acc_t<scalar_t>* __restrict__ d_emb,
                                       scalar_t* __restrict__ grad_h0) {
  using acc = acc_t<scalar_t>;
  const int64_t n = p.B * p.H;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < n;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = idx / p.H, k = idx % p.H;
    const acc g = carry[idx];  // dL/du_0
    const int64_t id = tok.load(r, 0);
    if (tok.valid(id)) atomicAdd(d_emb + id * p.H + k, g);
    grad_h0[idx] = static_cast<scalar_t>(p.h0 != nullptr ? g : acc(0));
  }
}

}  // namespace

template <typename scalar_t>
void launch_step_forward(const ForwardProblem<scalar_t>& p, int64_t t, const acc_t<scalar_t>* c,
                         const acc_t<scalar_t>* pe, scalar_t* hs, cudaStream_t stream) {
  const Tokens tok{p.tokens, p.tokens_int64, p.T, p.V};
  RNNFAST_LAUNCH(step_forward_kernel<scalar_t>, pointwise_grid(p.B * p.H), kPointwiseThreads, 0, stream)(
      p, tok, token_error_record(), t, c, pe, hs);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t>
void launch_step_backward(const BackwardProblem<scalar_t>& p, int64_t t,
                          const acc_t<scalar_t>* carry, scalar_t* da, scalar_t* u,
                          acc_t<scalar_t>* d_emb, cudaStream_t stream) {
  const Tokens tok{p.tokens, p.tokens_int64, p.T, p.V};
  RNNFAST_LAUNCH(step_backward_kernel<scalar_t>, pointwise_grid(p.B * p.H), kPointwiseThreads, 0, stream)(
      p, tok, token_error_record(), t, carry, da, u, d_emb);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t>
void launch_backward_finish(const BackwardProblem<scalar_t>& p, const acc_t<scalar_t>* carry,
                            acc_t<scalar_t>* d_emb, scalar_t* grad_h0, cudaStream_t stream) {
  const Tokens tok{p.tokens, p.tokens_int64, p.T, p.V};
  RNNFAST_LAUNCH(backward_finish_kernel<scalar_t>, pointwise_grid(p.B * p.H), kPointwiseThreads, 0, stream)(
      p, tok, carry, d_emb, grad_h0);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define RNNFAST_INSTANTIATE(T)                                                                \
  template void launch_step_forward<T>(const ForwardProblem<T>&, int64_t, const acc_t<T>*,    \
                                       const acc_t<T>*, T*, cudaStream_t);                    \
  template void launch_step_backward<T>(const BackwardProblem<T>&, int64_t, const acc_t<T>*, \
                                        T*, T*, acc_t<T>*, cudaStream_t);                     \
  template void launch_backward_finish<T>(const BackwardProblem<T>&, const acc_t<T>*,         \
                                          acc_t<T>*, T*, cudaStream_t);
RNNFAST_FOR_EACH_KERNEL_DTYPE(RNNFAST_INSTANTIATE)
#undef RNNFAST_INSTANTIATE

}  // namespace rnnfast::cuda
