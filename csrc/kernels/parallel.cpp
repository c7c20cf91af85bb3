#include "parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

// The process id tells a forked child (POSIX) that the pool's threads are gone. Windows has
// no fork(), so its pool never needs restarting; _getpid keeps the code path the same.
#ifdef _WIN32
#include <process.h>
#define BRIDGE_GETPID _getpid
using pid_type = int;
#else
#include <unistd.h>
#define BRIDGE_GETPID getpid
using pid_type = pid_t;
#endif

namespace bridge::kernels {
namespace {

// Below this much input a batch is not worth waking a second thread for.
constexpr double kMinBytesPerChunk = 512.0 * 1024.0;

class Pool {
public:
    explicit Pool(int workers) {
        for (int i = 0; i < workers; ++i) threads_.emplace_back([this, i] { loop(i + 1); });
    }
    ~Pool() {
        {
            std::lock_guard<std::mutex> lk(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
    }
    int workers() const { return static_cast<int>(threads_.size()); }

    // Runs task(k) for k in [0, n); the caller runs k = 0.
    void run(int n, const std::function<void(int)>& task) {
        std::unique_lock<std::mutex> lk(mu_);
        task_ = &task;
        pending_ = n - 1;
        active_ = n;
        error_ = nullptr;
        ++generation_;
        lk.unlock();
        cv_.notify_all();
        run_one(0);
        lk.lock();
        done_cv_.wait(lk, [this] { return pending_ == 0; });
        task_ = nullptr;
        if (error_) std::rethrow_exception(error_);
    }

private:
    void run_one(int k) {
        try {
            (*task_)(k);
        } catch (...) {
            std::lock_guard<std::mutex> lk(mu_);
            if (!error_) error_ = std::current_exception();
        }
    }
    void loop(int k) {
        std::uint64_t seen = 0;
        for (;;) {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
            if (k >= active_) continue;
            lk.unlock();
            run_one(k);
            lk.lock();
            if (--pending_ == 0) done_cv_.notify_one();
        }
    }

    std::vector<std::thread> threads_;
    std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    const std::function<void(int)>* task_ = nullptr;
    std::exception_ptr error_;
    std::uint64_t generation_ = 0;
    int pending_ = 0;
    int active_ = 0;
    bool stop_ = false;
};

std::atomic<int> g_threads{0};
std::mutex g_pool_mu;  // one parallel job at a time; others run inline
Pool* g_pool = nullptr;
pid_type g_pool_pid = 0;

int hardware_threads() {
    // Cached: hardware_concurrency() is a system call on Linux.
    static const int n = [] {
        unsigned hw = std::thread::hardware_concurrency();
        return static_cast<int>(std::clamp(hw == 0 ? 1u : hw, 1u, 16u));
    }();
    return n;
}

Pool* pool_locked(int threads) {
    // After fork() the pool's threads do not exist in the child: start anew
    // (the old object is leaked on purpose, its mutexes may be held).
    if (g_pool && g_pool_pid != BRIDGE_GETPID()) g_pool = nullptr;
    if (!g_pool || g_pool->workers() < threads - 1) {
        delete g_pool;  // no job is running: g_pool_mu is held
        g_pool = new Pool(threads - 1);
        g_pool_pid = BRIDGE_GETPID();
    }
    return g_pool;
}

}  // namespace

int max_threads() {
    int n = g_threads.load();
    return n > 0 ? n : hardware_threads();
}

void set_num_threads(int n) { g_threads.store(std::clamp(n, 1, 64)); }

int plan_chunks(index_t rows, double work_bytes) {
    int t = max_threads();
    if (t <= 1 || rows < 2) return 1;
    int by_size = static_cast<int>(work_bytes / kMinBytesPerChunk);
    return static_cast<int>(std::clamp<index_t>(std::min<index_t>(by_size, rows), 1, t));
}

void parallel_chunks(index_t rows, int chunks,
                     const std::function<void(int, index_t, index_t)>& fn) {
    auto range = [&](int k, index_t& b, index_t& e) {
        b = rows * k / chunks;
        e = rows * (k + 1) / chunks;
    };
    if (chunks <= 1) {
        fn(0, 0, rows);
        return;
    }
    std::unique_lock<std::mutex> lk(g_pool_mu, std::try_to_lock);
    if (!lk.owns_lock()) {  // pool busy (another Python thread): run inline
        for (int k = 0; k < chunks; ++k) {
            index_t b, e;
            range(k, b, e);
            fn(k, b, e);
        }
        return;
    }
    Pool* pool = pool_locked(chunks);
    pool->run(chunks, [&](int k) {
        index_t b, e;
        range(k, b, e);
        fn(k, b, e);
    });
}

}  // namespace bridge::kernels
