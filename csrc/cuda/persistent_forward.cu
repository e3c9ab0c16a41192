// Persistent forward kernel for small hidden sizes: one launch runs all T steps.
//
// Batch rows never interact, so each CTA owns a slice of rows for the whole sequence. It
// loads weight into shared memory once, keeps its rows' state on chip, and per step does
//   u = h_{t-1} + emb[x_t]   (held in shared memory, double-buffered)
//   h_t = relu(u @ weight^T + bias)
// with one __syncthreads per step and no other global traffic on the critical path than the
// store of h_t. Computing u (instead of precomputing P = emb W^T + b as the CPU kernel does)
// costs nothing here: the matvec has length H either way, and it saves a GEMM launch.
//
// Each output (row r, unit i) of a step is a dot product of length H split over `group`
// consecutive lanes (each takes every group-th k, so a warp reads consecutive addresses) and
// reduced with shuffles. The loads that do not depend on the recurrence (the next step's token
// ids and embedding rows) are issued one step ahead, so their latency overlaps the matvec.
#include "common.cuh"

#include <c10/cuda/CUDAException.h>

namespace rnnfast::cuda {
namespace {

constexpr int kOPG = kPersistentMaxOutputsPerGroup;

template <typename scalar_t>
__global__ void __launch_bounds__(kPersistentMaxThreads)
    forward_persistent_kernel(const ForwardProblem<scalar_t> p, const PersistentPlan plan,
                              const Tokens tok, TokenErrorRecord* err,
                              scalar_t* __restrict__ hs) {
  using acc = acc_t<scalar_t>;
  RNNFAST_DYNAMIC_SMEM(smem);
  scalar_t* w_s = reinterpret_cast<scalar_t*>(smem);
  acc* state = reinterpret_cast<acc*>(smem + plan.state_offset);

  const int H = static_cast<int>(p.H);
  const int ldw = plan.ldw, G = plan.group;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * plan.rows_per_cta;
  const int n_out = rows_in_cta(plan, p.B) * H;  // the last CTA may have fewer rows
  const int state_stride = plan.rows_per_cta * H;
  const int tid = threadIdx.x, n_threads = blockDim.x;

  for (int idx = tid; idx < H * H; idx += n_threads) {
    w_s[(idx / H) * ldw + idx % H] = p.weight[idx];
  }
  for (int idx = tid; idx < n_out; idx += n_threads) {
    const int r = idx / H, k = idx % H;
    const int64_t row = row0 + r;
    const acc e = embedding_or_nan(p.emb, p.H, tok.load(row, 0), k, tok, err, row, 0);
    const acc h = p.h0 != nullptr ? static_cast<acc>(p.h0[row * H + k]) : acc(0);
    state[idx] = h + e;
  }

  const int lane = tid & (G - 1);
  const int group_id = tid / G;
  const int n_groups = n_threads / G;
  // Per output the group owns: its position, and (on the group's lane 0, which finishes the
  // output) the bias and the token id of the next step.
  bool mine[kOPG];
  int out_r[kOPG], out_i[kOPG];
  acc bias_v[kOPG];
  int64_t next_id[kOPG];
#pragma unroll
  for (int j = 0; j < kOPG; ++j) {
    const int o = group_id + j * n_groups;
    mine[j] = j < plan.outputs_per_group && o < n_out;
    out_r[j] = o / H;
    out_i[j] = o % H;
    bias_v[j] = acc(0);
    next_id[j] = 0;
    if (lane == 0 && mine[j]) {
      bias_v[j] = static_cast<acc>(p.bias[out_i[j]]);
      if (p.T > 1) next_id[j] = tok.load(row0 + out_r[j], 1);
    }
  }
  __syncthreads();

  for (int64_t t = 0; t < p.T; ++t) {
    const acc* u = state + (t & 1) * state_stride;
    acc* u_next = state + ((t + 1) & 1) * state_stride;
    const bool has_next = t + 1 < p.T;

    acc e_next[kOPG];
#pragma unroll
    for (int j = 0; j < kOPG; ++j) {
      e_next[j] = acc(0);
      if (lane == 0 && mine[j] && has_next) {
        const int64_t row = row0 + out_r[j];
        e_next[j] = embedding_or_nan(p.emb, p.H, next_id[j], out_i[j], tok, err, row, t + 1);
        if (t + 2 < p.T) next_id[j] = tok.load(row, t + 2);
      }
    }

#pragma unroll
    for (int j = 0; j < kOPG; ++j) {
      if (j < plan.outputs_per_group) {  // uniform over the CTA: every lane reaches the shuffles
        acc s = acc(0);
        if (mine[j]) {
          const scalar_t* w_row = w_s + out_i[j] * ldw;
          const acc* u_row = u + out_r[j] * H;
#pragma unroll 4
          for (int k = lane; k < H; k += G) s += static_cast<acc>(w_row[k]) * u_row[k];
        }
        s = group_sum(s, G);
        if (lane == 0 && mine[j]) {
          const acc h = round_to<scalar_t>(relu(s + bias_v[j]));
          const int64_t row = row0 + out_r[j];
          hs[(row * p.T + t) * H + out_i[j]] = static_cast<scalar_t>(h);
          if (has_next) u_next[group_id + j * n_groups] = h + e_next[j];
        }
      }
    }
    __syncthreads();
  }
}

}  // namespace

template <typename scalar_t>
void launch_forward_persistent(const PersistentPlan& plan, const ForwardProblem<scalar_t>& p,
                               scalar_t* hs, cudaStream_t stream) {
  auto kernel = forward_persistent_kernel<scalar_t>;
  static std::atomic<unsigned long long> large_smem_allowed{0};
  allow_large_smem(kernel, plan.smem_bytes, large_smem_allowed);
  const Tokens tok{p.tokens, p.tokens_int64, p.T, p.V};
  RNNFAST_LAUNCH(kernel, static_cast<unsigned>(plan.ctas), plan.threads, plan.smem_bytes,
                 stream)(p, plan, tok, token_error_record(), hs);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define RNNFAST_INSTANTIATE(T)                                                             \
  template void launch_forward_persistent<T>(const PersistentPlan&, const ForwardProblem<T>&, \
                                             T*, cudaStream_t);
RNNFAST_FOR_EACH_KERNEL_DTYPE(RNNFAST_INSTANTIATE)
#undef RNNFAST_INSTANTIATE

}  // namespace rnnfast::cuda
