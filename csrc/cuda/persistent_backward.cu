// Persistent backward kernel for small hidden sizes: one launch walks t = T-1 .. 0.
//
// The backward derived in csrc/recurrence.h, in the token cell's form a_t = u_t W^T + b with
// u_t = h_{t-1} + emb[x_t]: the carry g_{t-1} = da_t W is dL/du_t, the gradient of both h_{t-1}
// and emb[x_t], and dW = sum_t da_t^T u_t. Only the matvec da_t W is sequential. Each CTA keeps
// W^T in shared memory (so the matvec reads rows, exactly like the forward) and the da of its
// rows on chip, and per step:
//   - scatters g_{t-1} into d_emb[x_t] (fire-and-forget atomics off the critical path),
//   - writes u_t and da_{t-1} to global memory for the weight gradient dW = da^T u, which the
//     host then computes as one GEMM over all B*T positions,
//   - adds da to a per-thread bias-gradient sum, flushed with one atomic per output at the end.
// The loads that do not depend on the recurrence (hs, grad_hs, token ids, embedding rows) are
// issued before the matvec and consumed after it, so their latency overlaps it.
#include "common.cuh"

#include <c10/cuda/CUDAException.h>

namespace rnnfast::cuda {
namespace {

constexpr int kOPG = kPersistentMaxOutputsPerGroup;

template <typename scalar_t>
__global__ void __launch_bounds__(kPersistentMaxThreads)
    backward_persistent_kernel(const BackwardProblem<scalar_t> p, const PersistentPlan plan,
                               const Tokens tok, TokenErrorRecord* err,
                               acc_t<scalar_t>* __restrict__ da_out,
                               acc_t<scalar_t>* __restrict__ u_out,
                               acc_t<scalar_t>* __restrict__ d_emb,
                               acc_t<scalar_t>* __restrict__ d_bias,
                               scalar_t* __restrict__ grad_h0) {
  using acc = acc_t<scalar_t>;
  RNNFAST_DYNAMIC_SMEM(smem);
  scalar_t* wt_s = reinterpret_cast<scalar_t*>(smem);
  acc* state = reinterpret_cast<acc*>(smem + plan.state_offset);

  const int H = static_cast<int>(p.H);
  const int64_t T = p.T;
  const int ldw = plan.ldw, G = plan.group;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * plan.rows_per_cta;
  const int n_out = rows_in_cta(plan, p.B) * H;  // the last CTA may have fewer rows
  const int state_stride = plan.rows_per_cta * H;
  const int tid = threadIdx.x, n_threads = blockDim.x;

  // W^T: wt_s[k][i] = W[i][k], so that (da W)[k] = sum_i wt_s[k][i] da[i] reads a row.
  for (int idx = tid; idx < H * H; idx += n_threads) {
    wt_s[(idx % H) * ldw + idx / H] = p.weight[idx];
  }

  const int lane = tid & (G - 1);
  const int group_id = tid / G;
  const int n_groups = n_threads / G;
  bool mine[kOPG];
  int out_r[kOPG], out_k[kOPG];
  acc db[kOPG];
  int64_t id_t[kOPG];  // token id of the step being processed, loaded one step ahead
#pragma unroll
  for (int j = 0; j < kOPG; ++j) {
    const int o = group_id + j * n_groups;
    mine[j] = j < plan.outputs_per_group && o < n_out;
    out_r[j] = o / H;
    out_k[j] = o % H;
    db[j] = acc(0);
    id_t[j] = 0;
    if (lane == 0 && mine[j]) {
      // da_{T-1} = (h_{T-1} > 0) * grad_hs_{T-1}; relu's gradient is 0 where h <= 0 (NaN passes).
      const int64_t row = row0 + out_r[j];
      const int64_t at = (row * T + (T - 1)) * H + out_k[j];
      const acc h = static_cast<acc>(p.hs[at]);
      const acc d = h <= acc(0) ? acc(0) : static_cast<acc>(p.grad_hs[at]);
      state[o] = d;
      da_out[at] = d;
      db[j] = d;
      id_t[j] = tok.load(row, T - 1);
    }
  }
  __syncthreads();

  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t step = T - 1 - t;
    const acc* da = state + (step & 1) * state_stride;
    acc* da_prev = state + ((step + 1) & 1) * state_stride;

    acc e[kOPG], h_prev[kOPG], g_prev[kOPG];
    int64_t id[kOPG];
#pragma unroll
    for (int j = 0; j < kOPG; ++j) {
      e[j] = h_prev[j] = g_prev[j] = acc(0);
      id[j] = id_t[j];
      if (lane == 0 && mine[j]) {
        const int64_t row = row0 + out_r[j];
        const int k = out_k[j];
        e[j] = embedding_or_nan(p.emb, p.H, id[j], k, tok, err, row, t);
        if (t > 0) {
          const int64_t at = (row * T + (t - 1)) * H + k;
          h_prev[j] = static_cast<acc>(p.hs[at]);
          g_prev[j] = static_cast<acc>(p.grad_hs[at]);
          id_t[j] = tok.load(row, t - 1);
        } else if (p.h0 != nullptr) {
          h_prev[j] = static_cast<acc>(p.h0[row * H + k]);
        }
      }
    }

#pragma unroll
    for (int j = 0; j < kOPG; ++j) {
      if (j < plan.outputs_per_group) {  // uniform over the CTA: every lane reaches the shuffles
        acc g = acc(0);
        if (mine[j]) {
          const scalar_t* w_row = wt_s + out_k[j] * ldw;
          const acc* d_row = da + out_r[j] * H;
#pragma unroll 4
          for (int i = lane; i < H; i += G) g += static_cast<acc>(w_row[i]) * d_row[i];
        }
        g = group_sum(g, G);  // g = dL/du_t[k]
        if (lane == 0 && mine[j]) {
          const int64_t row = row0 + out_r[j];
          const int k = out_k[j];
          if (tok.valid(id[j])) atomicAdd(d_emb + id[j] * H + k, g);
          u_out[(row * T + t) * H + k] = h_prev[j] + e[j];
          if (t > 0) {
            const acc d = h_prev[j] <= acc(0) ? acc(0) : g_prev[j] + g;
            da_prev[group_id + j * n_groups] = d;
            da_out[(row * T + (t - 1)) * H + k] = d;
            db[j] += d;
          } else {
            grad_h0[row * H + k] = static_cast<scalar_t>(p.h0 != nullptr ? g : acc(0));
          }
        }
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int j = 0; j < kOPG; ++j) {
    if (lane == 0 && mine[j]) atomicAdd(d_bias + out_k[j], db[j]);
  }
}

}  // namespace

template <typename scalar_t>
void launch_backward_persistent(const PersistentPlan& plan, const BackwardProblem<scalar_t>& p,
                                acc_t<scalar_t>* da, acc_t<scalar_t>* u, acc_t<scalar_t>* d_emb,
                                acc_t<scalar_t>* d_bias, scalar_t* grad_h0,
                                cudaStream_t stream) {
  auto kernel = backward_persistent_kernel<scalar_t>;
  static std::atomic<unsigned long long> large_smem_allowed{0};
  allow_large_smem(kernel, plan.smem_bytes, large_smem_allowed);
  const Tokens tok{p.tokens, p.tokens_int64, p.T, p.V};
  RNNFAST_LAUNCH(kernel, static_cast<unsigned>(plan.ctas), plan.threads, plan.smem_bytes,
                 stream)(p, plan, tok, token_error_record(), da, u, d_emb, d_bias, grad_h0);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define RNNFAST_INSTANTIATE(T)                                                         \
  template void launch_backward_persistent<T>(const PersistentPlan&,                   \
                                              const BackwardProblem<T>&, acc_t<T>*,    \
                                              acc_t<T>*, acc_t<T>*, acc_t<T>*, T*,     \
                                              cudaStream_t);
RNNFAST_FOR_EACH_KERNEL_DTYPE(RNNFAST_INSTANTIATE)
#undef RNNFAST_INSTANTIATE

}  // namespace rnnfast::cuda
