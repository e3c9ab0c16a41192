// C entry points to the emulated kernels (ctypes in harness.py, and sanitizer_driver.cpp): each
// runs the CUDA ops' real host code (csrc/cuda/time_loops.cpp, layer_loops.cpp) and kernels
// (csrc/cuda/*.cu) on host memory, for one of the four dtypes, with host stand-ins for cuBLAS
// and the rest of DeviceOps.
//
// Every function returns 0, or 1 with the reason in rnnfast_emu_last_error(); the kernels'
// own failures (C10_CUDA_KERNEL_LAUNCH_CHECK) arrive here as exceptions.
#include "entry_points.h"

#include <cuda_runtime.h>

#include "../../csrc/cuda/launch.h"
#include "../../csrc/cuda/layer_loops.h"
#include "../../csrc/cuda/persistent_plan.h"
#include "../../csrc/cuda/time_loops.h"
#include "../../csrc/cuda/token_error.h"

#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace rnnfast::cuda {

// The record that the kernels write bad token ids into (token_error.h). On a GPU it lives in
// mapped host memory; here it is plain host memory, read once a launch has returned.
TokenErrorRecord* token_error_record() {
  static TokenErrorRecord record{};
  return &record;
}

}  // namespace rnnfast::cuda

namespace {

namespace rc = rnnfast::cuda;

std::string last_error;

template <typename F>
int guarded(F&& body) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown exception";
  }
  return 1;
}

// Calls f(T{}) for the storage type of a time-loop dtype.
template <typename F>
void with_type(rc::DType t, F&& f) {
  switch (t) {
    case rc::DType::Float: f(float{}); return;
    case rc::DType::Double: f(double{}); return;
    case rc::DType::Half: f(c10::Half{}); return;
    case rc::DType::BFloat16: f(c10::BFloat16{}); return;
  }
  throw std::invalid_argument("unknown DType");
}

// entry_points.h numbers the dtypes in DType's order, so a code converts to a DType.
static_assert(static_cast<int>(rc::DType::Float) == RNNFAST_EMU_FLOAT32 &&
              static_cast<int>(rc::DType::Double) == RNNFAST_EMU_FLOAT64 &&
              static_cast<int>(rc::DType::Half) == RNNFAST_EMU_FLOAT16 &&
              static_cast<int>(rc::DType::BFloat16) == RNNFAST_EMU_BFLOAT16);

// Calls f(T{}) for a dtype code of entry_points.h.
template <typename F>
void dispatch(int dtype, F&& f) {
  if (dtype < RNNFAST_EMU_FLOAT32 || dtype > RNNFAST_EMU_BFLOAT16) {
    throw std::invalid_argument("unknown dtype code " + std::to_string(dtype));
  }
  with_type(static_cast<rc::DType>(dtype), f);
}

template <typename T>
rc::ForwardProblem<T> forward_problem(const RnnfastEmuProblem& p) {
  return {p.tokens,
          p.tokens_int64 != 0,
          static_cast<const T*>(p.emb),
          static_cast<const T*>(p.weight),
          static_cast<const T*>(p.bias),
          static_cast<const T*>(p.h0),
          p.B,
          p.T,
          p.V,
          p.H};
}

template <typename T>
rc::BackwardProblem<T> backward_problem(const RnnfastEmuProblem& p) {
  return {static_cast<const T*>(p.grad_hs),
          static_cast<const T*>(p.hs),
          p.tokens,
          p.tokens_int64 != 0,
          static_cast<const T*>(p.emb),
          static_cast<const T*>(p.weight),
          static_cast<const T*>(p.h0),
          p.B,
          p.T,
          p.V,
          p.H};
}

template <typename T>
rc::LayerProblem<T> layer_problem(const RnnfastEmuLayerProblem& p) {
  return {static_cast<const T*>(p.x),
          static_cast<const T*>(p.w_ih),
          static_cast<const T*>(p.bias),
          {static_cast<const T*>(p.w_hh[0]), static_cast<const T*>(p.w_hh[1])},
          static_cast<const T*>(p.h0),
          p.batch_sizes,
          p.T,
          p.B,
          p.N,
          p.I,
          p.H,
          p.D,
          p.batch_first != 0,
          p.tanh != 0};
}

template <typename T>
rc::LayerGradients<T> layer_gradients(const RnnfastEmuLayerGradients& g) {
  rc::LayerGradients<T> out{static_cast<const T*>(g.out), static_cast<const T*>(g.grad_out),
                            static_cast<const T*>(g.grad_h_n), static_cast<T*>(g.grad_x),
                            {}, {}, {}, {}, static_cast<T*>(g.grad_hx)};
  for (int d = 0; d < 2; ++d) {
    out.w_ih[d] = static_cast<T*>(g.w_ih[d]);
    out.w_hh[d] = static_cast<T*>(g.w_hh[d]);
    out.b_ih[d] = static_cast<T*>(g.b_ih[d]);
    out.b_hh[d] = static_cast<T*>(g.b_hh[d]);
  }
  return out;
}

template <typename T>
using acc = rc::acc_t<T>;

// The device operations on host memory: plain loops that accumulate in float32 (float64 for
// double), as cuBLAS and torch's reductions do on the GPU; launches are synchronous, so there
// is no stream.
class HostDeviceOps final : public rc::DeviceOps {
 public:
  cudaStream_t stream() const override { return nullptr; }

  void gemm(rc::Trans trans_a, rc::Trans trans_b, int64_t m, int64_t n, int64_t k,
            const void* a, int64_t lda, const void* b, int64_t ldb, void* c, int64_t ldc,
            rc::DType ab, rc::DType c_type) override {
    with_type(ab, [&](auto a_tag) {
      with_type(c_type, [&](auto c_tag) {
        using In = decltype(a_tag);
        using Out = decltype(c_tag);
        const In* A = static_cast<const In*>(a);
        const In* B = static_cast<const In*>(b);
        Out* C = static_cast<Out*>(c);
        const bool ta = trans_a == rc::Trans::T, tb = trans_b == rc::Trans::T;
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            acc<In> s = 0;
            for (int64_t l = 0; l < k; ++l) {
              s += static_cast<acc<In>>(ta ? A[l * lda + i] : A[i * lda + l]) *
                   static_cast<acc<In>>(tb ? B[j * ldb + l] : B[l * ldb + j]);
            }
            C[i * ldc + j] = static_cast<Out>(s);
          }
        }
      });
    });
  }

  void column_sum(const void* x, int64_t rows, int64_t cols, int64_t ld, void* out,
                  rc::DType type) override {
    with_type(type, [&](auto tag) {
      using T = decltype(tag);
      const T* X = static_cast<const T*>(x);
      for (int64_t j = 0; j < cols; ++j) {
        acc<T> s = 0;
        for (int64_t i = 0; i < rows; ++i) s += static_cast<acc<T>>(X[i * ld + j]);
        static_cast<T*>(out)[j] = static_cast<T>(s);
      }
    });
  }

  void zero(void* p, size_t bytes) override { std::memset(p, 0, bytes); }
};

// All bits set is a NaN in each of the four dtypes. (The pieces of a workspace are padded to
// carver.h's kAlign, so AddressSanitizer sees an overrun only past the last one.)
std::vector<unsigned char> nan_workspace(size_t bytes) {
  return std::vector<unsigned char>(bytes, 0xFF);
}

}  // namespace
extern "C" {

const char* rnnfast_emu_last_error(void) { return last_error.c_str(); }

size_t rnnfast_emu_sizeof_plan(void) { return sizeof(rc::PersistentPlan); }
size_t rnnfast_emu_sizeof_problem(void) { return sizeof(RnnfastEmuProblem); }

int rnnfast_emu_plan(int64_t B, int64_t H, int dtype, int sms, uint64_t smem_limit,
                     int* found, void* plan_out) {
  return guarded([&] {
    dispatch(dtype, [&](auto tag) {
      using T = decltype(tag);
      const auto plan = rc::plan_for(B, H, sizeof(T), sizeof(acc<T>), sms, smem_limit);
      *found = plan.has_value();
      if (plan) *static_cast<rc::PersistentPlan*>(plan_out) = *plan;
    });
  });
}

int rnnfast_emu_forward(int dtype, const void* plan, const RnnfastEmuProblem* p, void* hs) {
  return guarded([&] {
    dispatch(dtype, [&](auto tag) {
      using T = decltype(tag);
      const auto* persistent = static_cast<const rc::PersistentPlan*>(plan);
      const auto problem = forward_problem<T>(*p);
      auto workspace = nan_workspace(rc::forward_workspace_bytes(persistent, problem));
      HostDeviceOps dev;
      rc::forward(persistent, problem, workspace.data(), static_cast<T*>(hs), dev);
    });
  });
}

int rnnfast_emu_backward(int dtype, const void* plan, const RnnfastEmuProblem* p, void* d_emb,
                         void* d_weight, void* d_bias, void* grad_h0) {
  return guarded([&] {
    dispatch(dtype, [&](auto tag) {
      using T = decltype(tag);
      const auto* persistent = static_cast<const rc::PersistentPlan*>(plan);
      const auto problem = backward_problem<T>(*p);
      auto workspace = nan_workspace(rc::backward_workspace_bytes(persistent, problem));
      const rc::Gradients<T> out{static_cast<T*>(d_emb), static_cast<T*>(d_weight),
                                 static_cast<T*>(d_bias), static_cast<T*>(grad_h0)};
      HostDeviceOps dev;
      rc::backward(persistent, problem, workspace.data(), out, dev);
    });
  });
}

size_t rnnfast_emu_sizeof_layer_problem(void) { return sizeof(RnnfastEmuLayerProblem); }
size_t rnnfast_emu_sizeof_layer_gradients(void) { return sizeof(RnnfastEmuLayerGradients); }

int rnnfast_emu_layer_forward(int dtype, const RnnfastEmuLayerProblem* p, void* out, void* h_n) {
  return guarded([&] {
    dispatch(dtype, [&](auto tag) {
      using T = decltype(tag);
      const auto problem = layer_problem<T>(*p);
      auto workspace = nan_workspace(rc::layer_forward_workspace_bytes(problem));
      HostDeviceOps dev;
      rc::layer_forward(problem, workspace.data(), static_cast<T*>(out), static_cast<T*>(h_n),
                        dev);
    });
  });
}

int rnnfast_emu_layer_backward(int dtype, const RnnfastEmuLayerProblem* p,
                               const RnnfastEmuLayerGradients* g) {
  return guarded([&] {
    dispatch(dtype, [&](auto tag) {
      using T = decltype(tag);
      const auto problem = layer_problem<T>(*p);
      auto workspace = nan_workspace(rc::layer_backward_workspace_bytes(problem));
      HostDeviceOps dev;
      rc::layer_backward(problem, layer_gradients<T>(*g), workspace.data(), dev);
    });
  });
}

void rnnfast_emu_token_error(uint64_t* word, int64_t* seq_len, int64_t* vocab_size) {
  const rc::TokenErrorRecord* r = rc::token_error_record();
  *word = r->word;
  *seq_len = r->seq_len;
  *vocab_size = r->vocab_size;
}

void rnnfast_emu_clear_token_error(void) { *rc::token_error_record() = rc::TokenErrorRecord{}; }

void rnnfast_emu_set_ctas_at_once(int n) { simt::set_ctas_at_once(n); }

}  // extern "C"
