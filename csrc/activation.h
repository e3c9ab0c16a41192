// The cell's nonlinearity, written once: h = act(a), and act's derivative taken from its output
// h (so the backward needs nothing but the states the forward stored).
//
// Every kernel is written once over the activation (a template parameter, as upstream's
// SimpleCell<relu_f | tanh_f> in aten/src/ATen/native/RNN.cpp); `Activation` is the runtime
// choice the ops pass down, turned into the template argument where the loops are compiled
// (pointwise.cpp).
#pragma once

#include "vec_math.h"

namespace rnnfast {

enum class Activation { kRelu, kTanh };

struct Relu {
  // NaN stays NaN, as in torch.relu (a comparison with NaN is false).
  template <typename T>
  static T f(T a) {
    return a < T(0) ? T(0) : a;
  }
  // torch's threshold_backward: the gradient passes where h > 0 (a NaN state passes it).
  template <typename T>
  static T grad(T h, T g) {
    return h <= T(0) ? T(0) : g;
  }
};

struct Tanh {
  template <typename T>
  static T f(T a) {
    return vec_math::tanh(a);
  }
  // torch's tanh_backward: g * (1 - h^2).
  template <typename T>
  static T grad(T h, T g) {
    return g * (T(1) - h * h);
  }
};

}  // namespace rnnfast
