#include "runtime/thread_pool.h"

#include "lowbit/status.h"

namespace lowbit {

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { WorkerLoop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (std::thread& w : workers_) w.join();
}

// Claims tasks one at a time until none are left. Tasks are coarse (a tile of 16..32 matrix rows,
// an attention head), so taking the mutex per task costs little next to the task itself.
void ThreadPool::RunTasks(int thread) {
  std::unique_lock<std::mutex> lock(mutex_);
  const std::function<void(int64_t, int)>* job = job_;
  while (next_task_ < n_tasks_) {
    const int64_t task = next_task_++;
    lock.unlock();
    (*job)(task, thread);
    lock.lock();
  }
}

void ThreadPool::WorkerLoop(int thread) {
  int64_t seen_generation = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen_generation; });
      if (stop_) return;
      seen_generation = generation_;
    }
    RunTasks(thread);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--workers_busy_ == 0) done_cv_.notify_one();
    }
  }
}

void ThreadPool::ParallelFor(int64_t n_tasks,
                             const std::function<void(int64_t task, int thread)>& fn) {
  if (n_tasks <= 0) return;
  if (n_threads_ == 1 || n_tasks == 1) {
    for (int64_t task = 0; task < n_tasks; ++task) fn(task, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    LOWBIT_CHECK(job_ == nullptr);  // ParallelFor is not reentrant
    job_ = &fn;
    n_tasks_ = n_tasks;
    next_task_ = 0;
    workers_busy_ = n_threads_ - 1;
    ++generation_;
  }
  start_cv_.notify_all();
  RunTasks(0);
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [&] { return workers_busy_ == 0; });
  job_ = nullptr;
}

}  // namespace lowbit
