// See time_loops.h. The two paths (paths.h):
//
// persistent: one kernel walks the whole sequence (persistent_*.cu); the backward adds one
//   GEMM for the weight gradient over all B*T positions.
// stepwise:   one GEMM and one fused pointwise kernel (stepwise_kernels.cu) per time step:
//   forward   pe = emb W^T once, then per step c = h_{t-1} W^T (skipped at t = 0 without h0)
//             and h_t = relu(c + pe[x_t] + bias);
//   backward  per step t = T-1 .. 0 the pointwise kernel (da_t, u_t, d_emb[x_{t+1}] += carry),
//             then carry = da_t W; after the loop d_emb[x_0] += carry, grad_h0 = carry,
//             dW = da^T u and d_bias = the column sum of da.
//
// The kernels and GEMMs accumulate in float32 (float64 for double). On the step-wise path
// 16-bit inputs keep da and u in their own dtype, so that the GEMMs run on tensor cores; the
// persistent kernel keeps them in float32. Gradients summed with atomics, or by a float32 GEMM,
// live in float32 workspace and are narrowed into the 16-bit outputs at the end.
#include "time_loops.h"

#include "carver.h"

#include <type_traits>

namespace rnnfast::cuda {
namespace {

// 16-bit outputs are narrowed from float32 accumulators; float32/float64 ones are their own.
template <typename S>
constexpr bool kNarrows = !std::is_same_v<S, acc_t<S>>;

template <typename S>
acc_t<S>* accumulator(acc_t<S>* piece, S* output) {
  if constexpr (kNarrows<S>) {
    return piece;
  } else {
    return output;
  }
}

template <typename S>
struct StepwiseForwardBuffers {
  acc_t<S>* pe;  // (V, H) = emb W^T
  acc_t<S>* c;   // (B, H) = h_{t-1} W^T of the current step
};

template <typename S>
StepwiseForwardBuffers<S> stepwise_forward_buffers(const ForwardProblem<S>& p, Carver& ws) {
  return {ws.take<acc_t<S>>(p.V * p.H), ws.take<acc_t<S>>(p.B * p.H)};
}

template <typename S>
struct PersistentBackwardBuffers {
  acc_t<S>* da;  // (B, T, H)
  acc_t<S>* u;   // (B, T, H)
  acc_t<S>* d_emb;  // the float32 accumulators of 16-bit outputs; null otherwise
  acc_t<S>* d_w;
  acc_t<S>* d_b;
};

template <typename S>
PersistentBackwardBuffers<S> persistent_backward_buffers(const BackwardProblem<S>& p,
                                                         Carver& ws) {
  using acc = acc_t<S>;
  PersistentBackwardBuffers<S> b{ws.take<acc>(p.B * p.T * p.H), ws.take<acc>(p.B * p.T * p.H),
                                 nullptr, nullptr, nullptr};
  if constexpr (kNarrows<S>) {
    b.d_emb = ws.take<acc>(p.V * p.H);
    b.d_w = ws.take<acc>(p.H * p.H);
    b.d_b = ws.take<acc>(p.H);
  }
  return b;
}

template <typename S>
struct StepwiseBackwardBuffers {
  S* da;              // (B, T, H)
  S* u;               // (B, T, H)
  acc_t<S>* carry;    // (B, H) = da_t W
  acc_t<S>* d_emb;    // the float32 accumulator of a 16-bit d_emb; null otherwise
};

template <typename S>
StepwiseBackwardBuffers<S> stepwise_backward_buffers(const BackwardProblem<S>& p, Carver& ws) {
  StepwiseBackwardBuffers<S> b{ws.take<S>(p.B * p.T * p.H), ws.take<S>(p.B * p.T * p.H),
                               ws.take<acc_t<S>>(p.B * p.H), nullptr};
  if constexpr (kNarrows<S>) b.d_emb = ws.take<acc_t<S>>(p.V * p.H);
  return b;
}

template <typename S>
void forward_stepwise(const ForwardProblem<S>& p, void* workspace, S* hs, DeviceOps& dev) {
  constexpr DType dt = dtype_of<S>(), acc_dt = dtype_of<acc_t<S>>();
  const int64_t B = p.B, T = p.T, V = p.V, H = p.H;
  Carver ws(workspace);
  const auto buf = stepwise_forward_buffers(p, ws);
  dev.gemm(Trans::N, Trans::T, V, H, H, p.emb, H, p.weight, H, buf.pe, H, dt, acc_dt);
  for (int64_t t = 0; t < T; ++t) {
    // h_{t-1}: row b of it is hs[b, t-1], T*H elements from the next row's.
    const S* prev = t > 0 ? hs + (t - 1) * H : p.h0;
    if (prev != nullptr) {
      dev.gemm(Trans::N, Trans::T, B, H, H, prev, t > 0 ? T * H : H, p.weight, H, buf.c, H, dt,
               acc_dt);
    }
    launch_step_forward(p, t, prev != nullptr ? buf.c : nullptr, buf.pe, hs, dev.stream());
  }
}

template <typename S>
void backward_persistent(const PersistentPlan& plan, const BackwardProblem<S>& p,
                         void* workspace, const Gradients<S>& out, DeviceOps& dev) {
  using acc = acc_t<S>;
  constexpr DType acc_dt = dtype_of<acc>();
  const int64_t B = p.B, T = p.T, V = p.V, H = p.H;
  Carver ws(workspace);
  const auto buf = persistent_backward_buffers(p, ws);
  acc* d_emb = accumulator(buf.d_emb, out.d_emb);
  acc* d_w = accumulator(buf.d_w, out.d_weight);
  acc* d_b = accumulator(buf.d_b, out.d_bias);
  // The kernel adds into these with atomics.
  dev.zero(d_emb, V * H * sizeof(acc));
  dev.zero(d_b, H * sizeof(acc));
  launch_backward_persistent(plan, p, buf.da, buf.u, d_emb, d_b, out.grad_h0, dev.stream());
  dev.gemm(Trans::T, Trans::N, H, H, B * T, buf.da, H, buf.u, H, d_w, H, acc_dt, acc_dt);
  if constexpr (kNarrows<S>) {
    const NarrowJob<S> job{{d_emb, d_w, d_b}, {out.d_emb, out.d_weight, out.d_bias},
                           {V * H, H * H, H}};
    launch_narrow(job, dev.stream());
  }
}

template <typename S>
void backward_stepwise(const BackwardProblem<S>& p, void* workspace, const Gradients<S>& out,
                       DeviceOps& dev) {
  constexpr DType dt = dtype_of<S>(), acc_dt = dtype_of<acc_t<S>>();
  const int64_t B = p.B, T = p.T, V = p.V, H = p.H;
  Carver ws(workspace);
  const auto buf = stepwise_backward_buffers(p, ws);
  acc_t<S>* d_emb = accumulator(buf.d_emb, out.d_emb);
  dev.zero(d_emb, V * H * sizeof(acc_t<S>));
  for (int64_t t = T - 1; t >= 0; --t) {
    launch_step_backward(p, t, t == T - 1 ? nullptr : buf.carry, buf.da, buf.u, d_emb,
                         dev.stream());
    dev.gemm(Trans::N, Trans::N, B, H, H, buf.da + t * H, T * H, p.weight, H, buf.carry, H, dt,
             acc_dt);
  }
  launch_backward_finish(p, buf.carry, d_emb, out.grad_h0, dev.stream());
  dev.gemm(Trans::T, Trans::N, H, H, B * T, buf.da, H, buf.u, H, out.d_weight, H, dt, dt);
  dev.column_sum(buf.da, B * T, H, H, out.d_bias, dt);
  if constexpr (kNarrows<S>) {
    NarrowJob<S> job{};
    job.src[0] = d_emb;
    job.dst[0] = out.d_emb;
    job.n[0] = V * H;
    launch_narrow(job, dev.stream());
  }
}

}  // namespace

template <typename S>
size_t forward_workspace_bytes(const PersistentPlan* plan, const ForwardProblem<S>& p) {
  if (plan != nullptr) return 0;
  Carver ws(nullptr);
  stepwise_forward_buffers(p, ws);
  return ws.used();
}

template <typename S>
void forward(const PersistentPlan* plan, const ForwardProblem<S>& p, void* workspace, S* hs,
             DeviceOps& dev) {
  if (plan != nullptr) {
    launch_forward_persistent(*plan, p, hs, dev.stream());
  } else {
    forward_stepwise(p, workspace, hs, dev);
  }
}

template <typename S>
size_t backward_workspace_bytes(const PersistentPlan* plan, const BackwardProblem<S>& p) {
  Carver ws(nullptr);
  if (plan != nullptr) {
    persistent_backward_buffers(p, ws);
  } else {
    stepwise_backward_buffers(p, ws);
  }
  return ws.used();
}

template <typename S>
void backward(const PersistentPlan* plan, const BackwardProblem<S>& p, void* workspace,
              const Gradients<S>& out, DeviceOps& dev) {
  if (plan != nullptr) {
    backward_persistent(*plan, p, workspace, out, dev);
  } else {
    backward_stepwise(p, workspace, out, dev);
  }
}

#define RNNFAST_INSTANTIATE(S)                                                               \
  template size_t forward_workspace_bytes<S>(const PersistentPlan*, const ForwardProblem<S>&); \
  template void forward<S>(const PersistentPlan*, const ForwardProblem<S>&, void*, S*,        \
                           DeviceOps&);                                                       \
  template size_t backward_workspace_bytes<S>(const PersistentPlan*,                          \
                                              const BackwardProblem<S>&);                     \
  template void backward<S>(const PersistentPlan*, const BackwardProblem<S>&, void*,          \
                            const Gradients<S>&, DeviceOps&);
RNNFAST_FOR_EACH_KERNEL_DTYPE(RNNFAST_INSTANTIATE)
#undef RNNFAST_INSTANTIATE

}  // namespace rnnfast::cuda
