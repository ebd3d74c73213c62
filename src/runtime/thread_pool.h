// A small fixed-size thread pool for the runtime's data-parallel loops (matmul row tiles,
// attention heads). The calling thread takes part as thread 0, so ThreadPool(1) runs everything
// inline with no worker threads.
//
// Hand-off: decoding one token runs a few hundred short ParallelFor calls (one per linear layer,
// some tens of microseconds each), so waking sleeping workers through the kernel every time would
// cost as much as the work. Workers therefore spin on an atomic generation counter for a while
// (kSpinRounds pauses, about a quarter of a millisecond) before they block on a condition
// variable, and the caller spins (then yields) until the workers are done.
//
// Determinism: ParallelFor hands out task indices dynamically, so WHICH thread runs a task varies
// from run to run; callers must make each task's output depend only on the task index (each task
// writes its own disjoint slice, and per-thread scratch is only scratch). Every loop in
// src/runtime follows that rule, which is why logits are bit-identical for any thread count.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lowbit {

class ThreadPool {
 public:
  // n_threads >= 1 threads in total, the caller included (n_threads - 1 workers are started).
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(task, thread) once for every task in [0, n_tasks), thread in [0, size()), and returns
  // when all calls have returned. Not reentrant: fn must not call ParallelFor on the same pool.
  void ParallelFor(int64_t n_tasks, const std::function<void(int64_t task, int thread)>& fn);

 private:
  void WorkerLoop(int thread);
  void RunTasks(int thread);
  // Waits until generation_ differs from `seen` (or stop_), spinning first; returns generation_.
  int64_t AwaitGeneration(int64_t seen);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;  // guards the sleep/wake of workers (start_cv_), nothing else
  std::condition_variable start_cv_;
  // The job of the current generation: written by ParallelFor before generation_ is bumped
  // (release), read by workers after they see the new generation (acquire).
  const std::function<void(int64_t, int)>* job_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_task_{0};
  std::atomic<int64_t> generation_{0};  // bumped for every ParallelFor call that uses workers
  std::atomic<int> workers_busy_{0};    // workers that have not finished the current generation
  std::atomic<bool> stop_{false};
};

}  // namespace lowbit
