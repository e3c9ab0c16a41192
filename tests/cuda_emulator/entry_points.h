// The C interface of the emulated kernels (entry_points.cpp), for ctypes and the sanitizer
// driver. Pointers are host memory laid out as the CUDA op lays out device memory (launch.h).
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  RNNFAST_EMU_FLOAT32 = 0,
  RNNFAST_EMU_FLOAT64 = 1,
  RNNFAST_EMU_FLOAT16 = 2,
  RNNFAST_EMU_BFLOAT16 = 3,
};

// One problem for every kernel: the forward reads tokens..h0, the backward also grad_hs and hs
// (and ignores bias). Mirrors ForwardProblem/BackwardProblem of launch.h.
typedef struct {
  const void* tokens;
  int tokens_int64;
  const void* emb;
  const void* weight;
  const void* bias;
  const void* h0;  // null: no h0
  const void* grad_hs;
  const void* hs;
  int64_t B, T, V, H;
} RnnfastEmuProblem;

const char* rnnfast_emu_last_error(void);
size_t rnnfast_emu_sizeof_plan(void);     // so that callers can check their copy of the layout
size_t rnnfast_emu_sizeof_problem(void);

// plan_for (csrc/cuda/persistent_plan.h) for a device with `sms` SMs and `smem_limit` bytes of
// shared memory per CTA; *found = 0 when there is no plan, else plan_out (a PersistentPlan) is
// written.
int rnnfast_emu_plan(int64_t B, int64_t H, int dtype, int sms, uint64_t smem_limit, int* found,
                     void* plan_out);

// The CUDA op's host code (csrc/cuda/time_loops.h) on host memory: `plan` is a PersistentPlan
// for the persistent path, or null for the step-wise path. Buffers are in the input dtype:
// hs (B, T, H); d_emb (V, H), d_weight (H, H), d_bias (H), grad_h0 (B, H). The workspace is
// allocated here, filled with NaN bytes so that a piece read before it is written shows up.
int rnnfast_emu_forward(int dtype, const void* plan, const RnnfastEmuProblem* p, void* hs);
int rnnfast_emu_backward(int dtype, const void* plan, const RnnfastEmuProblem* p, void* d_emb,
                         void* d_weight, void* d_bias, void* grad_h0);

// rnn_layer's host code (csrc/cuda/layer_loops.h) on host memory. Mirrors LayerProblem and
// LayerGradients: w_hh, grad_w_* and grad_b_* hold one pointer per direction; pointers that
// may be null there may be null here. Flags are 0 or 1.
typedef struct {
  const void* x;
  const void* w_ih;
  const void* bias;
  const void* w_hh[2];
  const void* h0;
  const int64_t* batch_sizes;
  int64_t T, B, N, I, H, D;
  int batch_first, tanh;
} RnnfastEmuLayerProblem;

typedef struct {
  const void* out;
  const void* grad_out;
  const void* grad_h_n;
  void* grad_x;
  void* w_ih[2];
  void* w_hh[2];
  void* b_ih[2];
  void* b_hh[2];
  void* grad_hx;
} RnnfastEmuLayerGradients;

size_t rnnfast_emu_sizeof_layer_problem(void);
size_t rnnfast_emu_sizeof_layer_gradients(void);
int rnnfast_emu_layer_forward(int dtype, const RnnfastEmuLayerProblem* p, void* out, void* h_n);
int rnnfast_emu_layer_backward(int dtype, const RnnfastEmuLayerProblem* p,
                               const RnnfastEmuLayerGradients* g);

// The token-error record (csrc/cuda/token_error.h) as the kernels left it, and its reset.
void rnnfast_emu_token_error(uint64_t* word, int64_t* seq_len, int64_t* vocab_size);
void rnnfast_emu_clear_token_error(void);

// CTAs run at once per launch (simt.h); 1 by default.
void rnnfast_emu_set_ctas_at_once(int n);

#ifdef __cplusplus
}  // extern "C"
#endif
