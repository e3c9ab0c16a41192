// The one run-time choice blas.h leaves open: which library multiplies large float32 matrices.
#include "blas.h"

#include <ATen/Context.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>

namespace rnnfast::blas {

namespace {

// A torch built without oneDNN still defines mkldnn_matmul (as a stub that throws), so
// at::hasMKLDNN() decides; the weak symbol's null check covers a torch that lacks it outright.
bool torch_has_onednn() { return at::native::mkldnn_matmul != nullptr && at::hasMKLDNN(); }

bool onednn_usable() {
#if defined(__x86_64__) && defined(__GNUC__)
  return torch_has_onednn() && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
  return false;   // the MKL-on-AMD case this exists for is x86's
#endif
}

bool made_by_intel() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_is("intel");
#else
  return false;
#endif
}

bool choose() {
  const char* v = std::getenv("RNNFAST_CPU_GEMM");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0)
    return onednn_usable() && !made_by_intel();
  if (std::strcmp(v, "blas") == 0) return false;
  TORCH_CHECK(std::strcmp(v, "onednn") == 0, "RNNFAST_CPU_GEMM=", v,
              ": expected auto, blas or onednn");
  TORCH_CHECK(onednn_usable(), "RNNFAST_CPU_GEMM=onednn: ",
              !torch_has_onednn()
                  ? "this torch is built without oneDNN"
                  : "oneDNN's float32 matmul needs a CPU with AVX-512 BW, VL and DQ");
  return true;
}

}  // namespace

// Once per process: kernels size buffers by a task split that depends on the choice, which
// must not change between two calls.
bool onednn_sgemm_chosen() {
  static const bool chosen = choose();
  return chosen;
}

// Also per call, torch's own switches: oneDNN turned off (torch.backends.mkldnn.enabled), or
// float32 products allowed below full precision, which mkldnn_matmul would honour by computing
// in bfloat16 while the other products stay float32.
bool onednn_takes(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == at::kFloat && !omp_in_parallel() &&
         a.size(0) * a.size(1) * b.size(1) >= kTorchThreadedMacs && onednn_sgemm_chosen() &&
         at::globalContext().userEnabledMkldnn() &&
         at::globalContext().float32MatmulPrecision() == at::Float32MatmulPrecision::HIGHEST;
}

}  // namespace rnnfast::blas
