#include "metrics.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include "parallel.hpp"

namespace bridge::kernels {

std::vector<double> Accumulator::snapshot() const {
    std::lock_guard<std::mutex> lk(mu_);
    return acc_;
}

void Accumulator::assign(const std::vector<double>& v) {
    std::lock_guard<std::mutex> lk(mu_);
    acc_ = v;
}

void Accumulator::add(const std::vector<double>& v) {
    std::lock_guard<std::mutex> lk(mu_);
    if (acc_.size() != v.size()) throw std::invalid_argument("state sizes differ");
    for (std::size_t i = 0; i < v.size(); ++i) acc_[i] += v[i];
}

void Accumulator::reset() {
    std::lock_guard<std::mutex> lk(mu_);
    std::fill(acc_.begin(), acc_.end(), 0.0);
}

std::size_t Accumulator::size() const {
    std::lock_guard<std::mutex> lk(mu_);
    return acc_.size();
}

unsigned Accumulator::run(index_t rows, double bytes, bool atomic,
                          const std::function<unsigned(double*, index_t, index_t)>& kernel) {
    const std::size_t n = size();  // checked again before the partial sums are added
    int chunks = plan_chunks(rows, bytes);
    // Splitting pays for one zeroed partial state per chunk.
    if (chunks > 1 && static_cast<double>(n) * 8.0 * chunks > bytes) chunks = 1;
    if (chunks == 1 && atomic) {
        std::lock_guard<std::mutex> lk(mu_);
        return kernel(acc_.data(), 0, rows);
    }
    constexpr std::size_t kSmall = 64;
    std::array<double, kSmall> small{};
    std::vector<double> big;
    double* part = small.data();
    if (n * chunks > kSmall) {
        big.assign(n * chunks, 0.0);
        part = big.data();
    }
    std::vector<unsigned> bad(chunks, 0u);
    parallel_chunks(rows, chunks, [&](int k, index_t b, index_t e) {
        bad[k] = kernel(part + n * k, b, e);
    });
    unsigned all = 0;
    for (unsigned b : bad) all |= b;
    if (all) return all;
    std::lock_guard<std::mutex> lk(mu_);
    if (acc_.size() != n) return kStateReplaced;
    for (int k = 0; k < chunks; ++k)
        for (std::size_t i = 0; i < n; ++i) acc_[i] += part[n * k + i];
    return kOk;
}

// ---- binned curves ---------------------------------------------------------

std::vector<double> binned_confusion(const std::vector<double>& pos, const std::vector<double>& neg) {
    const std::size_t T = pos.size();
    std::vector<double> out(4 * T, 0.0);
    double P = 0.0, N = 0.0;
    for (std::size_t k = 0; k < T; ++k) {
        P += pos[k];
        N += neg[k];
    }
    double tp = 0.0, fp = 0.0;
    for (std::size_t k = T; k-- > 0;) {
        tp += pos[k];
        fp += neg[k];
        out[k] = tp;
        out[T + k] = fp;
        out[2 * T + k] = N - fp;
        out[3 * T + k] = P - tp;
    }
    return out;
}

namespace {
inline double div_no_nan(double a, double b) { return b == 0.0 ? 0.0 : a / b; }
}  // namespace

double binned_auc(const std::vector<double>& pos, const std::vector<double>& neg, Curve curve,
                  Summation method) {
    const std::size_t T = pos.size();
    if (T < 2) return 0.0;
    std::vector<double> c = binned_confusion(pos, neg);
    const double* tp = c.data();
    const double* fp = c.data() + T;
    const double* tn = c.data() + 2 * T;
    const double* fn = c.data() + 3 * T;
    double area = 0.0;
    if (curve == Curve::PR && method == Summation::Interpolation) {
        // Davis & Goadrich: precision is interpolated along the line between
        // neighbouring thresholds in (TP, TP + FP) space, integrated in closed form.
        for (std::size_t i = 0; i + 1 < T; ++i) {
            double dtp = tp[i] - tp[i + 1];
            double p0 = tp[i] + fp[i], p1 = tp[i + 1] + fp[i + 1];
            double slope = div_no_nan(dtp, std::max(p0 - p1, 0.0));
            double intercept = tp[i + 1] - slope * p1;
            double ratio = (p0 > 0.0 && p1 > 0.0) ? div_no_nan(p0, std::max(p1, 0.0)) : 1.0;
            area += div_no_nan(slope * (dtp + intercept * std::log(ratio)),
                               std::max(tp[i + 1] + fn[i + 1], 0.0));
        }
        return area;
    }
    auto x_at = [&](std::size_t i) {
        return curve == Curve::ROC ? div_no_nan(fp[i], fp[i] + tn[i]) : div_no_nan(tp[i], tp[i] + fn[i]);
    };
    auto y_at = [&](std::size_t i) {
        return curve == Curve::ROC ? div_no_nan(tp[i], tp[i] + fn[i]) : div_no_nan(tp[i], tp[i] + fp[i]);
    };
    for (std::size_t i = 0; i + 1 < T; ++i) {
        double y0 = y_at(i), y1 = y_at(i + 1);
        double h = method == Summation::Interpolation ? 0.5 * (y0 + y1)
                   : method == Summation::Minoring    ? std::min(y0, y1)
                                                      : std::max(y0, y1);
        area += (x_at(i) - x_at(i + 1)) * h;
    }
    return area;
}

// ---- exact curves ----------------------------------------------------------

void ExactCurve::make_weighted_locked() {
    if (weighted_) return;
    pos_w_.assign(pos_.size(), 1.0);
    neg_w_.assign(neg_.size(), 1.0);
    weighted_ = true;
}

unsigned ExactCurve::update(const View& y, const View& p, const double* w) {
    std::lock_guard<std::mutex> lk(mu_);
    if (w) make_weighted_locked();
    std::size_t op = pos_.size(), on = neg_.size();
    unsigned bad = exact_append(y, p, w, 0, p.rows, pos_, neg_, weighted_ ? &pos_w_ : nullptr,
                                weighted_ ? &neg_w_ : nullptr);
    if (!bad && weighted_ && !w) {  // an unweighted batch after weighted ones
        std::fill(pos_w_.begin() + op, pos_w_.end(), 1.0);
        std::fill(neg_w_.begin() + on, neg_w_.end(), 1.0);
    }
    sorted_ = sorted_ && pos_.size() == op && neg_.size() == on;
    return bad;
}

ExactAreas ExactCurve::areas() {
    std::lock_guard<std::mutex> lk(mu_);
    if (!sorted_) {
        cached_ = exact_areas(pos_, neg_, weighted_ ? &pos_w_ : nullptr, weighted_ ? &neg_w_ : nullptr);
        sorted_ = true;
    }
    return cached_;
}

void ExactCurve::reset() {
    std::lock_guard<std::mutex> lk(mu_);
    pos_.clear();
    neg_.clear();
    pos_w_.clear();
    neg_w_.clear();
    weighted_ = false;
    sorted_ = true;
    cached_ = ExactAreas{};
}

ExactCurve::Arrays ExactCurve::snapshot() const {
    std::lock_guard<std::mutex> lk(mu_);
    return Arrays{pos_, neg_, pos_w_, neg_w_, weighted_};
}

void ExactCurve::assign(const Arrays& a) {
    std::lock_guard<std::mutex> lk(mu_);
    pos_ = a.pos;
    neg_ = a.neg;
    weighted_ = a.weighted;
    pos_w_ = a.weighted ? a.pos_w : std::vector<double>{};
    neg_w_ = a.weighted ? a.neg_w : std::vector<double>{};
    sorted_ = pos_.empty() && neg_.empty();
    cached_ = ExactAreas{};
}

void ExactCurve::merge(const ExactCurve& other) {
    Arrays o = other.snapshot();
    std::lock_guard<std::mutex> lk(mu_);
    if (o.weighted) make_weighted_locked();
    pos_.insert(pos_.end(), o.pos.begin(), o.pos.end());
    neg_.insert(neg_.end(), o.neg.begin(), o.neg.end());
    if (weighted_) {
        if (o.weighted) {
            pos_w_.insert(pos_w_.end(), o.pos_w.begin(), o.pos_w.end());
            neg_w_.insert(neg_w_.end(), o.neg_w.begin(), o.neg_w.end());
        } else {
            pos_w_.resize(pos_.size(), 1.0);
            neg_w_.resize(neg_.size(), 1.0);
        }
    }
    sorted_ = sorted_ && o.pos.empty() && o.neg.empty();
}

std::size_t ExactCurve::size() const {
    std::lock_guard<std::mutex> lk(mu_);
    return pos_.size() + neg_.size();
}

}  // namespace bridge::kernels
