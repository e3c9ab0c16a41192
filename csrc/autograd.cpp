// Autograd for rnnfast::elman_rnn, rnnfast::rnn_layer and rnnfast::lm_head_loss, registered in
// C++ under the Autograd key.
//
// Why C++ rather than torch.library.register_autograd: it halves the per-call overhead (which
// dominates at the book's sizes) and it keeps working without Python, e.g. for a TorchScript
// model loaded from libtorch.
#include "op_handles.h"

#include <torch/autograd.h>
#include <torch/library.h>

namespace rnnfast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::optional<at::Tensor> as_optional(const at::Tensor& t) {
  return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt;
}

// The gradients of the backward op are not implemented. Its outputs get this node only when
// someone differentiates through them (create_graph=True), and only then does it complain.
class ElmanRNNBackwardFunction : public torch::autograd::Function<ElmanRNNBackwardFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& grad_hs,
                               const at::Tensor& tokens, const at::Tensor& emb_weight,
                               const at::Tensor& weight, const at::Tensor& hs,
                               const std::optional<at::Tensor>& h0) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [d_emb, d_w, d_b, d_h0] =
        elman_rnn_backward_op().call(grad_hs, tokens, emb_weight, weight, hs, h0);
    return {d_emb, d_w, d_b, d_h0};
  }

  static variable_list backward(AutogradContext*, variable_list) {
    TORCH_CHECK(false,
                "rnnfast.elman_rnn: double backward (a gradient of the gradient) is not "
                "supported; use the reference backend (rnnfast.reference) if you need it");
  }
};

class ElmanRNNFunction : public torch::autograd::Function<ElmanRNNFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& tokens,
                            const at::Tensor& emb_weight, const at::Tensor& weight,
                            const at::Tensor& bias, const std::optional<at::Tensor>& h0) {
    at::Tensor hs;
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      hs = elman_rnn_op().call(tokens, emb_weight, weight, bias, h0);
    }
    // Saved: the inputs the backward reads and the output hs (its relu mask and h_{t-1});
    // bias is not needed, and nothing is kept per time step beyond hs itself.
    ctx->save_for_backward({tokens, emb_weight, weight, hs, h0.value_or(at::Tensor())});
    return hs;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& h0 = saved[4];
    const auto grads = ElmanRNNBackwardFunction::apply(grad_outputs[0], saved[0], saved[1],
                                                       saved[2], saved[3], as_optional(h0));
    return {at::Tensor(), grads[0], grads[1], grads[2], h0.defined() ? grads[3] : at::Tensor()};
  }
};

at::Tensor elman_rnn_autograd(const at::Tensor& tokens, const at::Tensor& emb_weight,
                              const at::Tensor& weight, const at::Tensor& bias,
                              const std::optional<at::Tensor>& h0) {
  return ElmanRNNFunction::apply(tokens, emb_weight, weight, bias, h0);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> elman_rnn_backward_autograd(
    const at::Tensor& grad_hs, const at::Tensor& tokens, const at::Tensor& emb_weight,
    const at::Tensor& weight, const at::Tensor& hs, const std::optional<at::Tensor>& h0) {
  const auto g = ElmanRNNBackwardFunction::apply(grad_hs, tokens, emb_weight, weight, hs, h0);
  return {g[0], g[1], g[2], g[3]};
}

// As ElmanRNNBackwardFunction: the backward of the head has no gradient of its own.
class LMHeadLossBackwardFunction
    : public torch::autograd::Function<LMHeadLossBackwardFunction> {
 public:
  static variable_list forward(AutogradContext*, const at::Tensor& grad_loss,
                               const at::Tensor& hidden, const at::Tensor& weight,
                               const at::Tensor& logits, const at::Tensor& targets) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [d_hidden, d_weight, d_bias] =
        lm_head_loss_backward_op().call(grad_loss, hidden, weight, logits, targets);
    return {d_hidden, d_weight, d_bias};
  }

  static variable_list backward(AutogradContext*, variable_list) {
    TORCH_CHECK(false,
                "rnnfast.lm_head_loss: double backward (a gradient of the gradient) is not "
                "supported; use F.linear and F.cross_entropy if you need it");
  }
};

class LMHeadLossFunction : public torch::autograd::Function<LMHeadLossFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden,
                               const at::Tensor& weight, const at::Tensor& bias,
                               const at::Tensor& targets) {
    at::Tensor loss, logits;
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      std::tie(loss, logits) = lm_head_loss_op().call(hidden, weight, bias, targets);
    }
    // logits are for metrics (accuracy); a loss on them would need the full linear backward,
    // so they take no gradient rather than a wrong one.
    ctx->mark_non_differentiable({logits});
    // Saved: what the backward reads. The softmax is recomputed from the logits (V per row),
    // and bias is not needed.
    ctx->save_for_backward({hidden, weight, logits, targets});
    return {loss, logits};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto grads = LMHeadLossBackwardFunction::apply(grad_outputs[0], saved[0], saved[1],
                                                         saved[2], saved[3]);
    return {grads[0], grads[1], grads[2], at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> lm_head_loss_autograd(const at::Tensor& hidden,
                                                         const at::Tensor& weight,
                                                         const at::Tensor& bias,
                                                         const at::Tensor& targets) {
  const auto out = LMHeadLossFunction::apply(hidden, weight, bias, targets);
  return {out[0], out[1]};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lm_head_loss_backward_autograd(
    const at::Tensor& grad_loss, const at::Tensor& hidden, const at::Tensor& weight,
    const at::Tensor& logits, const at::Tensor& targets) {
  const auto g = LMHeadLossBackwardFunction::apply(grad_loss, hidden, weight, logits, targets);
  return {g[0], g[1], g[2]};
}

// rnn_layer. The flat list of its tensor arguments, as autograd::Function numbers them (a
// TensorList counts one slot per tensor): input, weights..., hx, batch_sizes, then the
// non-tensor arguments, one slot each.
class RnnLayerBackwardFunction : public torch::autograd::Function<RnnLayerBackwardFunction> {
 public:
  static variable_list forward(AutogradContext*, const std::optional<at::Tensor>& grad_output,
                               const std::optional<at::Tensor>& grad_h_n,
                               const at::Tensor& input, at::TensorList weights,
                               const std::optional<at::Tensor>& hx,
                               const std::optional<at::Tensor>& batch_sizes,
                               c10::SymInt batch_size, const at::Tensor& output,
                               c10::string_view nonlinearity, bool batch_first,
                               bool bidirectional, bool need_grad_input) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [d_input, d_weights, d_hx] = rnn_layer_backward_op().call(
        grad_output, grad_h_n, input, weights, hx, batch_sizes, std::move(batch_size), output,
        nonlinearity, batch_first, bidirectional, need_grad_input);
    variable_list out{d_input};
    out.insert(out.end(), d_weights.begin(), d_weights.end());
    out.push_back(d_hx);
    return out;
  }

  static variable_list backward(AutogradContext*, variable_list) {
    TORCH_CHECK(false,
                "rnnfast.RNN: double backward (a gradient of the gradient) is not supported; "
                "use torch.nn.RNN if you need it");
  }
};

class RnnLayerFunction : public torch::autograd::Function<RnnLayerFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& input,
                               at::TensorList weights, const std::optional<at::Tensor>& hx,
                               const std::optional<at::Tensor>& batch_sizes,
                               c10::SymInt batch_size, c10::string_view nonlinearity,
                               bool batch_first, bool bidirectional) {
    at::Tensor output, h_n;
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      std::tie(output, h_n) = rnn_layer_op().call(input, weights, hx, batch_sizes, batch_size,
                                                  nonlinearity, batch_first, bidirectional);
    }
    // Saved: what the backward reads; the states come from output (act' and h_{t-1}), so
    // neither U nor any per-step buffer is kept.
    variable_list saved{input, output, hx.value_or(at::Tensor()),
                        batch_sizes.value_or(at::Tensor())};
    saved.insert(saved.end(), weights.begin(), weights.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["batch_size"] = batch_size;
    ctx->saved_data["nonlinearity"] = std::string(nonlinearity);
    ctx->saved_data["batch_first"] = batch_first;
    ctx->saved_data["bidirectional"] = bidirectional;
    return {output, h_n};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const std::vector<at::Tensor> weights(saved.begin() + 4, saved.end());
    const auto& hx = saved[2];
    // The first layer's input is often data that takes no gradient: then dX is not computed.
    const bool need_grad_input = ctx->needs_input_grad(0);
    const auto grads = RnnLayerBackwardFunction::apply(
        as_optional(grad_outputs[0]), as_optional(grad_outputs[1]), saved[0], weights,
        as_optional(hx), as_optional(saved[3]), ctx->saved_data["batch_size"].toSymInt(),
        saved[1], ctx->saved_data["nonlinearity"].toStringRef(),
        ctx->saved_data["batch_first"].toBool(), ctx->saved_data["bidirectional"].toBool(),
        need_grad_input);
    // grads: input, weights..., hx. Then one undefined gradient per remaining argument slot:
    // batch_sizes, batch_size, nonlinearity, batch_first, bidirectional.
    variable_list out(grads.begin(), grads.end());
    if (!need_grad_input) out.front() = at::Tensor();
    if (!hx.defined()) out.back() = at::Tensor();
    out.resize(out.size() + 5);
    return out;
  }
};

std::tuple<at::Tensor, at::Tensor> rnn_layer_autograd(const at::Tensor& input,
                                                      at::TensorList weights,
                                                      const std::optional<at::Tensor>& hx,
                                                      const std::optional<at::Tensor>& batch_sizes,
                                                      c10::SymInt batch_size,
                                                      c10::string_view nonlinearity,
                                                      bool batch_first, bool bidirectional) {
  const auto out = RnnLayerFunction::apply(input, weights, hx, batch_sizes, std::move(batch_size),
                                           nonlinearity, batch_first, bidirectional);
  return {out[0], out[1]};
}

std::tuple<at::Tensor, std::vector<at::Tensor>, at::Tensor> rnn_layer_backward_autograd(
    const std::optional<at::Tensor>& grad_output, const std::optional<at::Tensor>& grad_h_n,
    const at::Tensor& input, at::TensorList weights, const std::optional<at::Tensor>& hx,
    const std::optional<at::Tensor>& batch_sizes, c10::SymInt batch_size,
    const at::Tensor& output, c10::string_view nonlinearity, bool batch_first,
    bool bidirectional, bool need_grad_input) {
  const auto g = RnnLayerBackwardFunction::apply(grad_output, grad_h_n, input, weights, hx,
                                                 batch_sizes, std::move(batch_size), output,
                                                 nonlinearity, batch_first, bidirectional,
                                                 need_grad_input);
  return {g.front(), std::vector<at::Tensor>(g.begin() + 1, g.end() - 1), g.back()};
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnfast, Autograd, m) {
  m.impl("rnn_layer", &rnn_layer_autograd);
  m.impl("rnn_layer_backward", &rnn_layer_backward_autograd);
  m.impl("elman_rnn", &elman_rnn_autograd);
  m.impl("elman_rnn_backward", &elman_rnn_backward_autograd);
  m.impl("lm_head_loss", &lm_head_loss_autograd);
  m.impl("lm_head_loss_backward", &lm_head_loss_backward_autograd);
}

}  // namespace rnnfast
