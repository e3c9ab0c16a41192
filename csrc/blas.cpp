// The one run-time choice blas.h leaves open: which library multiplies large float32 matrices.
#include "blas.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>

namespace rnnfast::blas {

namespace {

bool onednn_usable() {
  return at::native::mkldnn_matmul != nullptr && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

bool choose() {
  const char* v = std::getenv("RNNFAST_CPU_GEMM");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0)
    return onednn_usable() && !__builtin_cpu_is("intel");
  if (std::strcmp(v, "blas") == 0) return false;
  TORCH_CHECK(std::strcmp(v, "onednn") == 0, "RNNFAST_CPU_GEMM=", v,
              ": expected auto, blas or onednn");
  TORCH_CHECK(onednn_usable(), "RNNFAST_CPU_GEMM=onednn: ",
              at::native::mkldnn_matmul == nullptr
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

bool onednn_takes(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == at::kFloat && !omp_in_parallel() &&
         a.size(0) * a.size(1) * b.size(1) >= kTorchThreadedMacs && onednn_sgemm_chosen();
}

}  // namespace rnnfast::blas
