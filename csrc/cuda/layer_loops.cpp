// See layer_loops.h. Per direction d, walk step s at time t (reverse: t = T - 1 - s), with n
// rows alive and the rule of recurrence.h for rows that join or end (cont = min(n, n at the
// previous walk step), ending = min(n, n at the next)):
//   forward   c = h_{t-1} W_hh^T (rows [0, cont) from the previous step's states, the rows that
//             join from h0), then the kernel h_t = act(c + U_t + b) and the ended rows' h_n;
//   backward  the kernel (da_t, hprev_t), then carry = da_t W_hh for the rows that continue and
//             grad_hx = da_t W_hh for the rows that joined;
//   after     dW_hh = da^T hprev, dW_ih = da^T x, db = the column sums of da, dx = da W_ih.
#include "layer_loops.h"

#include "carver.h"

#include <algorithm>
#include <vector>

namespace rnnfast::cuda {
namespace {

// Where each step's rows lie (rows r and r + 1 of a step `*_ld` apart), and how many are alive.
struct Walks {
  int64_t T, B, H, D;
  const int64_t* batch_sizes;
  std::vector<int64_t> first_in, first_out;  // first row of step t in x (and da) and in out
  int64_t stride_in;                         // rows of one step in x: 1, or T batch-first

  template <typename S>
  explicit Walks(const LayerProblem<S>& p)
      : T(p.T), B(p.B), H(p.H), D(p.D), batch_sizes(p.batch_sizes), first_in(p.T),
        first_out(p.T), stride_in(p.batch_first ? p.T : 1) {
    int64_t row = 0;
    for (int64_t t = 0; t < T; ++t) {
      first_out[t] = batch_sizes != nullptr ? row : t * B;
      first_in[t] = p.batch_first ? t : first_out[t];
      row += alive(t);
    }
  }
  int64_t alive(int64_t t) const { return batch_sizes != nullptr ? batch_sizes[t] : B; }
  int64_t time(int64_t d, int64_t s) const { return d == 1 ? T - 1 - s : s; }
  // Rows alive at walk step s of direction d, 0 outside the walk.
  int64_t alive_at(int64_t d, int64_t s) const {
    return s < 0 || s >= T ? 0 : alive(time(d, s));
  }
  // Element offsets of step t's first row, direction d, in x-ordered and out-ordered buffers
  // of D H columns.
  int64_t in_at(int64_t t, int64_t d) const { return first_in[t] * D * H + d * H; }
  int64_t out_at(int64_t t, int64_t d) const { return first_out[t] * D * H + d * H; }
  int64_t in_ld() const { return stride_in * D * H; }
  int64_t out_ld() const { return D * H; }
};

template <typename S>
struct ForwardBuffers {
  acc_t<S>* u;  // (N, D H) = x W_ih^T
  acc_t<S>* c;  // (B, H) = h_{t-1} W_hh^T of the current step
};

template <typename S>
ForwardBuffers<S> forward_buffers(const LayerProblem<S>& p, Carver& ws) {
  return {ws.take<acc_t<S>>(p.N * p.D * p.H), ws.take<acc_t<S>>(p.B * p.H)};
}

template <typename S>
struct BackwardBuffers {
  S* da;           // (N, D H), x's row order: dL/da_t (= dL/dU_t)
  S* hprev;        // (N, D H), x's row order: h_{t-1}
  acc_t<S>* carry; // (B, H) = da_{t+1} W_hh
};

template <typename S>
BackwardBuffers<S> backward_buffers(const LayerProblem<S>& p, Carver& ws) {
  const int64_t n = p.N * p.D * p.H;
  return {ws.take<S>(n), ws.take<S>(n), ws.take<acc_t<S>>(p.B * p.H)};
}

}  // namespace

template <typename S>
size_t layer_forward_workspace_bytes(const LayerProblem<S>& p) {
  Carver ws(nullptr);
  forward_buffers(p, ws);
  return ws.used();
}

template <typename S>
void layer_forward(const LayerProblem<S>& p, void* workspace, S* out, S* h_n, DeviceOps& dev) {
  constexpr DType dt = dtype_of<S>(), acc_dt = dtype_of<acc_t<S>>();
  const int64_t H = p.H, DH = p.D * p.H;
  const Walks w(p);
  Carver ws(workspace);
  const auto buf = forward_buffers(p, ws);
  if (p.N == 0) return;  // an empty batch: nothing to compute, h_n is empty too
  dev.gemm(Trans::N, Trans::T, p.N, DH, p.I, p.x, p.I, p.w_ih, p.I, buf.u, DH, dt, acc_dt);
  for (int64_t d = 0; d < p.D; ++d) {
    for (int64_t s = 0; s < p.T; ++s) {
      const int64_t t = w.time(d, s), n = w.alive_at(d, s);
      const int64_t cont = std::min(n, w.alive_at(d, s - 1));
      if (cont > 0) {
        dev.gemm(Trans::N, Trans::T, cont, H, H, out + w.out_at(w.time(d, s - 1), d), DH,
                 p.w_hh[d], H, buf.c, H, dt, acc_dt);
      }
      if (n > cont && p.h0 != nullptr) {
        dev.gemm(Trans::N, Trans::T, n - cont, H, H, p.h0 + (d * p.B + cont) * H, H, p.w_hh[d],
                 H, buf.c + cont * H, H, dt, acc_dt);
      }
      const LayerForwardStep<S> step{buf.u + w.in_at(t, d),
                                     w.in_ld(),
                                     buf.c,
                                     p.h0 != nullptr ? n : cont,
                                     p.bias != nullptr ? p.bias + d * H : nullptr,
                                     out + w.out_at(t, d),
                                     w.out_ld(),
                                     h_n + d * p.B * H,
                                     std::min(n, w.alive_at(d, s + 1)),
                                     n,
                                     H,
                                     p.tanh};
      launch_layer_forward_step(step, dev.stream());
    }
  }
}

template <typename S>
size_t layer_backward_workspace_bytes(const LayerProblem<S>& p) {
  Carver ws(nullptr);
  backward_buffers(p, ws);
  return ws.used();
}

template <typename S>
void layer_backward(const LayerProblem<S>& p, const LayerGradients<S>& g, void* workspace,
                    DeviceOps& dev) {
  constexpr DType dt = dtype_of<S>(), acc_dt = dtype_of<acc_t<S>>();
  const int64_t H = p.H, DH = p.D * p.H, I = p.I;
  const Walks w(p);
  Carver ws(workspace);
  const auto buf = backward_buffers(p, ws);
  if (p.h0 == nullptr) dev.zero(g.grad_hx, p.D * p.B * H * sizeof(S));
  if (p.N == 0) {  // an empty batch: the weights' gradients are sums over no rows
    for (int64_t d = 0; d < p.D; ++d) {
      dev.zero(g.w_ih[d], H * I * sizeof(S));
      dev.zero(g.w_hh[d], H * H * sizeof(S));
      if (g.b_ih[d] != nullptr) dev.zero(g.b_ih[d], H * sizeof(S));
      if (g.b_hh[d] != nullptr) dev.zero(g.b_hh[d], H * sizeof(S));
    }
    return;
  }
  for (int64_t d = 0; d < p.D; ++d) {
    for (int64_t s = p.T - 1; s >= 0; --s) {
      const int64_t t = w.time(d, s), n = w.alive_at(d, s);
      const int64_t cont = std::min(n, w.alive_at(d, s - 1));
      S* da = buf.da + w.in_at(t, d);
      const LayerBackwardStep<S> step{
          g.out + w.out_at(t, d),
          s > 0 ? g.out + w.out_at(w.time(d, s - 1), d) : nullptr,
          w.out_ld(),
          cont,
          p.h0 != nullptr ? p.h0 + d * p.B * H : nullptr,
          g.grad_out != nullptr ? g.grad_out + w.out_at(t, d) : nullptr,
          buf.carry,
          std::min(n, w.alive_at(d, s + 1)),
          g.grad_h_n != nullptr ? g.grad_h_n + d * p.B * H : nullptr,
          da,
          buf.hprev + w.in_at(t, d),
          w.in_ld(),
          n,
          H,
          p.tanh};
      launch_layer_backward_step(step, dev.stream());
      if (cont > 0) {
        dev.gemm(Trans::N, Trans::N, cont, H, H, da, w.in_ld(), p.w_hh[d], H, buf.carry, H, dt,
                 acc_dt);
      }
      if (n > cont && p.h0 != nullptr) {
        dev.gemm(Trans::N, Trans::N, n - cont, H, H, da + cont * w.in_ld(), w.in_ld(),
                 p.w_hh[d], H, g.grad_hx + (d * p.B + cont) * H, H, dt, dt);
      }
    }
  }
  for (int64_t d = 0; d < p.D; ++d) {
    const S* da = buf.da + d * H;
    dev.gemm(Trans::T, Trans::N, H, H, p.N, da, DH, buf.hprev + d * H, DH, g.w_hh[d], H, dt, dt);
    dev.gemm(Trans::T, Trans::N, H, I, p.N, da, DH, p.x, I, g.w_ih[d], I, dt, dt);
    if (g.b_ih[d] != nullptr) dev.column_sum(da, p.N, H, DH, g.b_ih[d], dt);
    if (g.b_hh[d] != nullptr) dev.column_sum(da, p.N, H, DH, g.b_hh[d], dt);
  }
  if (g.grad_x != nullptr) {
    dev.gemm(Trans::N, Trans::N, p.N, I, DH, buf.da, DH, p.w_ih, I, g.grad_x, I, dt, dt);
  }
}

#define RNNFAST_INSTANTIATE(S)                                                              \
  template size_t layer_forward_workspace_bytes<S>(const LayerProblem<S>&);                 \
  template void layer_forward<S>(const LayerProblem<S>&, void*, S*, S*, DeviceOps&);        \
  template size_t layer_backward_workspace_bytes<S>(const LayerProblem<S>&);                \
  template void layer_backward<S>(const LayerProblem<S>&, const LayerGradients<S>&, void*,  \
                                  DeviceOps&);
RNNFAST_FOR_EACH_KERNEL_DTYPE(RNNFAST_INSTANTIATE)
#undef RNNFAST_INSTANTIATE

}  // namespace rnnfast::cuda
