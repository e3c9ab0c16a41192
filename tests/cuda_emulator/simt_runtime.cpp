// The emulator's run time (see simt.h): launches, CTA and warp barriers, shuffles, the
// emulated device's limits and the CUDA error state.
#include <cuda_runtime_api.h>

#include "simt.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace simt::detail {
namespace {

// The emulated device: an H200's limits.
constexpr int kSmCount = 132;
constexpr int kSmemPerBlockOptin = 232448;
constexpr int kSmemDefaultLimit = 48 * 1024;
constexpr unsigned kMaxThreadsPerBlock = 1024;

// What a misused kernel gets instead of undefined behaviour: the launch fails with this message.
struct Fault : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::chrono::seconds barrier_timeout() {
  // A barrier that some threads never reach (divergent __syncthreads, shuffles in only some
  // lanes) would hang forever; generous, since sanitizers slow threads down a lot.
  const char* env = std::getenv("SIMT_BARRIER_TIMEOUT_S");
  return std::chrono::seconds(env != nullptr ? std::atol(env) : 120);
}

// Sleeping and waking on a 32-bit word. Raw futexes rather than std::atomic::wait, whose
// waiter bookkeeping shares atomics between unrelated waiters: ThreadSanitizer would take that
// for synchronisation between the emulated threads and miss races between them.
void futex_wait(std::atomic<uint32_t>& word, uint32_t value,
                std::chrono::nanoseconds timeout = std::chrono::seconds(1)) {
  const timespec ts{static_cast<time_t>(timeout.count() / 1000000000),
                    static_cast<long>(timeout.count() % 1000000000)};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, value, &ts,
          nullptr, 0);
}

void futex_wake_all(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
          nullptr, 0);
}

// A barrier whose participants may leave (as threads that return from the kernel do).
//
// Arrivals and departures are one atomic word, (participants << 32) | arrived, so exactly one
// of them sees the phase complete; waiters sleep on a futex. The barrier orders memory (C++
// fences around relaxed atomics); whether ThreadSanitizer sees that order is a parameter, as
// it models atomics with acquire/release order but not fences: __syncthreads must be seen,
// a shuffle's barrier must not (see simt.h).
template <bool kVisibleToTsan>
class Barrier {
 public:
  void reset(int participants) {
    state_.store(uint64_t(participants) << 32, std::memory_order_relaxed);
  }

  // Run by whoever completes a phase (the last to arrive, or to leave), before anyone goes on.
  std::function<void()> on_complete;

  // Waits for every participant; returns how many the phase completed with.
  int arrive_and_wait(const char* what) {
    const uint32_t phase = phase_.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    const uint64_t s = state_.fetch_add(1, kRmw) + 1;
    if (arrived(s) == participants(s)) {
      complete(s);
      return arrived(s);
    }
    // Yield a few times before sleeping: with hundreds of threads on a few cores, the others
    // often arrive within a few time slices, and a futex sleep and wake costs more.
    for (int i = 0; i < 16 && phase_.load(kLoad) == phase; ++i) sched_yield();
    const auto deadline = std::chrono::steady_clock::now() + barrier_timeout();
    while (phase_.load(kLoad) == phase) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds(0)) {
        throw Fault(std::string(what) + ": timed out waiting for the other threads (" +
                    std::to_string(arrived(state_.load())) + " of " +
                    std::to_string(participants(state_.load())) +
                    " arrived); a barrier that not every thread reaches?");
      }
      futex_wait(phase_, phase,
                 std::min<std::chrono::nanoseconds>(left, std::chrono::seconds(1)));
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    return last_count_.load(std::memory_order_relaxed);
  }

  void arrive_and_drop() {
    std::atomic_thread_fence(std::memory_order_release);
    const uint64_t s = state_.fetch_sub(uint64_t{1} << 32, kRmw) - (uint64_t{1} << 32);
    if (arrived(s) > 0 && arrived(s) == participants(s)) complete(s);
  }

 private:
  static constexpr std::memory_order kRmw =
      kVisibleToTsan ? std::memory_order_acq_rel : std::memory_order_relaxed;
  static constexpr std::memory_order kLoad =
      kVisibleToTsan ? std::memory_order_acquire : std::memory_order_relaxed;

  static int arrived(uint64_t s) { return static_cast<int>(s & 0xffffffffu); }
  static int participants(uint64_t s) { return static_cast<int>(s >> 32); }

  // Only the completing thread runs this: every other participant is waiting (or gone).
  void complete(uint64_t s) {
    std::atomic_thread_fence(std::memory_order_acquire);
    if (on_complete) on_complete();
    last_count_.store(arrived(s), std::memory_order_relaxed);
    state_.store(uint64_t(participants(s)) << 32, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    phase_.fetch_add(1, kRmw);
    futex_wake_all(phase_);
  }

  std::atomic<uint64_t> state_{0};
  std::atomic<uint32_t> phase_{0};
  std::atomic<int> last_count_{0};
};

using CtaBarrier = Barrier<true>;
using WarpBarrier = Barrier<false>;

struct Warp {
  int size = 0;  // 32, or fewer in a CTA whose blockDim.x is not a multiple of 32
  WarpBarrier barrier;
  // Two buffers, used in turn: a lane can only write one again once every lane has passed the
  // next shuffle's barrier, i.e. has read it. Atomic because the barrier is hidden from
  // ThreadSanitizer (see simt.h); relaxed suffices as the barrier's fences order them.
  std::atomic<uint64_t> slots[2][32];
};

struct AlignedBytes {
  void operator()(unsigned char* p) const { ::operator delete[](p, std::align_val_t{16}); }
};

struct Cta {
  std::unique_ptr<unsigned char[], AlignedBytes> smem;
  CtaBarrier barrier;
  std::atomic<uint64_t> barrier_site{0};  // where this phase's first arrival called it
  std::vector<std::unique_ptr<Warp>> warps;

  Cta(unsigned threads) {
    barrier.on_complete = [this] { barrier_site.store(0, std::memory_order_relaxed); };
    for (unsigned first = 0; first < threads; first += warpSize) {
      warps.push_back(std::make_unique<Warp>());
    }
  }

  // Fresh state for the next CTA run in this slot.
  void reset(unsigned threads, size_t smem_bytes) {
    // Exactly smem_bytes, so that AddressSanitizer reports an access past the end; the old
    // buffer is freed, so that a stale pointer into it is a use after free.
    smem.reset(static_cast<unsigned char*>(::operator new[](smem_bytes, std::align_val_t{16})));
    std::memset(smem.get(), 0xff, smem_bytes);
    barrier.reset(static_cast<int>(threads));
    barrier_site.store(0, std::memory_order_relaxed);
    for (size_t w = 0; w < warps.size(); ++w) {
      warps[w]->size = static_cast<int>(std::min<size_t>(warpSize, threads - w * warpSize));
      warps[w]->barrier.reset(warps[w]->size);
    }
  }
};

// Where the calling emulated thread runs; null outside a kernel.
struct ThreadState {
  Cta* cta = nullptr;
  Warp* warp = nullptr;
  int lane = 0;
  int shuffle_phase = 0;
};
thread_local ThreadState current;

ThreadState& in_kernel(const char* what) {
  if (current.cta == nullptr) throw Fault(std::string(what) + " called outside a kernel");
  return current;
}

// The threads that run the emulated ones, kept from launch to launch (creating hundreds of
// threads per launch dominated the run time, most of all under ThreadSanitizer). Everything
// before a launch happens before its threads run, and everything they did before the launch
// returns, as in stream order; but the hand-over never orders two workers of one launch (each
// has its own start signal, and they only release into the finish count), so that
// ThreadSanitizer still sees races between the emulated threads.
class WorkerPool {
 public:
  // Runs body(i) for every i < n, each on its own thread, all at once; returns when all have.
  void run(unsigned n, const std::function<void(unsigned)>& body) {
    while (workers_.size() < n) {
      workers_.push_back(std::make_unique<Worker>());
      workers_.back()->thread =
          std::thread(&WorkerPool::work, this, workers_.back().get(),
                      static_cast<unsigned>(workers_.size() - 1));
    }
    body_ = &body;
    remaining_.store(n, std::memory_order_relaxed);
    for (unsigned i = 0; i < n; ++i) {
      workers_[i]->start.fetch_add(1, std::memory_order_release);
      futex_wake_all(workers_[i]->start);
    }
    for (uint32_t left; (left = remaining_.load(std::memory_order_acquire)) != 0;) {
      futex_wait(remaining_, left);
    }
    body_ = nullptr;
  }

 private:
  struct Worker {
    alignas(64) std::atomic<uint32_t> start{0};  // bumped once per launch it takes part in
    std::thread thread;  // never joined: the pool lives as long as the process
  };

  void work(Worker* self, unsigned index) {
    for (uint32_t done = 0;; ++done) {
      while (self->start.load(std::memory_order_acquire) == done) futex_wait(self->start, done);
      (*body_)(index);
      if (remaining_.fetch_sub(1, std::memory_order_release) == 1) futex_wake_all(remaining_);
    }
  }

  std::vector<std::unique_ptr<Worker>> workers_;
  const std::function<void(unsigned)>* body_ = nullptr;
  std::atomic<uint32_t> remaining_{0};
};

WorkerPool& workers() {
  static WorkerPool* pool = new WorkerPool;  // leaked on purpose: idle threads end with exit
  return *pool;
}

// One launch at a time: the pool and the emulated threads' state are shared.
std::mutex launch_mutex;

std::atomic<int> ctas_at_once{1};

std::mutex kernel_attributes_mutex;
std::map<const void*, int> max_dynamic_smem;  // cudaFuncSetAttribute, per kernel

// The calling host thread's CUDA error state.
thread_local cudaError_t last_error = cudaSuccess;
thread_local std::string last_detail;

void fail_launch(cudaError_t error, const std::string& detail) {
  last_error = error;
  last_detail = detail;
}

std::string check_launch(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes) {
  if (grid.y != 1 || grid.z != 1 || block.y != 1 || block.z != 1) {
    return "only 1-D grids and blocks are emulated";
  }
  if (grid.x == 0) return "a grid of 0 blocks";
  if (block.x == 0 || block.x > kMaxThreadsPerBlock) {
    return "blockDim.x = " + std::to_string(block.x) + ", not in [1, 1024]";
  }
  int allowed = kSmemDefaultLimit;
  {
    std::lock_guard<std::mutex> lock(kernel_attributes_mutex);
    const auto it = max_dynamic_smem.find(kernel);
    if (it != max_dynamic_smem.end()) allowed = std::max(allowed, it->second);
  }
  if (smem_bytes > static_cast<size_t>(allowed)) {
    return std::to_string(smem_bytes) + " bytes of dynamic shared memory, above the kernel's " +
           "limit of " + std::to_string(allowed) +
           " (raise it with cudaFuncSetAttribute, up to " + std::to_string(kSmemPerBlockOptin) +
           ")";
  }
  return "";
}

}  // namespace

void sync_cta(const char* file, unsigned line) {
  Cta& cta = *in_kernel("__syncthreads").cta;
  // File names are string literals and lines < 2^16: a unique number per call site.
  const uint64_t site = (uint64_t{line} << 48) ^ reinterpret_cast<uintptr_t>(file);
  uint64_t first = 0;
  if (!cta.barrier_site.compare_exchange_strong(first, site, std::memory_order_relaxed) &&
      first != site) {
    throw Fault(std::string("__syncthreads at ") + file + ":" + std::to_string(line) +
                " while other threads of the CTA wait at another __syncthreads (divergent "
                "barriers are undefined on a GPU)");
  }
  cta.barrier.arrive_and_wait("__syncthreads");
}

void shuffle_xor(unsigned mask, const void* in, void* out, size_t bytes, int lane_mask,
                 int width) {
  ThreadState& self = in_kernel("__shfl_xor_sync");
  Warp& warp = *self.warp;
  const unsigned full = warp.size == 32 ? 0xffffffffu : (1u << warp.size) - 1;
  if (mask != full) {
    throw Fault("__shfl_xor_sync: mask " + std::to_string(mask) + " is not the warp's " +
                std::to_string(warp.size) + " lanes (only full-warp shuffles are emulated)");
  }
  if (width != warpSize || lane_mask < 0 || lane_mask >= warpSize) {
    throw Fault("__shfl_xor_sync: width " + std::to_string(width) + ", lane mask " +
                std::to_string(lane_mask) + " (only width 32 is emulated)");
  }
  uint64_t value = 0;
  std::memcpy(&value, in, bytes);
  const int phase = self.shuffle_phase;
  self.shuffle_phase ^= 1;
  warp.slots[phase][self.lane].store(value, std::memory_order_relaxed);
  const int lanes = warp.barrier.arrive_and_wait("__shfl_xor_sync");
  if (lanes != warp.size) {
    throw Fault("__shfl_xor_sync: " + std::to_string(warp.size - lanes) +
                " lanes of the warp have exited, yet the mask names them");
  }
  const int source = self.lane ^ lane_mask;
  if (source >= warp.size) throw Fault("__shfl_xor_sync: source lane outside the warp");
  value = warp.slots[phase][source].load(std::memory_order_relaxed);
  std::memcpy(out, &value, bytes);
}

unsigned char* dynamic_smem() { return in_kernel("RNNFAST_DYNAMIC_SMEM").cta->smem.get(); }

void run_grid(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes,
              const std::function<void()>& body) {
  if (const std::string bad = check_launch(kernel, grid, block, smem_bytes); !bad.empty()) {
    fail_launch(cudaErrorInvalidConfiguration, bad);
    return;
  }
  const std::lock_guard<std::mutex> one_launch_at_a_time(launch_mutex);
  const unsigned threads = block.x, ctas = grid.x;
  const unsigned slots_n = std::min<unsigned>(ctas, std::max(1, ctas_at_once.load()));
  std::vector<std::unique_ptr<Cta>> slots;
  for (unsigned s = 0; s < slots_n; ++s) {
    slots.push_back(std::make_unique<Cta>(threads));
    slots.back()->reset(threads, smem_bytes);
  }
  CtaBarrier between_waves;
  between_waves.reset(static_cast<int>(threads * slots_n));
  between_waves.on_complete = [&] {
    for (auto& slot : slots) slot->reset(threads, smem_bytes);
  };

  std::mutex fault_mutex;
  std::string first_fault;
  const auto record_fault = [&](unsigned cta, unsigned tid, const char* what) {
    std::lock_guard<std::mutex> lock(fault_mutex);
    if (first_fault.empty()) {
      first_fault = "block " + std::to_string(cta) + ", thread " + std::to_string(tid) + ": " +
                    what;
    }
  };

  const auto emulated_thread = [&](unsigned slot, unsigned tid) {
    for (unsigned first = 0; first < ctas; first += slots_n) {
      const unsigned cta_index = first + slot;
      if (cta_index < ctas) {
        Cta& cta = *slots[slot];
        Warp& warp = *cta.warps[tid / warpSize];
        threadIdx = {tid, 0, 0};
        blockIdx = {cta_index, 0, 0};
        blockDim = block;
        gridDim = grid;
        current = ThreadState{&cta, &warp, static_cast<int>(tid % warpSize), 0};
        try {
          body();
        } catch (const std::exception& e) {
          record_fault(cta_index, tid, e.what());
        }
        current = ThreadState{};
        // Returned: no longer part of the CTA's or the warp's barriers.
        cta.barrier.arrive_and_drop();
        warp.barrier.arrive_and_drop();
      }
      if (first + slots_n < ctas) {
        try {
          between_waves.arrive_and_wait("between CTAs");
        } catch (const std::exception& e) {
          record_fault(cta_index, tid, e.what());
          return;
        }
      }
    }
  };

  workers().run(threads * slots_n,
                [&](unsigned i) { emulated_thread(i / threads, i % threads); });
  if (!first_fault.empty()) fail_launch(cudaErrorLaunchFailure, first_fault);
}

cudaError_t set_max_dynamic_smem(const void* kernel, int bytes) {
  if (bytes < 0 || bytes > kSmemPerBlockOptin) {
    fail_launch(cudaErrorInvalidValue, "cudaFuncSetAttribute: " + std::to_string(bytes) +
                                           " bytes is above the device's " +
                                           std::to_string(kSmemPerBlockOptin));
    return cudaErrorInvalidValue;
  }
  std::lock_guard<std::mutex> lock(kernel_attributes_mutex);
  max_dynamic_smem[kernel] = bytes;
  return cudaSuccess;
}

const char* last_error_detail() { return last_detail.c_str(); }

}  // namespace simt::detail

namespace simt {
void set_ctas_at_once(int n) { detail::ctas_at_once.store(n); }
}  // namespace simt

cudaError_t cudaGetLastError() {
  const cudaError_t error = simt::detail::last_error;
  simt::detail::last_error = cudaSuccess;
  return error;
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return cudaErrorInvalidValue;
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = simt::detail::kSmCount; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = simt::detail::kSmemPerBlockOptin;
      return cudaSuccess;
  }
  return cudaErrorInvalidValue;
}
