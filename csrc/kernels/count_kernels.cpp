// Weighted counting kernels: binary confusion counts at thresholds, per-class
// counts for F-scores, the multi-class confusion matrix and calibration bins.
#include <algorithm>

#include "kernels.hpp"
#include "rowops.hpp"

namespace bridge::kernels {
namespace {

// One threshold, every selected column. Unweighted counts are integers.
template <class L, class T>
BRIDGE_CLONES unsigned binary_counts_one(const L* y, const T* p, index_t cols, index_t c0,
                                         index_t cn, T thr, const double* w, index_t b,
                                         index_t e, double* tp, double* fp, double* tn,
                                         double* fn) {
    index_t nonfinite = 0, bad_label = 0;
    if (!w && cn == cols) {
        // Contiguous elements: a flat loop the compiler vectorises.
        index_t n_tp = 0, n_pred = 0, n_pos = 0;
        const index_t lo = b * cols, hi = e * cols;
        for (index_t i = lo; i < hi; ++i) {
            T v = p[i];
            auto lab = static_cast<std::int64_t>(y[i]);
            nonfinite += !finite(v);
            bad_label += static_cast<std::uint64_t>(lab) > 1u;
            index_t pred = v > thr;
            index_t pos = lab == 1;
            n_tp += pred & pos;
            n_pred += pred;
            n_pos += pos;
        }
        if (nonfinite || bad_label) return (nonfinite ? kNonFiniteScore : 0u) | (bad_label ? kLabelRange : 0u);
        double total = static_cast<double>(hi - lo);
        *tp += static_cast<double>(n_tp);
        *fp += static_cast<double>(n_pred - n_tp);
        *fn += static_cast<double>(n_pos - n_tp);
        *tn += total - static_cast<double>(n_pred + n_pos - n_tp);
    } else {
        double s_tp = 0, s_pred = 0, s_pos = 0, s_all = 0;
        for (index_t i = b; i < e; ++i) {
            double wi = weight_at(w, i);
            for (index_t c = c0; c < c0 + cn; ++c) {
                T v = p[i * cols + c];
                auto lab = static_cast<std::int64_t>(y[i * cols + c]);
                nonfinite += !finite(v);
                bad_label += static_cast<std::uint64_t>(lab) > 1u;
                double pred = v > thr ? wi : 0.0;
                double pos = lab == 1 ? wi : 0.0;
                s_tp += lab == 1 ? pred : 0.0;
                s_pred += pred;
                s_pos += pos;
                s_all += wi;
            }
        }
        if (nonfinite || bad_label) return (nonfinite ? kNonFiniteScore : 0u) | (bad_label ? kLabelRange : 0u);
        *tp += s_tp;
        *fp += s_pred - s_tp;
        *fn += s_pos - s_tp;
        *tn += s_all - s_pred - s_pos + s_tp;
    }
    return (nonfinite ? kNonFiniteScore : 0u) | (bad_label ? kLabelRange : 0u);
}

template <class L, class T>
BRIDGE_CLONES unsigned class_counts_impl(const ClassCountsSpec& s, const L* y, const T* p,
                                         const double* w, index_t b, index_t e, double* out) {
    const index_t C = s.classes;
    double* tp = out;
    double* fp = out + C;
    double* fn = out + 2 * C;
    double* sup = out + 3 * C;
    index_t nonfinite = 0, bad_label = 0;
    const T thr = static_cast<T>(s.threshold);
    for (index_t i = b; i < e; ++i) {
        const T* row = p + i * C;
        double wi = weight_at(w, i);
        nonfinite += count_nonfinite(row, C);
        T m = row[0];
        for (index_t j = 1; j < C; ++j) m = row[j] > m ? row[j] : m;
        std::int64_t sparse_lab = -1;
        if (s.sparse) {
            sparse_lab = static_cast<std::int64_t>(y[i]);
            bad_label += !(sparse_lab >= 0 && sparse_lab < C);
        }
        for (index_t j = 0; j < C; ++j) {
            bool pred = s.argmax_rule ? (row[j] >= m && std::fabs(static_cast<double>(row[j])) > 1e-9)
                                      : row[j] > thr;
            std::int64_t lab = s.sparse ? (sparse_lab == j) : static_cast<std::int64_t>(y[i * C + j]);
            if (!s.sparse) bad_label += static_cast<std::uint64_t>(lab) > 1u;
            double pw = pred ? wi : 0.0;
            double lw = lab == 1 ? wi : 0.0;
            tp[j] += lab == 1 ? pw : 0.0;
            fp[j] += lab == 1 ? 0.0 : pw;
            fn[j] += pred ? 0.0 : lw;
            sup[j] += lw;
        }
    }
    return (nonfinite ? kNonFiniteScore : 0u) | (bad_label ? kLabelRange : 0u);
}

template <class L, class P>
BRIDGE_CLONES unsigned confusion_labels(const L* y, const P* q, index_t C, const double* w,
                                        index_t b, index_t e, double* out) {
    index_t bad = 0;
    for (index_t i = b; i < e; ++i) {
        auto t = static_cast<std::int64_t>(y[i]);
        auto u = static_cast<std::int64_t>(q[i]);
        bad += !(t >= 0 && t < C && u >= 0 && u < C);
    }
    if (bad) return kLabelRange;
    for (index_t i = b; i < e; ++i)
        out[static_cast<index_t>(y[i]) * C + static_cast<index_t>(q[i])] += weight_at(w, i);
    return kOk;
}

template <class L, class T>
BRIDGE_CLONES unsigned confusion_scores(const ConfusionSpec& s, const L* y, const T* p,
                                        index_t cols, const double* w, index_t b, index_t e,
                                        double* out) {
    const index_t C = s.classes;
    index_t bad = 0, nonfinite = 0;
    const T thr = static_cast<T>(s.threshold);
    for (index_t i = b; i < e; ++i) {
        auto t = static_cast<std::int64_t>(y[i]);
        bad += !(t >= 0 && t < C);
    }
    nonfinite = count_nonfinite(p + b * cols, (e - b) * cols);
    if (bad || nonfinite) return (nonfinite ? kNonFiniteScore : 0u) | (bad ? kLabelRange : 0u);
    for (index_t i = b; i < e; ++i) {
        index_t u = s.mode == PredMode::Threshold ? (p[i] > thr ? 1 : 0) : argmax_first(p + i * cols, cols);
        out[static_cast<index_t>(y[i]) * C + u] += weight_at(w, i);
    }
    return kOk;
}

template <class L, class T>
BRIDGE_CLONES unsigned calibration_impl(int B, const L* y, const T* p, index_t cols,
                                        const double* w, index_t b, index_t e, double* out) {
    double* wsum = out;
    double* csum = out + B;
    double* hsum = out + 2 * B;
    index_t nonfinite = 0, bad_label = 0, bad_prob = 0;
    for (index_t i = b; i < e; ++i) {
        double conf, correct;
        auto lab = static_cast<std::int64_t>(y[i]);
        if (cols == 1) {
            conf = static_cast<double>(p[i]);
            nonfinite += !finite(p[i]);
            bad_label += static_cast<std::uint64_t>(lab) > 1u;
            correct = lab == 1 ? 1.0 : 0.0;
        } else {
            const T* row = p + i * cols;
            nonfinite += count_nonfinite(row, cols);
            bad_label += !(lab >= 0 && lab < cols);
            index_t k = argmax_first(row, cols);
            conf = static_cast<double>(row[k]);
            correct = k == lab ? 1.0 : 0.0;
        }
        bad_prob += !(conf >= 0.0 && conf <= 1.0);
        // Bins are [k/B, (k+1)/B); a confidence of exactly 1 goes in the last.
        double fb = std::floor(conf * B);
        int k = fb >= B ? B - 1 : (fb < 0.0 || !(fb == fb) ? 0 : static_cast<int>(fb));
        double wi = weight_at(w, i);
        wsum[k] += wi;
        csum[k] += wi * conf;
        hsum[k] += wi * correct;
    }
    return (nonfinite ? kNonFiniteScore : 0u) | (bad_label ? kLabelRange : 0u) |
           (bad_prob && !nonfinite ? kProbRange : 0u);
}

}  // namespace

unsigned binary_counts(const BinarySpec& s, const View& y, const View& p, const double* w,
                       index_t b, index_t e, double* out) {
    const int T = s.num_thresholds;
    return with_label(y, [&](auto* yy) {
        return with_float(p, [&](auto* pp) {
            using V = std::remove_const_t<std::remove_pointer_t<decltype(pp)>>;
            unsigned bad = 0;
            for (int k = 0; k < T; ++k) {
                bad |= binary_counts_one(yy, pp, p.cols, s.col_begin, s.col_count,
                                         static_cast<V>(s.thresholds[k]), w, b, e, out + k,
                                         out + T + k, out + 2 * T + k, out + 3 * T + k);
                if (bad) break;
            }
            return bad;
        });
    });
}

unsigned class_counts(const ClassCountsSpec& s, const View& y, const View& p, const double* w,
                      index_t b, index_t e, double* out) {
    if (s.classes == 1 && !s.argmax_rule && !s.sparse) {
        // Binary F-score: the thresholded counts kernel, then fp/fn/support from them.
        double tp = 0, fp = 0, tn = 0, fn = 0;
        unsigned bad = with_label(y, [&](auto* yy) {
            return with_float(p, [&](auto* pp) {
                using V = std::remove_const_t<std::remove_pointer_t<decltype(pp)>>;
                return binary_counts_one(yy, pp, 1, 0, 1, static_cast<V>(s.threshold), w, b, e, &tp, &fp, &tn, &fn);
            });
        });
        if (bad) return bad;
        out[0] += tp;
        out[1] += fp;
        out[2] += fn;
        out[3] += tp + fn;
        return kOk;
    }
    return with_label(y, [&](auto* yy) {
        return with_float(p, [&](auto* pp) { return class_counts_impl(s, yy, pp, w, b, e, out); });
    });
}

unsigned confusion(const ConfusionSpec& s, const View& y, const View& p, const double* w,
                   index_t b, index_t e, double* out) {
    return with_label(y, [&](auto* yy) {
        if (s.mode == PredMode::Labels)
            return with_label(p, [&](auto* q) { return confusion_labels(yy, q, s.classes, w, b, e, out); });
        return with_float(p, [&](auto* pp) { return confusion_scores(s, yy, pp, p.cols, w, b, e, out); });
    });
}

unsigned calibration_bins(int B, const View& y, const View& p, const double* w, index_t b,
                          index_t e, double* out) {
    return with_label(y, [&](auto* yy) {
        return with_float(p, [&](auto* pp) { return calibration_impl(B, yy, pp, p.cols, w, b, e, out); });
    });
}

}  // namespace bridge::kernels
