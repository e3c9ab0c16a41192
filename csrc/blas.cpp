// The one run-time choice blas.h leaves open: which library multiplies large float32 matrices.
#include "blas.h"

#include <ATen/Context.h>
#include <ATen/ops/empty.h>
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

namespace {
// CBLAS's enum values (mkl_cblas.h), which the packing functions take as ints.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;
}  // namespace

PackedRight::PackedRight(const float* m, Op op, int64_t H) : H_(H) {
  if (!available() || H > INT_MAX / H) return;
  const int h = static_cast<int>(H);
  // MKL documents compute calls with the m of the pack call; the packed B did not depend on it
  // here: products of 1 to 300 rows agreed with plain ones whether packed for 1, 64 or 256
  // rows, so it is packed once for whatever rows each step has (the tests hold the walks to
  // nn.RNN and the loop with packed rows that change from step to step).
  const size_t bytes = cblas_sgemm_pack_get_size(kBMatrix, h, h, h);
  buffer_ = at::empty({static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float))},
                      at::TensorOptions().dtype(at::kFloat));
  // In row-major terms op(m) is m^T for Op::T; MKL keeps the packed buffer where it is written
  // (it must not be copied or moved), which a tensor's storage guarantees.
  cblas_sgemm_pack(kRowMajor, kBMatrix, op == Op::T ? kTrans : kNoTrans, h, h, h, 1.f, m, h,
                   buffer_.mutable_data_ptr<float>());
}

void PackedRight::times(const float* in, int64_t ld_in, float* out, int64_t ld_out,
                        int64_t rows) const {
  const int h = static_cast<int>(H_);
  cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, static_cast<int>(rows), h, h, in,
                      static_cast<int>(ld_in), buffer_.const_data_ptr<float>(), h, 0.f, out,
                      static_cast<int>(ld_out));
}

}  // namespace rnnfast::blas
