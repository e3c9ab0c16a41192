// Toy kernels that check the emulator itself (sanitizer_controls.cpp).
#pragma once

// Runs one deliberately broken kernel that the sanitizer of this build must report:
//   control-missing-syncthreads     threads read a neighbour's shared-memory write unsynchronised
//                                   (ThreadSanitizer);
//   control-shuffle-is-no-barrier   lanes exchange shared memory around a shuffle only, which
//                                   orders no memory access on a GPU (ThreadSanitizer);
//   control-race-between-ctas       two CTAs run at once write one global word (ThreadSanitizer);
//   control-smem-overflow           a read one byte past the dynamic shared memory
//                                   (AddressSanitizer).
// Returns 0 once the kernel ran, 2 for an unknown name.
int run_control(const char* name);

// Checks that the emulator behaves as a GPU would where the kernels rely on it (built-in
// variables, shuffles, barriers with exited threads, fresh shared memory per CTA) and fails a
// launch where a GPU would misbehave. Prints one line per check; returns the number failed.
int run_emulator_self_checks();
