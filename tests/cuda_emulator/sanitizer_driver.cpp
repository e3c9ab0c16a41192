// A standalone program (no Python, no torch library) that runs small cases of every emulated
// kernel, built with ThreadSanitizer or with AddressSanitizer + UBSan (build.py): the CPU
// stand-in for compute-sanitizer's racecheck and memcheck. Each case is checked against a plain
// double-precision loop, so a sanitizer-clean run also computed the right thing.
//
//   sanitizer_driver [--ctas-at-once N]   every case; exit 0 iff all agree (and, under a
//                                         sanitizer, any report makes it exit non-zero)
//   sanitizer_driver control-NAME         one deliberately broken toy kernel
//                                         (sanitizer_controls.h) that the sanitizer must report
//
// Buffers are heap vectors of exactly their size, so AddressSanitizer catches a kernel reading
// or writing past any of them; outputs start as NaN, so an element never written shows up.
#include "entry_points.h"
#include "sanitizer_controls.h"

#include "../../csrc/cuda/launch.h"

#include <algorithm>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using rnnfast::cuda::PersistentPlan;
using Doubles = std::vector<double>;

constexpr uint64_t kH200SmemPerBlock = 232448;
constexpr int kH200Sms = 132;

template <typename T>
constexpr int dtype_code() {
  if constexpr (std::is_same_v<T, float>) return RNNFAST_EMU_FLOAT32;
  if constexpr (std::is_same_v<T, double>) return RNNFAST_EMU_FLOAT64;
  if constexpr (std::is_same_v<T, c10::Half>) return RNNFAST_EMU_FLOAT16;
  return RNNFAST_EMU_BFLOAT16;
}

template <typename T>
const char* dtype_name() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  if constexpr (std::is_same_v<T, double>) return "float64";
  if constexpr (std::is_same_v<T, c10::Half>) return "float16";
  return "bfloat16";
}

template <typename T>
std::vector<T> nans(size_t n) {
  return std::vector<T>(n, T(std::numeric_limits<float>::quiet_NaN()));
}

template <typename T>
Doubles as_doubles(const std::vector<T>& v) {
  Doubles out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<double>(v[i]);
  return out;
}

void check(int status, const char* what) {
  if (status != 0) {
    std::fprintf(stderr, "%s failed: %s\n", what, rnnfast_emu_last_error());
    std::exit(2);
  }
}

struct Shape {
  int64_t B, T, H, V;
};

// One problem's inputs in the storage type T, and the same (rounded) values as doubles for the
// reference loop.
template <typename T>
struct Inputs {
  Shape s;
  bool with_h0;
  bool int64_tokens;
  std::vector<int64_t> tok64;
  std::vector<int32_t> tok32;
  std::vector<T> emb, w, b, h0, grad_hs;

  Inputs(Shape shape, bool h0_given, bool int64, uint64_t seed)
      : s(shape), with_h0(h0_given), int64_tokens(int64) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    std::uniform_int_distribution<int64_t> token(0, s.V - 1);
    const auto fill = [&](std::vector<T>& v, size_t n, double scale, bool relu) {
      v.resize(n);
      for (auto& x : v) {
        const double d = normal(rng) * scale;
        x = T(relu ? std::max(d, 0.0) : d);
      }
    };
    for (int64_t i = 0; i < s.B * s.T; ++i) set_token(i, token(rng));
    fill(emb, s.V * s.H, 1.0, false);
    fill(w, s.H * s.H, 1.0 / std::sqrt(double(s.H)), false);
    fill(b, s.H, 0.1, false);
    if (with_h0) fill(h0, s.B * s.H, 1.0, true);
    fill(grad_hs, s.B * s.T * s.H, 1.0, false);
  }

  void set_token(int64_t i, int64_t id) {
    tok64.resize(s.B * s.T);
    tok32.resize(s.B * s.T);
    tok64[i] = id;
    tok32[i] = static_cast<int32_t>(id);
  }
  int64_t token(int64_t i) const { return int64_tokens ? tok64[i] : tok32[i]; }

  RnnfastEmuProblem problem(const T* hs = nullptr) const {
    RnnfastEmuProblem p{};
    p.tokens = int64_tokens ? static_cast<const void*>(tok64.data()) : tok32.data();
    p.tokens_int64 = int64_tokens;
    p.emb = emb.data();
    p.weight = w.data();
    p.bias = b.data();
    p.h0 = with_h0 ? h0.data() : nullptr;
    p.grad_hs = grad_hs.data();
    p.hs = hs;
    p.B = s.B;
    p.T = s.T;
    p.V = s.V;
    p.H = s.H;
    return p;
  }
};

// ---- the reference loop, in double ---------------------------------------------------------

template <typename T>
Doubles reference_forward(const Inputs<T>& in) {
  const auto [B, T_, H, V] = in.s;
  const Doubles emb = as_doubles(in.emb), w = as_doubles(in.w), b = as_doubles(in.b);
  Doubles hs(B * T_ * H), h(H), next(H);
  for (int64_t r = 0; r < B; ++r) {
    for (int64_t k = 0; k < H; ++k) h[k] = in.with_h0 ? double(in.h0[r * H + k]) : 0.0;
    for (int64_t t = 0; t < T_; ++t) {
      const int64_t x = in.token(r * T_ + t);
      for (int64_t i = 0; i < H; ++i) {
        double a = b[i];
        for (int64_t k = 0; k < H; ++k) a += w[i * H + k] * (h[k] + emb[x * H + k]);
        next[i] = a < 0 ? 0.0 : a;  // keeps NaN, as torch.relu
      }
      h = next;
      for (int64_t i = 0; i < H; ++i) hs[(r * T_ + t) * H + i] = h[i];
    }
  }
  return hs;
}

struct Grads {
  Doubles d_emb, d_w, d_b, d_h0;
};

// Backpropagation through time from the given states hs (the kernel's own, so that a 16-bit
// state rounded across 0 flips the same ReLU on both sides).
template <typename T>
Grads reference_backward(const Inputs<T>& in, const Doubles& hs) {
  const auto [B, T_, H, V] = in.s;
  const Doubles emb = as_doubles(in.emb), w = as_doubles(in.w), g_hs = as_doubles(in.grad_hs);
  Grads g{Doubles(V * H), Doubles(H * H), Doubles(H), Doubles(B * H)};
  Doubles carry(H), da(H), u(H);
  for (int64_t r = 0; r < B; ++r) {
    std::fill(carry.begin(), carry.end(), 0.0);
    for (int64_t t = T_ - 1; t >= 0; --t) {
      const int64_t x = in.token(r * T_ + t);
      for (int64_t i = 0; i < H; ++i) {
        const int64_t at = (r * T_ + t) * H + i;
        da[i] = hs[at] <= 0 ? 0.0 : g_hs[at] + carry[i];
        const double prev = t > 0 ? hs[at - H] : (in.with_h0 ? double(in.h0[r * H + i]) : 0.0);
        u[i] = prev + emb[x * H + i];
      }
      for (int64_t i = 0; i < H; ++i) {
        g.d_b[i] += da[i];
        for (int64_t k = 0; k < H; ++k) g.d_w[i * H + k] += da[i] * u[k];
      }
      for (int64_t k = 0; k < H; ++k) {
        double s = 0;
        for (int64_t i = 0; i < H; ++i) s += da[i] * w[i * H + k];
        carry[k] = s;
        g.d_emb[x * H + k] += s;
      }
    }
    for (int64_t k = 0; k < H; ++k) g.d_h0[r * H + k] = in.with_h0 ? carry[k] : 0.0;
  }
  return g;
}

// ---- comparisons ---------------------------------------------------------------------------

int failures = 0;

// float32/float64: elementwise within tol (relative, and absolute relative to the largest
// entry); 16-bit: relative L2 error within tol. NaN must be where the reference has NaN.
template <typename T>
void expect_close(const std::string& what, const Doubles& got, const Doubles& want) {
  const bool wide = std::is_same_v<T, float> || std::is_same_v<T, double>;
  const double tol = std::is_same_v<T, double> ? 1e-10
                     : std::is_same_v<T, float> ? 1e-4
                     : std::is_same_v<T, c10::Half> ? 1e-2
                                                    : 5e-2;
  double scale = 1.0, err2 = 0.0, norm2 = 0.0;
  for (double x : want) scale = std::max(scale, std::abs(x));
  for (size_t i = 0; i < got.size(); ++i) {
    const bool bad_nan = std::isnan(got[i]) != std::isnan(want[i]);
    const bool off = wide && std::abs(got[i] - want[i]) > tol * (std::abs(want[i]) + scale);
    if (bad_nan || off) {
      std::printf("FAIL %s: element %zu is %.17g, want %.17g\n", what.c_str(), i, got[i],
                  want[i]);
      ++failures;
      return;
    }
    if (!std::isnan(want[i])) {
      err2 += (got[i] - want[i]) * (got[i] - want[i]);
      norm2 += want[i] * want[i];
    }
  }
  if (!wide && std::sqrt(err2) > tol * std::max(std::sqrt(norm2), 1e-12)) {
    std::printf("FAIL %s: relative L2 error %.3g > %.3g\n", what.c_str(),
                std::sqrt(err2 / std::max(norm2, 1e-24)), tol);
    ++failures;
  }
}

// ---- the op, through the CUDA op's own host code (csrc/cuda/time_loops.cpp) -----------------

// plan: the persistent launch shape, or null for the step-wise path.
template <typename T>
std::vector<T> forward_with(const Inputs<T>& in, const PersistentPlan* plan) {
  auto hs = nans<T>(in.s.B * in.s.T * in.s.H);
  const RnnfastEmuProblem p = in.problem();
  check(rnnfast_emu_forward(dtype_code<T>(), plan, &p, hs.data()), "forward");
  return hs;
}

template <typename T>
Grads backward_with(const Inputs<T>& in, const PersistentPlan* plan, const std::vector<T>& hs) {
  const auto [B, T_, H, V] = in.s;
  auto d_emb = nans<T>(V * H), d_w = nans<T>(H * H), d_b = nans<T>(H), grad_h0 = nans<T>(B * H);
  const RnnfastEmuProblem p = in.problem(hs.data());
  check(rnnfast_emu_backward(dtype_code<T>(), plan, &p, d_emb.data(), d_w.data(), d_b.data(),
                             grad_h0.data()),
        "backward");
  return {as_doubles(d_emb), as_doubles(d_w), as_doubles(d_b), as_doubles(grad_h0)};
}

// ---- the cases -----------------------------------------------------------------------------

template <typename T>
PersistentPlan plan_or_die(Shape s, int sms) {
  PersistentPlan plan{};
  int found = 0;
  check(rnnfast_emu_plan(s.B, s.H, dtype_code<T>(), sms, kH200SmemPerBlock, &found, &plan),
        "plan");
  if (!found) {
    std::fprintf(stderr, "no persistent plan for H = %" PRId64 "\n", s.H);
    std::exit(2);
  }
  return plan;
}

// sms = 0: the step-wise path; else the persistent one, planned for that many SMs.
template <typename T>
std::vector<T> forward_on_path(const Inputs<T>& in, int sms) {
  if (sms == 0) return forward_with(in, nullptr);
  const PersistentPlan plan = plan_or_die<T>(in.s, sms);
  return forward_with(in, &plan);
}

template <typename T>
Grads backward_on_path(const Inputs<T>& in, int sms, const std::vector<T>& hs) {
  if (sms == 0) return backward_with(in, nullptr, hs);
  const PersistentPlan plan = plan_or_die<T>(in.s, sms);
  return backward_with(in, &plan, hs);
}

template <typename T>
void run_case(Shape s, int sms, bool with_h0, bool int64_tokens, uint64_t seed) {
  const Inputs<T> in(s, with_h0, int64_tokens, seed);
  char name[300];
  int len = std::snprintf(name, sizeof name, "%s %s B=%" PRId64 " T=%" PRId64 " H=%" PRId64
                          " V=%" PRId64 "%s%s", sms == 0 ? "stepwise" : "persistent",
                          dtype_name<T>(), s.B, s.T, s.H, s.V, with_h0 ? " h0" : "",
                          int64_tokens ? "" : " int32");
  if (sms != 0) {
    const PersistentPlan plan = plan_or_die<T>(s, sms);
    std::snprintf(name + len, sizeof name - len, " [%d SMs: %d rows/CTA, %" PRId64 " CTAs, "
                  "%d threads, group %d, %d outputs/group, %zu B smem]", sms, plan.rows_per_cta,
                  plan.ctas, plan.threads, plan.group, plan.outputs_per_group, plan.smem_bytes);
  }
  const std::string label = name;
  const std::vector<T> hs = forward_on_path(in, sms);
  const Grads grads = backward_on_path(in, sms, hs);
  const int before = failures;
  const Doubles hs_d = as_doubles(hs);
  expect_close<T>(label + ": hs", hs_d, reference_forward(in));
  const Grads want = reference_backward(in, hs_d);
  expect_close<T>(label + ": d_emb", grads.d_emb, want.d_emb);
  expect_close<T>(label + ": d_weight", grads.d_w, want.d_w);
  expect_close<T>(label + ": d_bias", grads.d_b, want.d_b);
  expect_close<T>(label + ": d_h0", grads.d_h0, want.d_h0);
  if (failures == before) std::printf("ok   %s\n", label.c_str());
}

uint64_t expected_record(int64_t pos, int64_t id) {
  const int32_t id32 = static_cast<int32_t>(std::clamp<int64_t>(id, INT32_MIN, INT32_MAX));
  return (uint64_t{1} << 63) | (uint64_t(pos) << 32) | uint64_t(uint32_t(id32));
}

// An out-of-range id at (r, t): its row of hs is NaN from step t on, every other state as
// with a valid id, the record names (r, t) and the id, and nothing outside emb is read
// (AddressSanitizer). The backward with that id reports it as well and gives a NaN dW.
template <typename T>
void run_bad_token(int sms, int64_t bad, bool int64_tokens, int64_t r, int64_t t) {
  const Shape s{5, 6, 16, 7};
  Inputs<T> in(s, true, int64_tokens, 99);
  const Doubles good = reference_forward(in);
  const std::vector<T> good_hs = forward_on_path(in, sms);
  in.set_token(r * s.T + t, bad);
  char name[160];
  std::snprintf(name, sizeof name, "bad token %" PRId64 " (%s) at (%" PRId64 ", %" PRId64
                "), %s %s", bad, int64_tokens ? "int64" : "int32", r, t,
                sms == 0 ? "stepwise" : "persistent", dtype_name<T>());
  const int before = failures;

  rnnfast_emu_clear_token_error();
  const Doubles hs = as_doubles(forward_on_path(in, sms));
  for (int64_t b = 0; b < s.B; ++b) {
    for (int64_t step = 0; step < s.T; ++step) {
      for (int64_t k = 0; k < s.H; ++k) {
        const int64_t at = (b * s.T + step) * s.H + k;
        const bool nan_expected = b == r && step >= t;
        if (nan_expected != std::isnan(hs[at]) ||
            (!nan_expected && std::abs(hs[at] - good[at]) > 1e-4 * (1 + std::abs(good[at])))) {
          std::printf("FAIL %s: hs[%" PRId64 ", %" PRId64 ", %" PRId64 "] = %g, want %s\n",
                      name, b, step, k, hs[at], nan_expected ? "NaN" : "the valid value");
          ++failures;
          return;
        }
      }
    }
  }
  const auto expect_record = [&](const char* which) {
    uint64_t word = 0;
    int64_t seq_len = 0, vocab = 0;
    rnnfast_emu_token_error(&word, &seq_len, &vocab);
    if (word != expected_record(r * s.T + t, bad) || seq_len != s.T || vocab != s.V) {
      std::printf("FAIL %s: %s record %#" PRIx64 " (T %" PRId64 ", V %" PRId64 "), want %#"
                  PRIx64 "\n", name, which, word, seq_len, vocab,
                  expected_record(r * s.T + t, bad));
      ++failures;
    }
    rnnfast_emu_clear_token_error();
  };
  expect_record("forward");

  const Grads grads = backward_on_path(in, sms, good_hs);
  expect_record("backward");
  if (std::none_of(grads.d_w.begin(), grads.d_w.end(), [](double x) { return std::isnan(x); })) {
    std::printf("FAIL %s: the backward's dW has no NaN\n", name);
    ++failures;
  }
  if (failures == before) std::printf("ok   %s\n", name);
}


// ---- rnn_layer, through its own host code (csrc/cuda/layer_loops.cpp) ----------------------

struct LayerShape {
  int64_t T, B, I, H, D;
  bool packed, batch_first, bias, with_h0, tanh;
};

// One layer's inputs in T and as doubles; each row's length (all T unless packed, then sorted
// longest first) and where its step t lies in x and in out.
template <typename T>
struct LayerInputs {
  LayerShape s;
  std::vector<int64_t> lengths, batch_sizes, offset;  // offset[t]: packed row of (t, row 0)
  int64_t N = 0;
  std::vector<T> x, w_ih, bias, w_hh[2], h0, grad_out, grad_h_n;

  LayerInputs(LayerShape shape, uint64_t seed) : s(shape), lengths(s.B, s.T) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    if (s.packed) {
      std::uniform_int_distribution<int64_t> length(1, s.T);
      for (int64_t r = 1; r < s.B; ++r) lengths[r] = length(rng);
      std::sort(lengths.begin(), lengths.end(), std::greater<>());
    }
    for (int64_t t = 0; t < s.T; ++t) {
      offset.push_back(N);
      batch_sizes.push_back(std::count_if(lengths.begin(), lengths.end(),
                                          [&](int64_t n) { return n > t; }));
      N += s.packed ? batch_sizes.back() : s.B;
    }
    const auto fill = [&](std::vector<T>& v, size_t n, double scale) {
      v.resize(n);
      for (auto& e : v) e = T(normal(rng) * scale);
    };
    const double w_scale = 1.0 / std::sqrt(double(s.H));
    fill(x, N * s.I, 1.0);
    fill(w_ih, s.D * s.H * s.I, 1.0 / std::sqrt(double(s.I)));
    if (s.bias) fill(bias, s.D * s.H, 0.1);
    for (int64_t d = 0; d < s.D; ++d) fill(w_hh[d], s.H * s.H, w_scale);
    if (s.with_h0) fill(h0, s.D * s.B * s.H, 1.0);
    fill(grad_out, N * s.D * s.H, 1.0);
    fill(grad_h_n, s.D * s.B * s.H, 1.0);
  }

  int64_t in_row(int64_t t, int64_t r) const {
    return s.packed ? offset[t] + r : (s.batch_first ? r * s.T + t : t * s.B + r);
  }
  int64_t out_row(int64_t t, int64_t r) const { return s.packed ? offset[t] + r : t * s.B + r; }

  RnnfastEmuLayerProblem problem() const {
    return {x.data(), w_ih.data(), s.bias ? bias.data() : nullptr,
            {w_hh[0].data(), s.D == 2 ? w_hh[1].data() : nullptr},
            s.with_h0 ? h0.data() : nullptr, s.packed ? batch_sizes.data() : nullptr,
            s.T, s.B, N, s.I, s.H, s.D, s.batch_first && !s.packed, s.tanh};
  }
};

struct LayerResult {
  Doubles out, h_n, grad_x, grad_hx, w_ih, w_hh, b;  // weights' gradients: directions stacked
};

// Row by row, each direction over the row's own length from h0 (the reverse one from its last
// step), as nn.RNN defines a layer; the backward from the given states.
template <typename T>
LayerResult reference_layer(const LayerInputs<T>& in, const Doubles& states) {
  const LayerShape& s = in.s;
  const int64_t H = s.H, I = s.I, DH = s.D * s.H;
  const Doubles x = as_doubles(in.x), w_ih = as_doubles(in.w_ih), g_out = as_doubles(in.grad_out);
  LayerResult res{Doubles(in.N * DH), Doubles(s.D * s.B * H), Doubles(in.N * I),
                  Doubles(s.D * s.B * H), Doubles(s.D * H * I), Doubles(s.D * H * H),
                  Doubles(s.D * H)};
  const auto act = [&](double a) { return s.tanh ? std::tanh(a) : (a < 0 ? 0.0 : a); };
  for (int64_t d = 0; d < s.D; ++d) {
    const Doubles w_hh = as_doubles(in.w_hh[d]);
    for (int64_t r = 0; r < s.B; ++r) {
      const int64_t L = in.lengths[r];
      const auto time = [&](int64_t k) { return d == 1 ? L - 1 - k : k; };
      const auto h0 = [&](int64_t j) {
        return s.with_h0 ? double(in.h0[(d * s.B + r) * H + j]) : 0.0;
      };
      Doubles h(H), next(H);
      for (int64_t j = 0; j < H; ++j) h[j] = h0(j);
      for (int64_t k = 0; k < L; ++k) {
        const int64_t t = time(k);
        for (int64_t j = 0; j < H; ++j) {
          double a = s.bias ? double(in.bias[d * H + j]) : 0.0;
          const int64_t xr = in.in_row(t, r);
          for (int64_t i = 0; i < I; ++i) a += w_ih[(d * H + j) * I + i] * x[xr * I + i];
          for (int64_t i = 0; i < H; ++i) a += w_hh[j * H + i] * h[i];
          next[j] = act(a);
        }
        h = next;
        for (int64_t j = 0; j < H; ++j) res.out[in.out_row(t, r) * DH + d * H + j] = h[j];
      }
      for (int64_t j = 0; j < H; ++j) res.h_n[(d * s.B + r) * H + j] = h[j];

      Doubles carry(H), da(H), prev(H);
      for (int64_t j = 0; j < H; ++j) carry[j] = double(in.grad_h_n[(d * s.B + r) * H + j]);
      for (int64_t k = L - 1; k >= 0; --k) {
        const int64_t t = time(k), at = in.out_row(t, r) * DH + d * H, xr = in.in_row(t, r);
        for (int64_t j = 0; j < H; ++j) {
          const double hj = states[at + j], g = g_out[at + j] + carry[j];
          da[j] = s.tanh ? g * (1 - hj * hj) : (hj <= 0 ? 0.0 : g);
          prev[j] = k > 0 ? states[in.out_row(time(k - 1), r) * DH + d * H + j] : h0(j);
        }
        for (int64_t j = 0; j < H; ++j) {
          res.b[d * H + j] += da[j];
          for (int64_t i = 0; i < H; ++i) res.w_hh[(d * H + j) * H + i] += da[j] * prev[i];
          for (int64_t i = 0; i < I; ++i) {
            res.w_ih[(d * H + j) * I + i] += da[j] * x[xr * I + i];
            res.grad_x[xr * I + i] += da[j] * w_ih[(d * H + j) * I + i];
          }
        }
        for (int64_t i = 0; i < H; ++i) {
          double sum = 0;
          for (int64_t j = 0; j < H; ++j) sum += da[j] * w_hh[j * H + i];
          carry[i] = sum;
        }
      }
      for (int64_t j = 0; j < H; ++j) {
        res.grad_hx[(d * s.B + r) * H + j] = s.with_h0 ? carry[j] : 0.0;
      }
    }
  }
  return res;
}

template <typename T>
void run_layer_case(LayerShape s, uint64_t seed) {
  const int before = failures;
  const LayerInputs<T> in(s, seed);
  char name[200];
  std::snprintf(name, sizeof name, "rnn_layer %s T=%" PRId64 " B=%" PRId64 " I=%" PRId64
                " H=%" PRId64 "%s%s%s%s%s%s", dtype_name<T>(), s.T, s.B, s.I, s.H,
                s.D == 2 ? " bidirectional" : "", s.packed ? " packed" : "",
                s.batch_first ? " batch_first" : "", s.bias ? "" : " no-bias",
                s.with_h0 ? " h0" : "", s.tanh ? " tanh" : " relu");
  const std::string label = name;
  const int64_t H = s.H, I = s.I, DH = s.D * s.H;
  const RnnfastEmuLayerProblem p = in.problem();
  auto out = nans<T>(in.N * DH), h_n = nans<T>(s.D * s.B * H);
  check(rnnfast_emu_layer_forward(dtype_code<T>(), &p, out.data(), h_n.data()), "layer forward");
  const LayerResult want = reference_layer(in, as_doubles(out));
  expect_close<T>(label + " output", as_doubles(out), want.out);
  expect_close<T>(label + " h_n", as_doubles(h_n), want.h_n);

  auto grad_x = nans<T>(in.N * I), grad_hx = nans<T>(s.D * s.B * H);
  std::vector<std::vector<T>> w_ih, w_hh, b_ih, b_hh;
  RnnfastEmuLayerGradients g{out.data(), in.grad_out.data(), in.grad_h_n.data(), grad_x.data(),
                             {}, {}, {}, {}, grad_hx.data()};
  for (int64_t d = 0; d < s.D; ++d) {
    w_ih.push_back(nans<T>(H * I));
    w_hh.push_back(nans<T>(H * H));
    g.w_ih[d] = w_ih.back().data();
    g.w_hh[d] = w_hh.back().data();
    if (s.bias) {
      b_ih.push_back(nans<T>(H));
      b_hh.push_back(nans<T>(H));
      g.b_ih[d] = b_ih.back().data();
      g.b_hh[d] = b_hh.back().data();
    }
  }
  check(rnnfast_emu_layer_backward(dtype_code<T>(), &p, &g), "layer backward");
  expect_close<T>(label + " grad_input", as_doubles(grad_x), want.grad_x);
  expect_close<T>(label + " grad_hx", as_doubles(grad_hx), want.grad_hx);
  for (int64_t d = 0; d < s.D; ++d) {
    const auto part = [&](const Doubles& v, int64_t n) {
      return Doubles(v.begin() + d * n, v.begin() + (d + 1) * n);
    };
    expect_close<T>(label + " grad weight_ih", as_doubles(w_ih[d]), part(want.w_ih, H * I));
    expect_close<T>(label + " grad weight_hh", as_doubles(w_hh[d]), part(want.w_hh, H * H));
    if (s.bias) {
      expect_close<T>(label + " grad bias_ih", as_doubles(b_ih[d]), part(want.b, H));
      expect_close<T>(label + " grad bias_hh", as_doubles(b_hh[d]), part(want.b, H));
    }
  }
  if (failures == before) std::printf("ok   %s\n", name);
}

}  // namespace

int main(int argc, char** argv) {
  int ctas_at_once = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--ctas-at-once") == 0 && i + 1 < argc) {
      ctas_at_once = std::atoi(argv[++i]);
    } else if (std::strncmp(argv[i], "control-", 8) == 0) {
      return run_control(argv[i]);
    } else {
      std::fprintf(stderr, "usage: %s [--ctas-at-once N] | control-NAME\n", argv[0]);
      return 2;
    }
  }
  rnnfast_emu_set_ctas_at_once(ctas_at_once);
  std::printf("emulator self-checks\n");
  failures += run_emulator_self_checks();

  // Persistent plans for an H200 (132 SMs) and for 1 or 3 SMs, which put several batch rows
  // in a CTA and, past 512 outputs, several outputs on one thread group; dot products split
  // over 1 to 8 lanes; the last CTA with fewer rows; more than 48 KiB of shared memory.
  run_case<float>({3, 4, 64, 5}, kH200Sms, true, true, 1);      // group 8, 3 CTAs
  run_case<double>({3, 4, 64, 5}, kH200Sms, false, false, 2);
  run_case<float>({7, 3, 20, 6}, 1, true, false, 3);            // 7 rows in 1 CTA, group 2
  run_case<double>({40, 3, 16, 7}, 3, true, true, 4);           // 14, 14, 12 rows; group 2
  run_case<float>({9, 3, 100, 5}, 1, false, true, 5);           // group 1, 2 outputs each
  run_case<double>({9, 2, 100, 5}, 1, true, false, 6);          // 103 KiB of shared memory
  run_case<float>({1, 1, 1, 1}, kH200Sms, true, true, 7);
  run_case<c10::Half>({3, 4, 33, 5}, 3, true, true, 8);         // group 4
  run_case<c10::BFloat16>({20, 2, 24, 5}, 1, false, true, 9);
  // The step-wise path: one thread per (row, unit), grids of 1 and several CTAs.
  run_case<float>({3, 4, 40, 5}, 0, true, true, 10);
  run_case<double>({5, 3, 70, 4}, 0, false, false, 11);         // 350 outputs: 2 CTAs
  run_case<c10::Half>({2, 3, 24, 5}, 0, true, true, 12);
  run_case<c10::BFloat16>({2, 2, 150, 3}, 0, true, false, 13);

  // rnn_layer: every layout, both directions (packed rows joining the reverse walk and ending
  // in the forward one), with and without h0 and biases, one and several CTAs per step.
  run_layer_case<double>({5, 4, 3, 6, 2, true, false, true, true, true}, 20);
  run_layer_case<float>({4, 3, 5, 7, 1, true, false, false, false, false}, 21);
  run_layer_case<double>({3, 2, 4, 5, 2, false, true, false, true, false}, 22);
  run_layer_case<float>({2, 20, 3, 17, 2, false, false, true, false, true}, 23);  // 340 outputs
  run_layer_case<c10::Half>({3, 3, 4, 8, 2, true, false, true, true, true}, 24);
  run_layer_case<c10::BFloat16>({3, 2, 2, 6, 1, false, true, true, true, false}, 25);

  // Out-of-range ids, at the first and a middle position, of both token dtypes.
  for (const int sms : {kH200Sms, 0}) {
    run_bad_token<float>(sms, -1, true, 0, 0);
    run_bad_token<float>(sms, 7, true, 2, 3);                 // == V
    run_bad_token<float>(sms, int64_t{1} << 40, true, 4, 5);
    run_bad_token<float>(sms, INT64_MIN, true, 1, 2);
    run_bad_token<float>(sms, INT32_MAX, false, 2, 3);
    run_bad_token<float>(sms, INT32_MIN, false, 3, 0);
  }

  if (failures != 0) {
    std::printf("%d checks FAILED\n", failures);
    return 1;
  }
  std::printf("all checks passed\n");
  return 0;
}
