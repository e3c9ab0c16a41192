// CPU kernels for rnnfast::lm_head_loss (a language model's head and cross-entropy in one op)
// and rnnfast::lm_head_loss_backward.
//
// Forward:  logits = hidden @ weight^T + bias, then per row n
//           loss_n = log(sum_v e^(logits[n, v] - max_n)) - (logits[n, t_n] - max_n),
//           loss = mean_n loss_n                                   (F.cross_entropy's rounding)
// Backward: with s = grad_loss / N and p = softmax(logits) recomputed from the logits,
//           dlogits = p s - onehot(t) s                            (torch's formula, term by term:
//                                                                   the same NaN and Inf)
//           d_hidden = dlogits @ weight, d_weight = dlogits^T hidden, d_bias = sum_n dlogits[n].
//
// Why one op: in eager torch the head and the loss are about eight autograd nodes and as many
// small kernels (linear, log_softmax, nll_loss and their backwards), which at the book's size
// cost as much as the whole fused recurrence.
//
// Layout: the logits live transposed, as a contiguous (V, N) matrix, and the op returns them as
// its (N, V) transpose (strides (1, N)). Why: every softmax loop then runs along N contiguous
// rows, vectorised whatever V is (the book's V = 30 is a ragged two AVX-512 vectors per row the
// other way round), and the GEMMs take either layout at the same cost. The backward accepts
// logits in any layout (it makes the same transposed copy when needed).
//
// Rows never interact except in the sums over rows (the loss, d_weight, d_bias), so tasks own
// blocks of rows, with one partial d_weight and d_bias each. The loss is summed after the
// parallel region, row by row in one order, so how the rows were split does not change it.
#include "blas.h"
#include "lm_head_loss.h"
#include "parallel_grain.h"
#include "pointwise.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_strided.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

namespace rnnfast {
namespace {

using blas::Op;

template <typename index_t>
void check_target_range(const index_t* targets, int64_t N, int64_t V) {
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = static_cast<int64_t>(targets[n]);
    TORCH_CHECK_INDEX(t >= 0 && t < V,
                      "rnnfast.lm_head_loss: targets must lie in [0, vocab_size) = [0, ", V,
                      "), found ", t, " at position ", n,
                      " (ignore_index is not supported: drop those rows instead)");
  }
}

// A row of hidden is V * H multiply-adds in each of the three products.
int64_t head_grain(int64_t V, int64_t H) { return rows_grain(V * H); }

// Over rows [n0, n0 + cols): logits_t (V x N, row-major) gets hidden @ weight^T + bias in its
// columns n0.., max and log_sum their row statistics (all pointers already offset to n0).
template <typename scalar_t>
void logits_block(const scalar_t* hidden, const scalar_t* weight, const scalar_t* bias,
                  scalar_t* logits_t, scalar_t* max, scalar_t* log_sum, int64_t cols, int64_t N,
                  int64_t V, int64_t H) {
  for (int64_t v = 0; v < V; ++v) std::fill_n(logits_t + v * N, cols, bias[v]);
  // Column-major, logits_t is the (cols x V) matrix hidden_block @ weight^T, with ld N; hidden
  // and weight read column-major are hidden^T (H x cols) and weight^T (H x V).
  blas::gemm(Op::T, Op::N, cols, V, H, scalar_t(1), hidden, H, weight, H, scalar_t(1), logits_t,
             N);
  pointwise::column_logsumexp(logits_t, N, V, cols, max, log_sum);
}

template <typename scalar_t, typename index_t>
void forward_impl(const scalar_t* hidden, const scalar_t* weight, const scalar_t* bias,
                  const index_t* targets, scalar_t* logits_t, scalar_t* stats, scalar_t* loss,
                  int64_t N, int64_t V, int64_t H) {
  scalar_t* max = stats;
  scalar_t* log_sum = stats + N;
  scalar_t* row_loss = stats + 2 * N;
  at::parallel_for(0, N, head_grain(V, H), [&](int64_t n0, int64_t n1) {
    logits_block(hidden + n0 * H, weight, bias, logits_t + n0, max + n0, log_sum + n0, n1 - n0,
                 N, V, H);
    // -log_softmax at the target, rounded as torch rounds it: (x - max) - log_sum, negated.
    for (int64_t n = n0; n < n1; ++n)
      row_loss[n] = log_sum[n] - (logits_t[static_cast<int64_t>(targets[n]) * N + n] - max[n]);
  });
  // The mean in a fixed order, accumulated in double (torch's accumulate type on the CPU).
  double sum = 0;
  for (int64_t n = 0; n < N; ++n) sum += static_cast<double>(row_loss[n]);
  *loss = static_cast<scalar_t>(sum) / static_cast<scalar_t>(N);
}

// d_weight and d_bias (zeroed) take the first task's share; parts (zeroed) holds the other
// tasks' shares, n_parts - 1 blocks of V * H + V values, added in after the parallel region.
template <typename scalar_t, typename index_t>
void backward_impl(scalar_t grad_loss, const scalar_t* hidden, const scalar_t* weight,
                   const scalar_t* logits_t, const index_t* targets, scalar_t* scratch,
                   scalar_t* dlogits_t, scalar_t* d_hidden, scalar_t* d_weight, scalar_t* d_bias,
                   scalar_t* parts, int64_t N, int64_t V, int64_t H, int64_t n_parts) {
  // nll_loss's backward divides: grad_loss / N, not grad_loss * (1 / N).
  const scalar_t s = grad_loss / static_cast<scalar_t>(N);
  at::parallel_for(0, N, head_grain(V, H), [&](int64_t n0, int64_t n1) {
    const int64_t cols = n1 - n0;
    scalar_t* d = dlogits_t + n0;
    pointwise::column_softmax_times(logits_t + n0, N, V, cols, s, d, scratch + 2 * n0);
    for (int64_t n = n0; n < n1; ++n) dlogits_t[static_cast<int64_t>(targets[n]) * N + n] -= s;
    // Column-major: d_hidden^T (H x cols) = weight^T (H x V) @ d^T, with d (cols x V, ld N).
    blas::gemm(Op::N, Op::T, H, cols, V, scalar_t(1), weight, H, d, N, scalar_t(0),
               d_hidden + n0 * H, H);
    const int64_t part = std::min<int64_t>(at::get_thread_num(), n_parts - 1);
    scalar_t* dw = part == 0 ? d_weight : parts + (part - 1) * (V * H + V);
    scalar_t* db = part == 0 ? d_bias : dw + V * H;
    // d_weight^T (H x V) += hidden_block^T (H x cols) @ d (cols x V).
    blas::gemm(Op::N, Op::N, H, V, cols, scalar_t(1), hidden + n0 * H, H, d, N, scalar_t(1), dw,
               H);
    pointwise::add_row_sums(d, N, V, cols, db);
  });
  for (int64_t k = 1; k < n_parts; ++k) {
    const scalar_t* part = parts + (k - 1) * (V * H + V);
    pointwise::add_to(d_weight, part, V * H);
    pointwise::add_to(d_bias, part + V * H, V);
  }
}

std::tuple<at::Tensor, at::Tensor> lm_head_loss_cpu(const at::Tensor& hidden_in,
                                                    const at::Tensor& weight_in,
                                                    const at::Tensor& bias_in,
                                                    const at::Tensor& targets_in) {
  check_lm_head_loss_args(hidden_in, weight_in, bias_in, targets_in);
  const auto hidden = hidden_in.contiguous();
  const auto weight = weight_in.contiguous();
  const auto bias = bias_in.contiguous();
  const auto targets = targets_in.contiguous();
  const int64_t N = hidden.size(0), H = hidden.size(1), V = weight.size(0);

  const auto opts = hidden.options();
  auto loss = at::empty({}, opts);
  auto logits = at::empty_strided({N, V}, {1, N}, opts);  // see "Layout" above
  auto stats = at::empty({3, N}, opts);                   // max, log_sum, row_loss
  AT_DISPATCH_INDEX_TYPES(targets.scalar_type(), "lm_head_loss_cpu_targets", [&] {
    check_target_range(targets.const_data_ptr<index_t>(), N, V);
    AT_DISPATCH_FLOATING_TYPES(hidden.scalar_type(), "lm_head_loss_cpu", [&] {
      forward_impl<scalar_t, index_t>(
          hidden.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
          bias.const_data_ptr<scalar_t>(), targets.const_data_ptr<index_t>(),
          logits.mutable_data_ptr<scalar_t>(), stats.mutable_data_ptr<scalar_t>(),
          loss.mutable_data_ptr<scalar_t>(), N, V, H);
    });
  });
  return {loss, logits};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lm_head_loss_backward_cpu(
    const at::Tensor& grad_loss, const at::Tensor& hidden_in, const at::Tensor& weight_in,
    const at::Tensor& logits_in, const at::Tensor& targets_in) {
  check_lm_head_loss_backward_args(grad_loss, hidden_in, weight_in, logits_in, targets_in);
  const auto hidden = hidden_in.contiguous();
  const auto weight = weight_in.contiguous();
  const auto logits_t = logits_in.t().contiguous();  // no copy for the forward's own logits
  const auto targets = targets_in.contiguous();
  const int64_t N = hidden.size(0), H = hidden.size(1), V = weight.size(0);

  const auto opts = hidden.options();
  const int64_t n_parts = task_count(N, head_grain(V, H));
  auto scratch = at::empty({2 * N}, opts);  // the softmax's max and sum per row
  auto dlogits_t = at::empty({V, N}, opts);
  auto d_hidden = at::empty({N, H}, opts);
  auto d_weight = at::zeros({V, H}, opts);
  auto d_bias = at::zeros({V}, opts);
  auto parts = at::zeros({(n_parts - 1) * (V * H + V)}, opts);
  AT_DISPATCH_INDEX_TYPES(targets.scalar_type(), "lm_head_loss_backward_cpu_targets", [&] {
    check_target_range(targets.const_data_ptr<index_t>(), N, V);
    AT_DISPATCH_FLOATING_TYPES(hidden.scalar_type(), "lm_head_loss_backward_cpu", [&] {
      backward_impl<scalar_t, index_t>(
          *grad_loss.const_data_ptr<scalar_t>(), hidden.const_data_ptr<scalar_t>(),
          weight.const_data_ptr<scalar_t>(), logits_t.const_data_ptr<scalar_t>(),
          targets.const_data_ptr<index_t>(), scratch.mutable_data_ptr<scalar_t>(),
          dlogits_t.mutable_data_ptr<scalar_t>(), d_hidden.mutable_data_ptr<scalar_t>(),
          d_weight.mutable_data_ptr<scalar_t>(), d_bias.mutable_data_ptr<scalar_t>(),
          parts.mutable_data_ptr<scalar_t>(), N, V, H, n_parts);
    });
  });
  return {d_hidden, d_weight, d_bias};
}

// There is no CUDA kernel (on CUDA, torch's own linear and cross-entropy are fast already).
// Registered for the CUDA key all the same, so that a CUDA call fails in the argument checks
// with a message that names the argument and the alternative, rather than with the
// dispatcher's "Could not run 'rnnfast::lm_head_loss' with arguments from the 'CUDA' backend".
std::tuple<at::Tensor, at::Tensor> lm_head_loss_no_cuda(const at::Tensor& hidden,
                                                        const at::Tensor& weight,
                                                        const at::Tensor& bias,
                                                        const at::Tensor& targets) {
  check_lm_head_loss_args(hidden, weight, bias, targets);  // refuses a non-CPU hidden
  TORCH_CHECK(false, "rnnfast.lm_head_loss: no CUDA kernel");
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lm_head_loss_backward_no_cuda(
    const at::Tensor& grad_loss, const at::Tensor& hidden, const at::Tensor& weight,
    const at::Tensor& logits, const at::Tensor& targets) {
  check_lm_head_loss_backward_args(grad_loss, hidden, weight, logits, targets);
  TORCH_CHECK(false, "rnnfast.lm_head_loss_backward: no CUDA kernel");
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnfast, CPU, m) {
  m.impl("lm_head_loss", &lm_head_loss_cpu);
  m.impl("lm_head_loss_backward", &lm_head_loss_backward_cpu);
}

TORCH_LIBRARY_IMPL(rnnfast, CUDA, m) {
  m.impl("lm_head_loss", &lm_head_loss_no_cuda);
  m.impl("lm_head_loss_backward", &lm_head_loss_backward_no_cuda);
}

}  // namespace rnnfast
