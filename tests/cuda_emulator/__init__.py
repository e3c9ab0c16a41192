"""A SIMT emulator that runs the CUDA kernels' real sources (csrc/cuda/*.cu) on the CPU.

  simt.h, simt_runtime.cpp   what nvcc provides to device code, and the launches (threads,
                             barriers, shuffles, shared memory) behind it
  include/                   stand-ins for <cuda_runtime.h>, <cuda_runtime_api.h> and
                             <c10/cuda/CUDAException.h>, ahead of the real ones on the path
  entry_points.h/.cpp        C entry points that run the CUDA ops' own host code
                             (csrc/cuda/time_loops.cpp, layer_loops.cpp) with host stand-ins
                             for cuBLAS
  harness.py                 those entry points on torch CPU tensors
  sanitizer_driver.cpp       a standalone driver for ThreadSanitizer and AddressSanitizer
  sanitizer_controls.h/.cpp  toy kernels that check the emulator and the sanitizers
  tsan.supp                  the one suppression (the token-error record's volatile stores)
  build.py                   the builds, cached by a hash of their sources
"""
