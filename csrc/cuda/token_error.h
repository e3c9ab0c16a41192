// Out-of-range token ids on CUDA, reported without a host synchronisation.
//
// The CPU kernel scans the ids before it starts. On the GPU that scan would have to copy a
// verdict back to the host, i.e. wait for the stream, which the op must never do (it would
// serialise training loops and break CUDA graph capture). Device-side asserts are no option
// either: they kill the CUDA context, so the process can do nothing more on the GPU.
//
// What the kernels do instead:
//  * every read indexed by a token checks 0 <= id < vocab_size first, so an invalid id never
//    reads (or, in the backward, writes) outside emb_weight or its gradient;
//  * the embedding row of an invalid id reads as NaN, so hs of that batch row is NaN from that
//    step on (the recurrence spreads it), the backward's weight gradient becomes NaN and
//    nothing is silently wrong;
//  * the kernel writes the bad id and its position into a small record in pinned, mapped host
//    memory (one per process, shared by all devices), which the host can read at any time at
//    no cost;
//  * every rnnfast CUDA call looks at that record when it starts and again once its kernels
//    are queued, and raises the same IndexError as the CPU kernel ("tokens must lie in
//    [0, vocab_size) ...") as soon as a kernel has recorded one; the record is then cleared.
//
// So the error surfaces at the first rnnfast call that runs after the offending kernel has
// finished: in a training loop, one step late at most; with CUDA_LAUNCH_BLOCKING=1, in the
// offending call itself. Between the two, the NaNs make the failure visible.
#pragma once

#include <cstdint>

namespace rnnfast::cuda {

// Written by kernels, read by the host. `word` is what a reader polls: 0 means "no error", else
// bit 63 is set, bits 32..62 hold the flat position b * seq_len + t (saturated) and bits 0..31
// the offending id (saturated to int32). One 64-bit store publishes position and id together,
// so racing writers (several bad ids at once) never mix two reports. seq_len and vocab_size
// are the same for all writers of one call and are written before `word`.
struct TokenErrorRecord {
  unsigned long long word;
  long long seq_len;
  long long vocab_size;
};

// The process-wide record, allocated on first use (capture-safe). Usable from device code.
TokenErrorRecord* token_error_record();

// Raises IndexError (and clears the record) if a kernel has reported an invalid token id.
// Reads host memory only: no CUDA call, no synchronisation.
void raise_pending_token_error();

}  // namespace rnnfast::cuda
