// Host side of the token-error record (see token_error.h for why it exists).
#include "token_error.h"

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/util/Exception.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstring>
#include <mutex>
#include <string>

namespace rnnfast::cuda {

TokenErrorRecord* token_error_record() {
  static TokenErrorRecord* record = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    // cudaHostAlloc is not a stream operation, but under a global-mode graph capture any call
    // that may synchronise is refused; relaxed mode lets the first call happen inside one.
    c10::cuda::CUDAStreamCaptureModeGuard relaxed(cudaStreamCaptureModeRelaxed);
    void* p = nullptr;
    // Mapped: kernels write it directly. Portable: every device may. With unified addressing
    // (every 64-bit platform CUDA supports) the host pointer is the device pointer too.
    C10_CUDA_CHECK(cudaHostAlloc(&p, sizeof(TokenErrorRecord),
                                 cudaHostAllocMapped | cudaHostAllocPortable));
    std::memset(p, 0, sizeof(TokenErrorRecord));
    record = static_cast<TokenErrorRecord*>(p);  // never freed: kernels in graphs keep it
  });
  return record;
}

void raise_pending_token_error() {
  TokenErrorRecord* r = token_error_record();
  const unsigned long long word = __atomic_load_n(&r->word, __ATOMIC_ACQUIRE);
  if (word == 0) return;
  const long long seq_len = __atomic_load_n(&r->seq_len, __ATOMIC_RELAXED);
  const long long vocab = __atomic_load_n(&r->vocab_size, __ATOMIC_RELAXED);
  __atomic_store_n(&r->word, 0ull, __ATOMIC_RELEASE);

  const long long pos = static_cast<long long>((word >> 32) & 0x7fffffffull);
  const int id = static_cast<int>(static_cast<unsigned>(word & 0xffffffffull));
  std::string found;
  if (id == INT_MAX) {
    found = std::to_string(INT_MAX) + " or more";
  } else if (id == INT_MIN) {
    found = std::to_string(INT_MIN) + " or less";
  } else {
    found = std::to_string(id);
  }
  std::string where;
  if (pos == 0x7fffffffll || seq_len <= 0) {
    where = "a position past 2^31 elements";
  } else {
    where = "position (" + std::to_string(pos / seq_len) + ", " + std::to_string(pos % seq_len) +
            ")";
  }
  TORCH_CHECK_INDEX(false, "rnnfast.elman_rnn: tokens must lie in [0, vocab_size) = [0, ", vocab,
                    "), found ", found, " at ", where,
                    ". (On CUDA the ids are checked inside the kernels, which never wait for "
                    "the host, so this is reported by the first rnnfast call after that kernel "
                    "ran; the outputs of the call that received the bad id hold NaN.)");
}

}  // namespace rnnfast::cuda
