// Argument validation for rnnfast::elman_rnn, rnnfast::lm_head_loss and their backwards.
//
// The messages name the argument and what was expected because these errors reach users of
// the nn.Modules, who never see the op's signature. TORCH_CHECK_TYPE / TORCH_CHECK_VALUE map
// to Python's TypeError / ValueError.
#include "elman_rnn.h"
#include "lm_head_loss.h"

#include <c10/util/Exception.h>

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

std::string shape_str(const at::Tensor& t) {
  std::string s = "(";
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d) s += ", ";
    s += std::to_string(t.size(d));
  }
  return s + (t.dim() == 1 ? ",)" : ")");
}

// t must have the dtype and device of ref, the op's first floating argument, named ref_name.
void check_float_like(const char* op, const at::Tensor& t, const char* name,
                      const at::Tensor& ref, const char* ref_name) {
  TORCH_CHECK_TYPE(t.scalar_type() == ref.scalar_type(), op, name, " must have the same dtype as ",
                   ref_name, " (", dtype_name(ref.scalar_type()), "), got ",
                   dtype_name(t.scalar_type()));
  TORCH_CHECK_VALUE(t.device() == ref.device(), op, name, " must be on the same device as ",
                    ref_name, " (", ref.device(), "), got ", t.device());
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

// t must have shape `expected`; `dims` names its dimensions, e.g. "(batch, hidden_size)". The
// message spells the expected sizes out, and is only built on failure: these checks run on
// every call of an op that takes tens of microseconds.
void check_shape(const char* op, const at::Tensor& t, const char* name,
                 std::initializer_list<int64_t> expected, const char* dims, const char* note = "") {
  bool ok = t.dim() == static_cast<int64_t>(expected.size());
  int64_t d = 0;
  for (int64_t e : expected) {
    if (!ok) break;
    ok = t.size(d++) == e;
  }
  if (ok) return;
  std::string want = "(";
  for (int64_t e : expected) want += (want.size() > 1 ? ", " : "") + std::to_string(e);
  want += expected.size() == 1 ? ",)" : ")";
  TORCH_CHECK_VALUE(false, op, name, " must have shape ", dims, " = ", want, note, ", got ",
                    shape_str(t));
}

void check_shape(const at::Tensor& t, const char* name, std::initializer_list<int64_t> expected,
                 const char* dims, const char* note = "") {
  check_shape(kOp, t, name, expected, dims, note);
}

// Checks every argument the forward and the backward share.
void check_common_args(const at::Tensor& tokens, const at::Tensor& emb_weight,
                       const at::Tensor& weight, const std::optional<at::Tensor>& h0) {
  check_index_dtype(kOp, tokens, "tokens");
  TORCH_CHECK_VALUE(tokens.dim() == 2, kOp, "tokens must have shape (batch, seq_len), got ",
                    shape_str(tokens));
  TORCH_CHECK_VALUE(tokens.size(0) >= 1 && tokens.size(1) >= 1, kOp,
                    "tokens must hold at least one batch row and one time step, got shape ",
                    shape_str(tokens));

  const auto ftype = emb_weight.scalar_type();
  if (emb_weight.is_cuda()) {
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
  TORCH_CHECK_VALUE(emb_weight.dim() == 2 && emb_weight.size(0) >= 1 && emb_weight.size(1) >= 1,
                    kOp, "emb_weight must have shape (vocab_size, hidden_size) with both >= 1, got ",
                    shape_str(emb_weight));
  TORCH_CHECK_VALUE(tokens.device() == emb_weight.device(), kOp,
                    "tokens must be on the same device as emb_weight (", emb_weight.device(),
                    "), got ", tokens.device());

  const int64_t B = tokens.size(0);
  const int64_t H = emb_weight.size(1);
  check_float_like(weight, "weight", emb_weight);
  check_shape(weight, "weight", {H, H}, "(hidden_size, hidden_size)", " to match emb_weight");
  if (h0.has_value()) {
    check_float_like(*h0, "h0", emb_weight);
    check_shape(*h0, "h0", {B, H}, "(batch, hidden_size)");
  }
}

}  // namespace

void check_forward_args(const at::Tensor& tokens, const at::Tensor& emb_weight,
                        const at::Tensor& weight, const at::Tensor& bias,
                        const std::optional<at::Tensor>& h0) {
  check_common_args(tokens, emb_weight, weight, h0);
  const int64_t H = emb_weight.size(1);
  check_float_like(bias, "bias", emb_weight);
  check_shape(bias, "bias", {H}, "(hidden_size,)");
}

void check_backward_args(const at::Tensor& grad_hs, const at::Tensor& tokens,
                         const at::Tensor& emb_weight, const at::Tensor& weight,
                         const at::Tensor& hs, const std::optional<at::Tensor>& h0) {
  check_common_args(tokens, emb_weight, weight, h0);
  const int64_t B = tokens.size(0), T = tokens.size(1), H = emb_weight.size(1);
  const char* bth = "(batch, seq_len, hidden_size)";
  check_float_like(hs, "hs", emb_weight);
  check_shape(hs, "hs", {B, T, H}, bth);
  check_float_like(grad_hs, "grad_hs", emb_weight);
  check_shape(grad_hs, "grad_hs", {B, T, H}, bth);
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
  TORCH_CHECK_VALUE(hidden.device().is_cpu(), kHeadOp, "hidden must be a CPU tensor, got one on ",
                    hidden.device(),
                    " (the op has no kernel there: use F.linear and F.cross_entropy, as the "
                    "models' forward_loss does)");
  TORCH_CHECK_VALUE(hidden.dim() == 2 && hidden.size(0) >= 1 && hidden.size(1) >= 1, kHeadOp,
                    "hidden must have shape (rows, hidden_size) with both >= 1, got ",
                    shape_str(hidden));
  const int64_t N = hidden.size(0), H = hidden.size(1);

  check_float_like(kHeadOp, weight, "weight", hidden, "hidden");
  TORCH_CHECK_VALUE(weight.dim() == 2 && weight.size(0) >= 1 && weight.size(1) == H, kHeadOp,
                    "weight must have shape (vocab_size, hidden_size) with vocab_size >= 1 and "
                    "hidden_size = ", H, " to match hidden, got ", shape_str(weight));

  check_index_dtype(kHeadOp, targets, "targets");
  TORCH_CHECK_VALUE(targets.device() == hidden.device(), kHeadOp,
                    "targets must be on the same device as hidden (", hidden.device(), "), got ",
                    targets.device());
  check_shape(kHeadOp, targets, "targets", {N}, "(rows,)", " to match hidden");
}

}  // namespace

void check_lm_head_loss_args(const at::Tensor& hidden, const at::Tensor& weight,
                             const at::Tensor& bias, const at::Tensor& targets) {
  check_head_common_args(hidden, weight, targets);
  check_float_like(kHeadOp, bias, "bias", hidden, "hidden");
  check_shape(kHeadOp, bias, "bias", {weight.size(0)}, "(vocab_size,)", " to match weight");
}

void check_lm_head_loss_backward_args(const at::Tensor& grad_loss, const at::Tensor& hidden,
                                      const at::Tensor& weight, const at::Tensor& logits,
                                      const at::Tensor& targets) {
  check_head_common_args(hidden, weight, targets);
  check_float_like(kHeadOp, grad_loss, "grad_loss", hidden, "hidden");
  TORCH_CHECK_VALUE(grad_loss.dim() == 0, kHeadOp,
                    "grad_loss must be a 0-dim tensor (the loss's gradient), got shape ",
                    shape_str(grad_loss));
  check_float_like(kHeadOp, logits, "logits", hidden, "hidden");
  check_shape(kHeadOp, logits, "logits", {hidden.size(0), weight.size(0)}, "(rows, vocab_size)");
}

}  // namespace rnnfast
