// Metric states: plain arrays of sums kept in C++, updated by the kernels.
// Every state is a vector of doubles that adds elementwise across batches and
// workers, except ExactCurve, which keeps every score. Thread-safe: updates
// from several threads are serialised per object.
#pragma once

#include <array>
#include <functional>
#include <mutex>
#include <vector>

#include "kernels.hpp"

namespace bridge::kernels {

class Accumulator {
public:
    explicit Accumulator(std::size_t n = 0) : acc_(n, 0.0) {}
    std::vector<double> snapshot() const;
    void assign(const std::vector<double>& v);
    void add(const std::vector<double>& v);
    void reset();
    std::size_t size() const;

    // Runs kernel(out, begin, end) -> bad flags over row chunks and adds the
    // result, or adds nothing when any chunk reports bad input. `atomic`
    // kernels promise to write nothing when they report bad input, so they
    // may write straight into the state when the batch is not split.
    template <class Kernel>
    unsigned update(index_t rows, double bytes, bool atomic, Kernel&& kernel);

protected:
    unsigned run(index_t rows, double bytes, bool atomic,
                 const std::function<unsigned(double*, index_t, index_t)>& kernel);
    std::vector<double> acc_;
    mutable std::mutex mu_;
};

int plan_chunks(index_t rows, double work_bytes);  // parallel.hpp

template <class Kernel>
unsigned Accumulator::update(index_t rows, double bytes, bool atomic, Kernel&& kernel) {
    // Small batches stay on this thread without std::function or heap use.
    if (plan_chunks(rows, bytes) == 1) {
        if (atomic) {
            std::lock_guard<std::mutex> lk(mu_);
            return kernel(acc_.data(), 0, rows);
        }
        constexpr std::size_t kSmall = 64;
        const std::size_t n = size();
        if (n <= kSmall) {
            std::array<double, kSmall> part{};
            unsigned bad = kernel(part.data(), 0, rows);
            if (bad) return bad;
            std::lock_guard<std::mutex> lk(mu_);
            if (acc_.size() != n) return kStateReplaced;
            for (std::size_t i = 0; i < n; ++i) acc_[i] += part[i];
            return kOk;
        }
    }
    return run(rows, bytes, atomic, std::function<unsigned(double*, index_t, index_t)>(kernel));
}

// ---- result helpers (no state) --------------------------------------------

enum class Curve : int { ROC, PR };
enum class Summation : int { Interpolation, Minoring, Majoring };

// Keras's AUC from per-bucket positive/negative weights (T buckets).
double binned_auc(const std::vector<double>& pos, const std::vector<double>& neg, Curve curve,
                  Summation method);

// Cumulative confusion counts at each threshold: tp, fp, tn, fn (4 * T).
std::vector<double> binned_confusion(const std::vector<double>& pos, const std::vector<double>& neg);

// Exact curve state: every (score, weight) kept, split by label.
class ExactCurve {
public:
    unsigned update(const View& y, const View& p, const double* w);
    ExactAreas areas();
    void reset();
    void merge(const ExactCurve& other);
    struct Arrays {
        std::vector<double> pos, neg, pos_w, neg_w;
        bool weighted = false;
    };
    Arrays snapshot() const;
    void assign(const Arrays& a);
    std::size_t size() const;

private:
    void make_weighted_locked();
    std::vector<double> pos_, neg_, pos_w_, neg_w_;
    bool weighted_ = false;
    bool sorted_ = true;
    ExactAreas cached_;
    mutable std::mutex mu_;
};

}  // namespace bridge::kernels
