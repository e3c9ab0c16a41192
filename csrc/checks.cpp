// Argument validation for every rnnfast op: rnnfast::elman_rnn, rnnfast::lm_head_loss,
// rnnfast::rnn_layer and their backwards.
//
// The messages name the argument and what was expected because these errors reach users of
// the nn.Modules, who never see the op's signature. TORCH_CHECK_TYPE / TORCH_CHECK_VALUE map
// to Python's TypeError / ValueError.
//
// These checks are the ops' one statement of their input contract: the CPU and CUDA kernels
// call them, and so do the Meta kernels (elman_rnn_meta.cpp, lm_head_loss_meta.cpp,
// rnn_layer_meta.cpp) that torch.compile and torch.export trace with, so a bad shape is refused
// while tracing with the eager message. They are therefore written on symbolic sizes
// (sym_size): while tracing a size may be a symbol (a dynamic batch or sequence length);
// eagerly every size is concrete and the comparisons cost what integer comparisons do. Only
// what reads data (token ids and targets in range, batch_sizes' contents) is left to the real
// kernels.
#include "elman_rnn.h"
#include "lm_head_loss.h"
#include "rnn_layer.h"

#include <c10/core/DispatchKeySet.h>
#include <c10/util/Exception.h>

#include <sstream>
#include <string>

namespace rnnfast {
namespace {

constexpr const char* kOp = "rnnfast.elman_rnn: ";
constexpr const char* kHeadOp = "rnnfast.lm_head_loss: ";

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "torch.float32";
    case at::kDouble: return "torch.float64";
    case at::kHalf: return "torch.float16";
    case at::kBFloat16: return "torch.bfloat16";
    case at::kLong: return "torch.int64";
    case at::kInt: return "torch.int32";
    case at::kShort: return "torch.int16";
    case at::kChar: return "torch.int8";
    case at::kByte: return "torch.uint8";
    case at::kBool: return "torch.bool";
    default: return std::string("torch.") + c10::toString(t);
  }
}

// The device t stands for. While tracing, the Meta kernels see FakeTensors as meta tensors
// (their device() reads meta then), but their dispatch keys still name the backend they fake:
// CPU or CUDA (the index is not recorded there). A real meta tensor is on meta.
c10::Device apparent_device(const at::Tensor& t) {
  if (!t.is_meta()) return t.device();
  const c10::DispatchKeySet keys = t.key_set();
  if (keys.has(c10::DispatchKey::Python)) {
    if (keys.has_backend(c10::BackendComponent::CUDABit)) return c10::Device(c10::kCUDA);
    if (keys.has_backend(c10::BackendComponent::CPUBit)) return c10::Device(c10::kCPU);
  }
  return t.device();
}

bool is_cuda_like(const at::Tensor& t) { return apparent_device(t).is_cuda(); }

// Whether a and b are on the same device (of two FakeTensors: the same kind of device).
bool same_device(const at::Tensor& a, const at::Tensor& b) {
  return apparent_device(a) == apparent_device(b);
}

bool holds(const c10::SymBool& b) { return b.guard_bool(__FILE__, __LINE__); }

// t's shape as Python prints a tuple: "(3, 4)", "(5,)", "()"; open and close "[" "]" give a
// list, as torch.Size's messages do.
std::string sym_shape_str(const at::Tensor& t, const char* open = "(", const char* close = ")") {
  std::string s = open;
  const auto sizes = t.sym_sizes();
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (d) s += ", ";
    std::ostringstream os;
    os << sizes[d];
    s += os.str();
  }
  return s + (sizes.size() == 1 && std::string(close) == ")" ? ",)" : close);
}

template <typename... Sizes>
bool has_shape(const at::Tensor& t, const Sizes&... sizes) {
  if (t.dim() != static_cast<int64_t>(sizeof...(sizes))) return false;
  int64_t d = 0;
  return (holds(t.sym_size(d++) == sizes) && ...);
}

template <typename... Sizes>
std::string shape_of(const Sizes&... sizes) {
  std::ostringstream os;
  os << "(";
  int64_t d = 0;
  ((os << (d++ ? ", " : "") << sizes), ...);
  os << (sizeof...(sizes) == 1 ? ",)" : ")");
  return os.str();
}

// t must have the dtype and device of ref, the op's first floating argument, named ref_name.
void check_float_like(const char* op, const at::Tensor& t, const char* name,
                      const at::Tensor& ref, const char* ref_name) {
  TORCH_CHECK_TYPE(t.scalar_type() == ref.scalar_type(), op, name, " must have the same dtype as ",
                   ref_name, " (", dtype_name(ref.scalar_type()), "), got ",
                   dtype_name(t.scalar_type()));
  TORCH_CHECK_VALUE(same_device(t, ref), op, name, " must be on the same device as ", ref_name,
                    " (", apparent_device(ref), "), got ", apparent_device(t));
}

// t must hold token ids or targets: int64 or int32.
void check_index_dtype(const char* op, const at::Tensor& t, const char* name) {
  const auto type = t.scalar_type();
  TORCH_CHECK_TYPE(type == at::kLong || type == at::kInt, op, name,
                   " must be an integer tensor of dtype torch.int64 or torch.int32, got ",
                   dtype_name(type));
}

void check_float_like(const at::Tensor& t, const char* name, const at::Tensor& emb_weight) {
  check_float_like(kOp, t, name, emb_weight, "emb_weight");
}

// t must have shape (sizes...); `dims` names its dimensions, e.g. "(batch, hidden_size)". The
// message spells the expected sizes out, and is only built on failure: these checks run on
// every call of an op that takes tens of microseconds.
template <typename... Sizes>
void check_shape(const char* op, const at::Tensor& t, const char* name, const char* dims,
                 const char* note, const Sizes&... sizes) {
  if (has_shape(t, sizes...)) return;
  TORCH_CHECK_VALUE(false, op, name, " must have shape ", dims, " = ", shape_of(sizes...), note,
                    ", got ", sym_shape_str(t));
}

// Checks every argument the forward and the backward share.
void check_common_args(const at::Tensor& tokens, const at::Tensor& emb_weight,
                       const at::Tensor& weight, const std::optional<at::Tensor>& h0) {
  check_index_dtype(kOp, tokens, "tokens");
  TORCH_CHECK_VALUE(tokens.dim() == 2, kOp, "tokens must have shape (batch, seq_len), got ",
                    sym_shape_str(tokens));
  TORCH_CHECK_VALUE(holds(tokens.sym_size(0) >= 1) && holds(tokens.sym_size(1) >= 1), kOp,
                    "tokens must hold at least one batch row and one time step, got shape ",
                    sym_shape_str(tokens));

  const auto ftype = emb_weight.scalar_type();
  if (is_cuda_like(emb_weight)) {
    // The CUDA kernels also take 16-bit floats (accumulating in float32); the CPU kernel, and
    // so its message, stays float32/float64.
    TORCH_CHECK_TYPE(ftype == at::kFloat || ftype == at::kDouble || ftype == at::kHalf ||
                         ftype == at::kBFloat16,
                     kOp,
                     "emb_weight must be torch.float32, torch.float64, torch.float16 or "
                     "torch.bfloat16 on CUDA, got ",
                     dtype_name(ftype));
  } else {
    TORCH_CHECK_TYPE(ftype == at::kFloat || ftype == at::kDouble, kOp,
                     "emb_weight must be torch.float32 or torch.float64, got ", dtype_name(ftype));
  }
  TORCH_CHECK_VALUE(emb_weight.dim() == 2 && holds(emb_weight.sym_size(0) >= 1) &&
                        holds(emb_weight.sym_size(1) >= 1),
                    kOp,
                    "emb_weight must have shape (vocab_size, hidden_size) with both >= 1, got ",
                    sym_shape_str(emb_weight));
  TORCH_CHECK_VALUE(same_device(tokens, emb_weight), kOp,
                    "tokens must be on the same device as emb_weight (",
                    apparent_device(emb_weight), "), got ", apparent_device(tokens));

  const c10::SymInt B = tokens.sym_size(0);
  const c10::SymInt H = emb_weight.sym_size(1);
  check_float_like(weight, "weight", emb_weight);
  check_shape(kOp, weight, "weight", "(hidden_size, hidden_size)", " to match emb_weight", H, H);
  if (h0.has_value()) {
    check_float_like(*h0, "h0", emb_weight);
    check_shape(kOp, *h0, "h0", "(batch, hidden_size)", "", B, H);
  }
}

}  // namespace

void check_forward_args(const at::Tensor& tokens, const at::Tensor& emb_weight,
                        const at::Tensor& weight, const at::Tensor& bias,
                        const std::optional<at::Tensor>& h0) {
  check_common_args(tokens, emb_weight, weight, h0);
  const c10::SymInt H = emb_weight.sym_size(1);
  check_float_like(bias, "bias", emb_weight);
  check_shape(kOp, bias, "bias", "(hidden_size,)", "", H);
}

void check_backward_args(const at::Tensor& grad_hs, const at::Tensor& tokens,
                         const at::Tensor& emb_weight, const at::Tensor& weight,
                         const at::Tensor& hs, const std::optional<at::Tensor>& h0) {
  check_common_args(tokens, emb_weight, weight, h0);
  const c10::SymInt B = tokens.sym_size(0), T = tokens.sym_size(1), H = emb_weight.sym_size(1);
  const char* bth = "(batch, seq_len, hidden_size)";
  check_float_like(hs, "hs", emb_weight);
  check_shape(kOp, hs, "hs", bth, "", B, T, H);
  check_float_like(grad_hs, "grad_hs", emb_weight);
  check_shape(kOp, grad_hs, "grad_hs", bth, "", B, T, H);
}

namespace {

// Checks every argument the head's forward and backward share. hidden (N, H) fixes the dtype,
// device and sizes the others must match; weight fixes V.
void check_head_common_args(const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& targets) {
  const auto ftype = hidden.scalar_type();
  TORCH_CHECK_TYPE(ftype == at::kFloat || ftype == at::kDouble, kHeadOp,
                   "hidden must be torch.float32 or torch.float64, got ", dtype_name(ftype),
                   " (for other dtypes use F.linear and F.cross_entropy)");
  // No CUDA kernel: on CUDA, torch's own linear and cross-entropy kernels are fast already.
  // (A FakeTensor standing for a CPU tensor passes; a real meta tensor does not.)
  TORCH_CHECK_VALUE(apparent_device(hidden).is_cpu(), kHeadOp,
                    "hidden must be a CPU tensor, got one on ", apparent_device(hidden),
                    " (the op has no kernel there: use F.linear and F.cross_entropy, as the "
                    "models' forward_loss does)");
  TORCH_CHECK_VALUE(hidden.dim() == 2 && holds(hidden.sym_size(0) >= 1) &&
                        holds(hidden.sym_size(1) >= 1),
                    kHeadOp, "hidden must have shape (rows, hidden_size) with both >= 1, got ",
                    sym_shape_str(hidden));
  const c10::SymInt N = hidden.sym_size(0), H = hidden.sym_size(1);

  check_float_like(kHeadOp, weight, "weight", hidden, "hidden");
  TORCH_CHECK_VALUE(weight.dim() == 2 && holds(weight.sym_size(0) >= 1) &&
                        holds(weight.sym_size(1) == H),
                    kHeadOp,
                    "weight must have shape (vocab_size, hidden_size) with vocab_size >= 1 and "
                    "hidden_size = ", H, " to match hidden, got ", sym_shape_str(weight));

  check_index_dtype(kHeadOp, targets, "targets");
  TORCH_CHECK_VALUE(same_device(targets, hidden), kHeadOp,
                    "targets must be on the same device as hidden (", apparent_device(hidden),
                    "), got ", apparent_device(targets));
  check_shape(kHeadOp, targets, "targets", "(rows,)", " to match hidden", N);
}

}  // namespace

void check_lm_head_loss_args(const at::Tensor& hidden, const at::Tensor& weight,
                             const at::Tensor& bias, const at::Tensor& targets) {
  check_head_common_args(hidden, weight, targets);
  check_float_like(kHeadOp, bias, "bias", hidden, "hidden");
  check_shape(kHeadOp, bias, "bias", "(vocab_size,)", " to match weight", weight.sym_size(0));
}

void check_lm_head_loss_backward_args(const at::Tensor& grad_loss, const at::Tensor& hidden,
                                      const at::Tensor& weight, const at::Tensor& logits,
                                      const at::Tensor& targets) {
  check_head_common_args(hidden, weight, targets);
  check_float_like(kHeadOp, grad_loss, "grad_loss", hidden, "hidden");
  TORCH_CHECK_VALUE(grad_loss.dim() == 0, kHeadOp,
                    "grad_loss must be a 0-dim tensor (the loss's gradient), got shape ",
                    sym_shape_str(grad_loss));
  check_float_like(kHeadOp, logits, "logits", hidden, "hidden");
  check_shape(kHeadOp, logits, "logits", "(rows, vocab_size)", "", hidden.sym_size(0),
              weight.sym_size(0));
}

}  // namespace rnnfast

// --- rnnfast::rnn_layer --------------------------------------------------------------------
//
// Where nn.RNN refuses the same input, the message and the exception type are nn.RNN's, so that
// rnnfast.RNN is a drop-in for it in its errors too.

namespace rnnfast {
namespace {

constexpr const char* kRnn = "rnnfast.rnn_layer: ";

bool float_dtype_ok(const at::Tensor& t) {
  const auto type = t.scalar_type();
  if (type == at::kFloat || type == at::kDouble) return true;
  // The CUDA kernels also take 16-bit floats, accumulating in float32.
  return is_cuda_like(t) && (type == at::kHalf || type == at::kBFloat16);
}

std::string weight_name(int64_t d, int64_t k) {
  static const char* const kNames[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
  return std::string(kNames[k]) + (d == 1 ? "_reverse" : "");
}

}  // namespace

RnnLayerShape check_rnn_layer_args(const at::Tensor& input, at::TensorList weights,
                                   const std::optional<at::Tensor>& hx,
                                   const std::optional<at::Tensor>& batch_sizes,
                                   const c10::SymInt& batch_size, c10::string_view nonlinearity,
                                   bool batch_first, bool bidirectional) {
  RnnLayerShape s;
  if (nonlinearity == "tanh") {
    s.act = Activation::kTanh;
  } else if (nonlinearity == "relu") {
    s.act = Activation::kRelu;
  } else {
    TORCH_CHECK_VALUE(false, "Unknown nonlinearity '", std::string(nonlinearity),
                      "'. Select from 'tanh' or 'relu'.");
  }
  s.D = bidirectional ? 2 : 1;
  const int64_t count = static_cast<int64_t>(weights.size());
  TORCH_CHECK_VALUE(count == 2 * s.D || count == 4 * s.D, kRnn,
                    "weights must hold weight_ih, weight_hh (and bias_ih, bias_hh) for each of "
                    "the ", s.D, " direction(s), got ", count, " tensors");
  const int64_t per_direction = count / s.D;
  s.has_biases = per_direction == 4;

  const at::Tensor& w_ih = weights[0];
  const at::Tensor& w_hh = weights[1];
  TORCH_CHECK_TYPE(float_dtype_ok(w_ih), kRnn,
                   "weight_ih must be torch.float32 or torch.float64 (on CUDA also "
                   "torch.float16 or torch.bfloat16), got ", dtype_name(w_ih.scalar_type()));
  TORCH_CHECK_VALUE(w_hh.dim() == 2 && holds(w_hh.sym_size(0) >= 1), kRnn,
                    "weight_hh must have shape (hidden_size, hidden_size) with hidden_size >= 1, "
                    "got ", sym_shape_str(w_hh));
  s.H = w_hh.sym_size(0);
  TORCH_CHECK_VALUE(w_ih.dim() == 2 && holds(w_ih.sym_size(1) >= 1), kRnn,
                    "weight_ih must have shape (hidden_size, input_size) with input_size >= 1, "
                    "got ", sym_shape_str(w_ih));
  s.I = w_ih.sym_size(1);
  for (int64_t d = 0; d < s.D; ++d) {
    for (int64_t k = 0; k < per_direction; ++k) {
      const at::Tensor& p = weights[d * per_direction + k];
      TORCH_CHECK_TYPE(p.scalar_type() == w_ih.scalar_type(), kRnn, weight_name(d, k),
                       " must have the same dtype as weight_ih (", dtype_name(w_ih.scalar_type()),
                       "), got ", dtype_name(p.scalar_type()));
      TORCH_CHECK_VALUE(p.device() == w_ih.device(), kRnn, weight_name(d, k),
                        " must be on the same device as weight_ih (", w_ih.device(), "), got ",
                        p.device());
      const bool ok = k == 0 ? has_shape(p, s.H, s.I)
                             : (k == 1 ? has_shape(p, s.H, s.H) : has_shape(p, s.H));
      if (!ok) {
        const std::string want = k == 0 ? shape_of(s.H, s.I)
                                        : (k == 1 ? shape_of(s.H, s.H) : shape_of(s.H));
        TORCH_CHECK_VALUE(false, kRnn, weight_name(d, k), " must have shape ", want, ", got ",
                          sym_shape_str(p));
      }
    }
  }

  // The input: nn.RNN's own messages.
  if (input.scalar_type() != w_ih.scalar_type()) {
    const std::string in_type = dtype_name(input.scalar_type());
    const std::string w_type = dtype_name(w_ih.scalar_type());
    TORCH_CHECK_VALUE(false, "RNN input dtype (", in_type, ") does not match weight dtype (",
                      w_type, "). Convert input: input.to(", w_type,
                      "), or convert model: model.to(", in_type, ")");
  }
  TORCH_CHECK(input.device() == w_ih.device(),
              "Input and parameter tensors are not at the same device, found input tensor at ",
              input.device(), " and parameter tensor at ", w_ih.device());
  s.packed = batch_sizes.has_value();
  if (s.packed) {
    const at::Tensor& sizes = *batch_sizes;
    TORCH_CHECK_VALUE(input.dim() == 2, kRnn,
                      "packed input must have shape (rows, input_size), got ",
                      sym_shape_str(input));
    TORCH_CHECK_TYPE(sizes.scalar_type() == at::kLong, kRnn,
                     "batch_sizes must be torch.int64 (a PackedSequence's), got ",
                     dtype_name(sizes.scalar_type()));
    // (Meta while tracing: the Meta kernels see every tensor there.)
    TORCH_CHECK_VALUE(sizes.dim() == 1 && (sizes.device().is_cpu() || sizes.is_meta()), kRnn,
                      "batch_sizes must be a 1-D CPU tensor (a PackedSequence's), got shape ",
                      sym_shape_str(sizes), " on ", sizes.device());
    s.T = sizes.sym_size(0);
    s.N = input.sym_size(0);
    s.B = batch_size;
  } else {
    TORCH_CHECK_VALUE(input.dim() == 3, kRnn, "input must have shape ",
                      batch_first ? "(batch, seq_len, input_size)" : "(seq_len, batch, input_size)",
                      ", got ", sym_shape_str(input));
    s.T = input.sym_size(batch_first ? 1 : 0);
    s.B = input.sym_size(batch_first ? 0 : 1);
    s.N = s.T * s.B;
    TORCH_CHECK_VALUE(holds(batch_size == s.B), kRnn, "batch_size (", batch_size,
                      ") must be the input's batch size (", s.B, ")");
  }
  TORCH_CHECK(holds(s.T >= 1), "Expected sequence length to be larger than 0 in RNN");
  TORCH_CHECK(holds(input.sym_size(-1) == s.I),
              "input.size(-1) must be equal to input_size. Expected ", s.I, ", got ",
              input.sym_size(-1));
  if (hx.has_value()) {
    TORCH_CHECK_VALUE(hx->scalar_type() == w_ih.scalar_type(), kRnn,
                      "hx must have the same dtype as the weights (",
                      dtype_name(w_ih.scalar_type()), "), got ", dtype_name(hx->scalar_type()));
    TORCH_CHECK(hx->device() == w_ih.device(),
                "Input and hidden tensors are not at the same device, found input tensor at ",
                input.device(), " and hidden tensor at ", hx->device());
    TORCH_CHECK(has_shape(*hx, s.D, s.B, s.H), "Expected hidden size ",
                shape_of(s.D, s.B, s.H), ", got ", sym_shape_str(*hx, "[", "]"));
  }
  return s;
}

RnnLayerShape check_rnn_layer_backward_args(
    const std::optional<at::Tensor>& grad_output, const std::optional<at::Tensor>& grad_h_n,
    const at::Tensor& input, at::TensorList weights, const std::optional<at::Tensor>& hx,
    const std::optional<at::Tensor>& batch_sizes, const c10::SymInt& batch_size,
    const at::Tensor& output, c10::string_view nonlinearity, bool batch_first,
    bool bidirectional) {
  const RnnLayerShape s = check_rnn_layer_args(input, weights, hx, batch_sizes, batch_size,
                                               nonlinearity, batch_first, bidirectional);
  const at::Tensor& w = weights[0];
  const c10::SymInt DH = s.H * s.D;
  const auto check_output_like = [&](const at::Tensor& t, const char* name) {
    check_float_like(kRnn, t, name, w, "weight_ih");
    const bool ok = s.packed ? has_shape(t, s.N, DH) : has_shape(t, s.T, s.B, DH);
    TORCH_CHECK_VALUE(ok, kRnn, name, " must have shape ",
                      s.packed ? shape_of(s.N, DH) : shape_of(s.T, s.B, DH), ", got ",
                      sym_shape_str(t));
  };
  check_output_like(output, "output");
  if (grad_output.has_value()) check_output_like(*grad_output, "grad_output");
  if (grad_h_n.has_value()) {
    check_float_like(kRnn, *grad_h_n, "grad_h_n", w, "weight_ih");
    TORCH_CHECK_VALUE(has_shape(*grad_h_n, s.D, s.B, s.H), kRnn, "grad_h_n must have shape ",
                      shape_of(s.D, s.B, s.H), ", got ", sym_shape_str(*grad_h_n));
  }
  return s;
}

void check_batch_sizes(const at::Tensor& batch_sizes, int64_t batch_size, int64_t N) {
  const int64_t T = batch_sizes.size(0);
  const int64_t* sizes = batch_sizes.const_data_ptr<int64_t>();
  int64_t total = 0;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t limit = t == 0 ? batch_size : sizes[t - 1];
    TORCH_CHECK_VALUE(sizes[t] >= 1 && sizes[t] <= limit && (t > 0 || sizes[0] == batch_size),
                      kRnn, "batch_sizes must describe sequences sorted longest first (each "
                      "entry in [1, batch_size = ", batch_size, "], non-increasing, the first "
                      "equal to batch_size), found ", sizes[t], " at position ", t);
    total += sizes[t];
  }
  TORCH_CHECK_VALUE(total == N, kRnn, "batch_sizes must sum to the packed input's rows (", N,
                    "), got ", total);
}

}  // namespace rnnfast
