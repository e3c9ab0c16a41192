// Typed handles to the rnnfast ops (declared in ops.cpp), for the kernels that call back into
// the dispatcher: autograd (autograd.cpp) and autocast (autocast.cpp).
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

#include <optional>
#include <tuple>
#include <vector>

namespace rnnfast {

using ElmanRNNFn = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              const at::Tensor&, const std::optional<at::Tensor>&);
using ElmanRNNBackwardFn = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
    const at::Tensor&, const std::optional<at::Tensor>&);

// Looked up once: the lookup takes a lock and a hash-table search, too much for every call.
inline const c10::TypedOperatorHandle<ElmanRNNFn>& elman_rnn_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("rnnfast::elman_rnn", "")
                             .typed<ElmanRNNFn>();
  return op;
}

inline const c10::TypedOperatorHandle<ElmanRNNBackwardFn>& elman_rnn_backward_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("rnnfast::elman_rnn_backward", "")
                             .typed<ElmanRNNBackwardFn>();
  return op;
}

using LMHeadLossFn = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                        const at::Tensor&, const at::Tensor&);
using LMHeadLossBackwardFn = std::tuple<at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
    const at::Tensor&);

inline const c10::TypedOperatorHandle<LMHeadLossFn>& lm_head_loss_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("rnnfast::lm_head_loss", "")
                             .typed<LMHeadLossFn>();
  return op;
}

inline const c10::TypedOperatorHandle<LMHeadLossBackwardFn>& lm_head_loss_backward_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("rnnfast::lm_head_loss_backward", "")
                             .typed<LMHeadLossBackwardFn>();
  return op;
}

using RnnLayerFn = std::tuple<at::Tensor, at::Tensor>(
    const at::Tensor&, at::TensorList, const std::optional<at::Tensor>&,
    const std::optional<at::Tensor>&, c10::SymInt, c10::string_view, bool, bool);
using RnnLayerBackwardFn = std::tuple<at::Tensor, std::vector<at::Tensor>, at::Tensor>(
    const std::optional<at::Tensor>&, const std::optional<at::Tensor>&, const at::Tensor&,
    at::TensorList, const std::optional<at::Tensor>&, const std::optional<at::Tensor>&,
    c10::SymInt, const at::Tensor&, c10::string_view, bool, bool, bool);

inline const c10::TypedOperatorHandle<RnnLayerFn>& rnn_layer_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("rnnfast::rnn_layer", "")
                             .typed<RnnLayerFn>();
  return op;
}

inline const c10::TypedOperatorHandle<RnnLayerBackwardFn>& rnn_layer_backward_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("rnnfast::rnn_layer_backward", "")
                             .typed<RnnLayerBackwardFn>();
  return op;
}

}  // namespace rnnfast
