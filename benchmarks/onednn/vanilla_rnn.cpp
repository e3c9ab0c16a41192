// oneDNN's vanilla RNN primitive (one layer, one direction, float32, CPU) behind a small
// torch-extension class, so that benchmarks/onednn_bench.py can time it beside rnnfast on the
// same tensors. Built by that script only (torch.utils.cpp_extension.load against the
// `onednn` extra's headers and libdnnl); nothing else in rnnfast links oneDNN.
//
// oneDNN's cell is h_t = act(W_x x_t + W_h h_{t-1} + b): one bias, weights in its `ldigo`
// layout, i.e. the transposes of torch's (out, in) matrices, (in, out) here. The primitives are
// made once per shape, as a oneDNN user would; every call then only executes them.
#include <torch/extension.h>

#include <oneapi/dnnl/dnnl.hpp>

#include <cstring>
#include <optional>

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

memory::desc layer_desc(int64_t T, int64_t N, int64_t C, bool batch_first) {
  return memory::desc({T, N, C}, dt::f32, batch_first ? tag::ntc : tag::tnc);
}
memory::desc iter_desc(int64_t N, int64_t H) { return {{1, 1, N, H}, dt::f32, tag::ldnc}; }
memory::desc weights_desc(int64_t C, int64_t H, tag t) { return {{1, 1, C, 1, H}, dt::f32, t}; }
memory::desc bias_desc(int64_t H) { return {{1, 1, 1, H}, dt::f32, tag::ldgo}; }

void check_f32(const torch::Tensor& t, const char* name, std::vector<int64_t> numel_of) {
  int64_t n = 1;
  for (auto d : numel_of) n *= d;
  TORCH_CHECK(t.scalar_type() == torch::kFloat && t.is_contiguous() && t.device().is_cpu() &&
                  t.numel() == n,
              "oneDNN vanilla RNN: ", name, " must be a contiguous float32 CPU tensor of ", n,
              " elements, got ", t.sizes(), " ", t.scalar_type());
}

// A tensor's storage seen as oneDNN memory of the given layout (no copy).
memory wrap(const memory::desc& md, const dnnl::engine& eng, const torch::Tensor& t) {
  return memory(md, eng, t.data_ptr());
}

class VanillaRnn {
 public:
  VanillaRnn(int64_t T, int64_t N, int64_t C, int64_t H, bool tanh, bool training,
             bool batch_first)
      : T_(T), N_(N), C_(C), H_(H), training_(training), batch_first_(batch_first),
        eng_(dnnl::engine::kind::cpu, 0), stream_(eng_) {
    const auto act = tanh ? dnnl::algorithm::eltwise_tanh : dnnl::algorithm::eltwise_relu;
    const auto dir = dnnl::rnn_direction::unidirectional_left2right;
    // `any` weights: the primitive picks its own layout, into which set_weights reorders.
    const auto w_any_l = weights_desc(C, H, tag::any), w_any_i = weights_desc(H, H, tag::any);
    fwd_pd_ = dnnl::vanilla_rnn_forward::primitive_desc(
        eng_, training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference,
        act, dir, layer_desc(T, N, C, batch_first), iter_desc(N, H), w_any_l, w_any_i,
        bias_desc(H), layer_desc(T, N, H, batch_first), iter_desc(N, H));
    fwd_ = dnnl::vanilla_rnn_forward(fwd_pd_);
    fwd_w_layer_ = memory(fwd_pd_.weights_layer_desc(), eng_);
    fwd_w_iter_ = memory(fwd_pd_.weights_iter_desc(), eng_);
    if (training) {
      workspace_ = memory(fwd_pd_.workspace_desc(), eng_);
      bwd_pd_ = dnnl::vanilla_rnn_backward::primitive_desc(
          eng_, dnnl::prop_kind::backward, act, dir, layer_desc(T, N, C, batch_first),
          iter_desc(N, H), w_any_l, w_any_i, bias_desc(H), layer_desc(T, N, H, batch_first),
          iter_desc(N, H), layer_desc(T, N, C, batch_first), iter_desc(N, H), w_any_l, w_any_i,
          bias_desc(H), layer_desc(T, N, H, batch_first), iter_desc(N, H), fwd_pd_);
      bwd_ = dnnl::vanilla_rnn_backward(bwd_pd_);
      bwd_w_layer_ = memory(bwd_pd_.weights_layer_desc(), eng_);
      bwd_w_iter_ = memory(bwd_pd_.weights_iter_desc(), eng_);
      bwd_dw_layer_ = memory(bwd_pd_.diff_weights_layer_desc(), eng_);
      bwd_dw_iter_ = memory(bwd_pd_.diff_weights_iter_desc(), eng_);
    }
  }

  // Puts the (in, out) weights into the primitives' own layouts: once for inference, every
  // training step (the weights change between steps).
  void set_weights(const torch::Tensor& w_layer, const torch::Tensor& w_iter,
                   const torch::Tensor& bias) {
    check_f32(w_layer, "w_layer (in, out)", {C_, H_});
    check_f32(w_iter, "w_iter (out, out)", {H_, H_});
    check_f32(bias, "bias", {H_});
    bias_ = bias;
    const auto user_l = wrap(weights_desc(C_, H_, tag::ldigo), eng_, w_layer);
    const auto user_i = wrap(weights_desc(H_, H_, tag::ldigo), eng_, w_iter);
    reorder(user_l, fwd_w_layer_);
    reorder(user_i, fwd_w_iter_);
    if (training_) {
      reorder(user_l, bwd_w_layer_);
      reorder(user_i, bwd_w_iter_);
    }
    stream_.wait();
  }

  // dst (T, N, H) or (N, T, H) and h_n (N, H) are written; h0 (N, H).
  void forward(const torch::Tensor& src, const torch::Tensor& h0, const torch::Tensor& dst,
               const torch::Tensor& h_n) {
    TORCH_CHECK(bias_.defined(), "oneDNN vanilla RNN: set_weights first");
    check_f32(src, "src", {T_, N_, C_});
    check_f32(h0, "h0", {N_, H_});
    check_f32(dst, "dst", {T_, N_, H_});
    check_f32(h_n, "h_n", {N_, H_});
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC_LAYER, wrap(layer_desc(T_, N_, C_, batch_first_), eng_, src)},
        {DNNL_ARG_SRC_ITER, wrap(iter_desc(N_, H_), eng_, h0)},
        {DNNL_ARG_WEIGHTS_LAYER, fwd_w_layer_},
        {DNNL_ARG_WEIGHTS_ITER, fwd_w_iter_},
        {DNNL_ARG_BIAS, wrap(bias_desc(H_), eng_, bias_)},
        {DNNL_ARG_DST_LAYER, wrap(layer_desc(T_, N_, H_, batch_first_), eng_, dst)},
        {DNNL_ARG_DST_ITER, wrap(iter_desc(N_, H_), eng_, h_n)}};
    if (training_) args.insert({DNNL_ARG_WORKSPACE, workspace_});
    fwd_.execute(stream_, args);
    stream_.wait();
  }

  // After forward() with the same src, h0, dst and h_n: the gradients from diff_dst and
  // diff_h_n into diff_src, diff_h0, the (in, out) weights and the bias, all overwritten.
  void backward(const torch::Tensor& src, const torch::Tensor& h0, const torch::Tensor& dst,
                const torch::Tensor& h_n, const torch::Tensor& diff_dst,
                const torch::Tensor& diff_h_n, const torch::Tensor& diff_src,
                const torch::Tensor& diff_h0, const torch::Tensor& diff_w_layer,
                const torch::Tensor& diff_w_iter, const torch::Tensor& diff_bias) {
    TORCH_CHECK(training_, "oneDNN vanilla RNN: backward needs an object made for training");
    check_f32(diff_dst, "diff_dst", {T_, N_, H_});
    check_f32(diff_h_n, "diff_h_n", {N_, H_});
    check_f32(diff_src, "diff_src", {T_, N_, C_});
    check_f32(diff_h0, "diff_h0", {N_, H_});
    check_f32(diff_w_layer, "diff_w_layer", {C_, H_});
    check_f32(diff_w_iter, "diff_w_iter", {H_, H_});
    check_f32(diff_bias, "diff_bias", {H_});
    // oneDNN adds the weight and bias gradients into these buffers rather than setting them.
    zero(bwd_dw_layer_);
    zero(bwd_dw_iter_);
    std::memset(diff_bias.data_ptr(), 0, H_ * sizeof(float));
    const auto layer = [&](int64_t c, const torch::Tensor& t) {
      return wrap(layer_desc(T_, N_, c, batch_first_), eng_, t);
    };
    const auto iter = [&](const torch::Tensor& t) { return wrap(iter_desc(N_, H_), eng_, t); };
    bwd_.execute(stream_, {{DNNL_ARG_SRC_LAYER, layer(C_, src)},
                           {DNNL_ARG_SRC_ITER, iter(h0)},
                           {DNNL_ARG_WEIGHTS_LAYER, bwd_w_layer_},
                           {DNNL_ARG_WEIGHTS_ITER, bwd_w_iter_},
                           {DNNL_ARG_BIAS, wrap(bias_desc(H_), eng_, bias_)},
                           {DNNL_ARG_DST_LAYER, layer(H_, dst)},
                           {DNNL_ARG_DST_ITER, iter(h_n)},
                           {DNNL_ARG_DIFF_DST_LAYER, layer(H_, diff_dst)},
                           {DNNL_ARG_DIFF_DST_ITER, iter(diff_h_n)},
                           {DNNL_ARG_WORKSPACE, workspace_},
                           {DNNL_ARG_DIFF_SRC_LAYER, layer(C_, diff_src)},
                           {DNNL_ARG_DIFF_SRC_ITER, iter(diff_h0)},
                           {DNNL_ARG_DIFF_WEIGHTS_LAYER, bwd_dw_layer_},
                           {DNNL_ARG_DIFF_WEIGHTS_ITER, bwd_dw_iter_},
                           {DNNL_ARG_DIFF_BIAS, wrap(bias_desc(H_), eng_, diff_bias)}});
    reorder(bwd_dw_layer_, wrap(weights_desc(C_, H_, tag::ldigo), eng_, diff_w_layer));
    reorder(bwd_dw_iter_, wrap(weights_desc(H_, H_, tag::ldigo), eng_, diff_w_iter));
    stream_.wait();
  }

  // What the primitives chose, for the report: e.g. "brgemm:avx512_core" or "ref:any".
  std::string implementation() const {
    std::string s = fwd_pd_.impl_info_str();
    if (training_) s += " / " + std::string(bwd_pd_.impl_info_str());
    return s;
  }

 private:
  void reorder(const memory& from, const memory& to) {
    if (from.get_desc() == to.get_desc()) {
      std::memcpy(to.get_data_handle(), from.get_data_handle(), from.get_desc().get_size());
      return;
    }
    memory src = from, dst = to;   // handles: copies share the buffers
    dnnl::reorder(src, dst).execute(stream_, src, dst);
  }
  static void zero(const memory& m) {
    std::memset(m.get_data_handle(), 0, m.get_desc().get_size());
  }

  int64_t T_, N_, C_, H_;
  bool training_, batch_first_;
  dnnl::engine eng_;
  dnnl::stream stream_;
  dnnl::vanilla_rnn_forward::primitive_desc fwd_pd_;
  dnnl::vanilla_rnn_forward fwd_;
  dnnl::vanilla_rnn_backward::primitive_desc bwd_pd_;
  dnnl::vanilla_rnn_backward bwd_;
  memory fwd_w_layer_, fwd_w_iter_, bwd_w_layer_, bwd_w_iter_, bwd_dw_layer_, bwd_dw_iter_,
      workspace_;
  torch::Tensor bias_;
};

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<VanillaRnn>(m, "VanillaRnn")
      .def(pybind11::init<int64_t, int64_t, int64_t, int64_t, bool, bool, bool>(),
           pybind11::arg("T"), pybind11::arg("N"), pybind11::arg("C"), pybind11::arg("H"),
           pybind11::arg("tanh"), pybind11::arg("training"), pybind11::arg("batch_first"))
      .def("set_weights", &VanillaRnn::set_weights)
      .def("forward", &VanillaRnn::forward)
      .def("backward", &VanillaRnn::backward)
      .def("implementation", &VanillaRnn::implementation);
  m.def("version", [] {
    const auto* v = dnnl_version();
    return std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
           std::to_string(v->patch);
  });
}
