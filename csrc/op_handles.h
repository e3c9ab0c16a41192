// Typed handles to the rnnfast ops (declared in ops.cpp), for the kernels that call back into
// the dispatcher: autograd (autograd.cpp) and autocast (autocast.cpp).
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

#include <optional>
#include <tuple>

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

}  // namespace rnnfast
