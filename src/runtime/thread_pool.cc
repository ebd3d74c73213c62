#include "runtime/thread_pool.h"

#include <immintrin.h>

#include "lowbit/status.h"

namespace lowbit {
namespace {

// About 0.25 ms of pause instructions: longer than the gaps between the ParallelFor calls of one
// decoded token, short enough that idle workers soon stop burning a core.
constexpr int kSpinRounds = 4096;

inline void CpuRelax() { _mm_pause(); }

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { WorkerLoop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true, std::memory_order_release);
  }
  start_cv_.notify_all();
  for (std::thread& w : workers_) w.join();
}

// Claims tasks one at a time until none are left.
void ThreadPool::RunTasks(int thread) {
  const std::function<void(int64_t, int)>& job = *job_;
  for (;;) {
    const int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= n_tasks_) return;
    job(task, thread);
  }
}

int64_t ThreadPool::AwaitGeneration(int64_t seen) {
  for (int spin = 0; spin < kSpinRounds; ++spin) {
    const int64_t g = generation_.load(std::memory_order_acquire);
    if (g != seen || stop_.load(std::memory_order_acquire)) return g;
    CpuRelax();
  }
  std::unique_lock<std::mutex> lock(mutex_);
  start_cv_.wait(lock, [&] {
    return stop_.load(std::memory_order_acquire) ||
           generation_.load(std::memory_order_acquire) != seen;
  });
  return generation_.load(std::memory_order_acquire);
}

void ThreadPool::WorkerLoop(int thread) {
  int64_t seen_generation = 0;
  for (;;) {
    seen_generation = AwaitGeneration(seen_generation);
    if (stop_.load(std::memory_order_acquire)) return;
    RunTasks(thread);
    workers_busy_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::ParallelFor(int64_t n_tasks,
                             const std::function<void(int64_t task, int thread)>& fn) {
  if (n_tasks <= 0) return;
  if (n_threads_ == 1 || n_tasks == 1) {
    for (int64_t task = 0; task < n_tasks; ++task) fn(task, 0);
    return;
  }
  LOWBIT_CHECK(job_ == nullptr);  // ParallelFor is not reentrant
  job_ = &fn;
  n_tasks_ = n_tasks;
  next_task_.store(0, std::memory_order_relaxed);
  workers_busy_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    // Under the mutex, so a worker between its last check and its wait cannot miss the bump.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_cv_.notify_all();
  RunTasks(0);
  for (int spin = 0; workers_busy_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin < kSpinRounds) {
      CpuRelax();
    } else {
      std::this_thread::yield();  // a worker may be descheduled (more threads than cores)
    }
  }
  job_ = nullptr;
}

}  // namespace lowbit
