// C entry points to the emulated kernels (ctypes in harness.py, and sanitizer_driver.cpp): each
// calls the real launcher of csrc/cuda/*.cu on host memory, for one of the four dtypes.
//
// Every function returns 0, or 1 with the reason in rnnfast_emu_last_error(); the kernels'
// own failures (C10_CUDA_KERNEL_LAUNCH_CHECK) arrive here as exceptions.
#include "entry_points.h"

#include <cuda_runtime.h>

#include "../../csrc/cuda/launch.h"
#include "../../csrc/cuda/persistent_plan.h"
#include "../../csrc/cuda/token_error.h"

#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>

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

// Calls f(scalar_t{}) for the dtype code (entry_points.h).
template <typename F>
void dispatch(int dtype, F&& f) {
  switch (dtype) {
    case RNNFAST_EMU_FLOAT32: f(float{}); return;
    case RNNFAST_EMU_FLOAT64: f(double{}); return;
    case RNNFAST_EMU_FLOAT16: f(c10::Half{}); return;
    case RNNFAST_EMU_BFLOAT16: f(c10::BFloat16{}); return;
  }
  throw std::invalid_argument("unknown dtype code " + std::to_string(dtype));
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
using acc = rc::acc_t<T>;

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

int rnnfast_emu_forward_persistent(int dtype, const void* plan, const RnnfastEmuProblem* p,
                                   void* hs) {
  return guarded([&] {
    dispatch(dtype, [&](auto tag) {
      using T = decltype(tag);
      rc::launch_forward_persistent<T>(*static_cast<const rc::PersistentPlan*>(plan),
                                       forward_problem<T>(*p), static_cast<T*>(hs), nullptr);
    });
  });
}

int rnnfast_emu_backward_persistent(int dtype, const void* plan, const RnnfastEmuProblem* p,
                                    void* da, void* u, void* d_emb, void* d_bias,
                                    void* grad_h0) {
  return guarded([&] {
    dispatch(dtype, [&](auto tag) {
      using T = decltype(tag);
      rc::launch_backward_persistent<T>(
          *static_cast<const rc::PersistentPlan*>(plan), backward_problem<T>(*p),
          static_cast<acc<T>*>(da), static_cast<acc<T>*>(u), static_cast<acc<T>*>(d_emb),
          static_cast<acc<T>*>(d_bias), static_cast<T*>(grad_h0), nullptr);
    });
  });
}

int rnnfast_emu_step_forward(int dtype, const RnnfastEmuProblem* p, int64_t t, const void* c,
                             const void* pe, void* hs) {
  return guarded([&] {
    dispatch(dtype, [&](auto tag) {
      using T = decltype(tag);
      rc::launch_step_forward<T>(forward_problem<T>(*p), t, static_cast<const acc<T>*>(c),
                                 static_cast<const acc<T>*>(pe), static_cast<T*>(hs), nullptr);
    });
  });
}

int rnnfast_emu_step_backward(int dtype, const RnnfastEmuProblem* p, int64_t t,
                              const void* carry, void* da, void* u, void* d_emb) {
  return guarded([&] {
    dispatch(dtype, [&](auto tag) {
      using T = decltype(tag);
      rc::launch_step_backward<T>(backward_problem<T>(*p), t, static_cast<const acc<T>*>(carry),
                                  static_cast<T*>(da), static_cast<T*>(u),
                                  static_cast<acc<T>*>(d_emb), nullptr);
    });
  });
}

int rnnfast_emu_backward_finish(int dtype, const RnnfastEmuProblem* p, const void* carry,
                                void* d_emb, void* grad_h0) {
  return guarded([&] {
    dispatch(dtype, [&](auto tag) {
      using T = decltype(tag);
      rc::launch_backward_finish<T>(backward_problem<T>(*p), static_cast<const acc<T>*>(carry),
                                    static_cast<acc<T>*>(d_emb), static_cast<T*>(grad_h0),
                                    nullptr);
    });
  });
}

int rnnfast_emu_narrow(int dtype, const float* const src[3], void* const dst[3],
                       const int64_t n[3]) {
  return guarded([&] {
    const auto run = [&](auto tag) {
      using T = decltype(tag);
      rc::NarrowJob<T> job{};
      for (int i = 0; i < 3; ++i) {
        job.src[i] = src[i];
        job.dst[i] = static_cast<T*>(dst[i]);
        job.n[i] = n[i];
      }
      rc::launch_narrow<T>(job, nullptr);
    };
    if (dtype == RNNFAST_EMU_FLOAT16) {
      run(c10::Half{});
    } else if (dtype == RNNFAST_EMU_BFLOAT16) {
      run(c10::BFloat16{});
    } else {
      throw std::invalid_argument("narrow: only float16 and bfloat16 outputs");
    }
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
