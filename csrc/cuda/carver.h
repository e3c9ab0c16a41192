// Carves the host code's scratch out of one workspace (time_loops.cpp, layer_loops.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace rnnfast::cuda {

// cuBLAS and vectorised kernel accesses want aligned operands; at::empty's device memory is.
constexpr size_t kAlign = 256;

// Hands out aligned pieces of a workspace in order; on a null workspace it only counts, so
// that each path's buffers are listed once, for both the size and the pointers.
class Carver {
 public:
  explicit Carver(void* base) : base_(static_cast<unsigned char*>(base)) {}

  template <typename U>
  U* take(int64_t n) {
    U* piece = base_ == nullptr ? nullptr : reinterpret_cast<U*>(base_ + used_);
    used_ += (static_cast<size_t>(n) * sizeof(U) + kAlign - 1) / kAlign * kAlign;
    return piece;
  }
  size_t used() const { return used_; }

 private:
  unsigned char* base_;
  size_t used_ = 0;
};

}  // namespace rnnfast::cuda
