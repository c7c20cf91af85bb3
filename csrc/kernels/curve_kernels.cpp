// ROC / PR curves: Keras-style bucketed histograms, and exact areas from
// every score (radix-sorted at result time).
#include <algorithm>
#include <array>
#include <thread>

#include "fastmath.hpp"
#include "kernels.hpp"
#include "parallel.hpp"

namespace bridge::kernels {
namespace {

BRIDGE_INLINE double sigmoid(double x) {
    // 1 / (1 + exp(-x)) without overflow for either sign.
    double z = exp_nonpos(-std::fabs(x));
    return x >= 0.0 ? 1.0 / (1.0 + z) : z / (1.0 + z);
}

// Bucket of a score: thresholds below it, minus one. Computed in float32 as
// Keras does, so both put a score on a bucket edge in the same bucket.
BRIDGE_INLINE index_t uniform_bucket(float pf, int T) {
    float pc = std::min(std::max(pf, 0.0f), 1.0f);
    float b = std::ceil(pc * static_cast<float>(T - 1)) - 1.0f;
    return b < 0.0f ? 0 : static_cast<index_t>(b);
}

BRIDGE_INLINE index_t explicit_bucket(float pf, const float* t, int T) {
    // number of thresholds strictly below pf (thresholds sorted ascending)
    index_t lo = 0, hi = T;
    while (lo < hi) {
        index_t mid = (lo + hi) / 2;
        if (t[mid] < pf) lo = mid + 1; else hi = mid;
    }
    return lo - 1;  // -1: below every threshold, counted nowhere
}

// Unweighted, evenly spaced thresholds: bucket indices for a chunk in one
// vectorised loop, then integer counts in four interleaved histograms (so
// repeated buckets do not serialise on one counter).
template <class L, class T>
BRIDGE_INLINE unsigned binned_counts_fast(int T_, const L* y, const T* p, index_t lo, index_t hi, double* pos,
                                          double* neg) {
    constexpr index_t kChunk = 1024;
    const std::size_t slots = 2 * static_cast<std::size_t>(T_);
    std::vector<std::uint32_t> hist(4 * slots, 0u);
    std::int32_t idx[kChunk];
    const float scale = static_cast<float>(T_ - 1);
    for (index_t c0 = lo; c0 < hi; c0 += kChunk) {
        const index_t n = std::min(kChunk, hi - c0);
        for (index_t k = 0; k < n; ++k) {
            float pf = static_cast<float>(p[c0 + k]);
            float bkt = std::ceil(pf * scale) - 1.0f;
            bkt = bkt < 0.0f ? 0.0f : bkt;
            idx[k] = 2 * static_cast<std::int32_t>(bkt) + (y[c0 + k] == 1 ? 1 : 0);
        }
        index_t k = 0;
        for (; k + 4 <= n; k += 4) {
            ++hist[idx[k]];
            ++hist[slots + idx[k + 1]];
            ++hist[2 * slots + idx[k + 2]];
            ++hist[3 * slots + idx[k + 3]];
        }
        for (; k < n; ++k) ++hist[idx[k]];
        // Flush before the 32-bit counters could overflow.
        if (((c0 - lo) / kChunk) % 1000000 == 999999 || c0 + kChunk >= hi) {
            for (std::size_t t = 0; t < static_cast<std::size_t>(T_); ++t) {
                for (int r = 0; r < 4; ++r) {
                    neg[t] += hist[r * slots + 2 * t];
                    pos[t] += hist[r * slots + 2 * t + 1];
                }
            }
            std::fill(hist.begin(), hist.end(), 0u);
        }
    }
    return kOk;
}

template <class L, class T>
BRIDGE_CLONES unsigned binned_impl(const BinnedSpec& s, const L* y, const T* p, index_t cols,
                                   const double* w, index_t b, index_t e, double* pos,
                                   double* neg) {
    // Check everything first so a rejected batch writes nothing.
    const index_t lo = b * cols, hi = e * cols;
    index_t nonfinite = 0, bad_label = 0, bad_prob = 0;
    for (index_t i = lo; i < hi; ++i) {
        double x = static_cast<double>(p[i]);
        nonfinite += !finite(x);
        bad_label += static_cast<std::uint64_t>(static_cast<std::int64_t>(y[i])) > 1u;
        bad_prob += !(x >= 0.0 && x <= 1.0);
    }
    if (s.from_logits) bad_prob = 0;
    if (nonfinite || bad_label || bad_prob)
        return (nonfinite ? kNonFiniteScore : 0u) | (bad_label ? kLabelRange : 0u) |
               (bad_prob && !nonfinite ? kProbRange : 0u);
    if (!w && !s.thresholds && !s.from_logits) return binned_counts_fast(s.num_thresholds, y, p, lo, hi, pos, neg);
    for (index_t i = b; i < e; ++i) {
        double wi = weight_at(w, i);
        for (index_t c = 0; c < cols; ++c) {
            double x = static_cast<double>(p[i * cols + c]);
            if (s.from_logits) x = sigmoid(x);
            float pf = static_cast<float>(x);
            index_t k = s.thresholds ? explicit_bucket(pf, s.thresholds, s.num_thresholds)
                                     : uniform_bucket(pf, s.num_thresholds);
            if (k >= 0) (y[i * cols + c] == 1 ? pos : neg)[k] += wi;
        }
    }
    return kOk;
}

template <class L, class T>
unsigned exact_impl(const L* y, const T* p, const double* w, index_t b, index_t e,
                    std::vector<double>& pos, std::vector<double>& neg, std::vector<double>* pos_w,
                    std::vector<double>* neg_w) {
    index_t nonfinite = 0, bad_label = 0, n_pos = 0;
    for (index_t i = b; i < e; ++i) {
        nonfinite += !finite(p[i]);
        auto lab = static_cast<std::int64_t>(y[i]);
        bad_label += static_cast<std::uint64_t>(lab) > 1u;
        n_pos += lab == 1;
    }
    if (nonfinite || bad_label)
        return (nonfinite ? kNonFiniteScore : 0u) | (bad_label ? kLabelRange : 0u);
    const index_t n_neg = (e - b) - n_pos;
    std::size_t op = pos.size(), on = neg.size();
    pos.resize(op + n_pos);
    neg.resize(on + n_neg);
    if (pos_w) {
        pos_w->resize(op + n_pos);
        neg_w->resize(on + n_neg);
    }
    for (index_t i = b; i < e; ++i) {
        double x = static_cast<double>(p[i]) + 0.0;  // -0.0 -> +0.0 so zeros tie
        if (y[i] == 1) {
            if (pos_w) (*pos_w)[op] = weight_at(w, i);
            pos[op++] = x;
        } else {
            if (neg_w) (*neg_w)[on] = weight_at(w, i);
            neg[on++] = x;
        }
    }
    return kOk;
}

// Order-preserving map from finite doubles to unsigned integers.
BRIDGE_INLINE std::uint64_t sort_key(double x) {
    auto u = bit_cast<std::uint64_t>(x);
    return (u >> 63) ? ~u : (u | (std::uint64_t(1) << 63));
}
BRIDGE_INLINE double from_key(std::uint64_t k) {
    return bit_cast<double>((k >> 63) ? (k & ~(std::uint64_t(1) << 63)) : ~k);
}

struct KeyWeight {
    std::uint64_t key;
    double weight;
};
BRIDGE_INLINE std::uint64_t key_of(std::uint64_t k) { return k; }
BRIDGE_INLINE std::uint64_t key_of(const KeyWeight& k) { return k.key; }

// LSD radix sort on 8-bit digits; digits that are equal across all keys
// (e.g. the low mantissa bytes of float32 scores) are skipped.
template <class E>
void radix_sort(std::vector<E>& a) {
    const std::size_t n = a.size();
    if (n < 2) return;
    std::vector<std::array<std::size_t, 256>> hist(8);
    for (auto& h : hist) h.fill(0);
    for (const E& x : a) {
        std::uint64_t k = key_of(x);
        for (int d = 0; d < 8; ++d) ++hist[d][(k >> (8 * d)) & 0xff];
    }
    std::vector<E> tmp(n);
    E* src = a.data();
    E* dst = tmp.data();
    for (int d = 0; d < 8; ++d) {
        auto& h = hist[d];
        if (std::any_of(h.begin(), h.end(), [n](std::size_t c) { return c == n; })) continue;
        std::size_t off = 0;
        for (auto& c : h) {
            std::size_t t = c;
            c = off;
            off += t;
        }
        const int shift = 8 * d;
        for (std::size_t i = 0; i < n; ++i) {
            std::uint64_t k = key_of(src[i]);
            dst[h[(k >> shift) & 0xff]++] = src[i];
        }
        std::swap(src, dst);
    }
    if (src != a.data()) std::copy(src, src + n, a.data());
}

// Sorts scores (and their weights) ascending; returns keys in `keys` and
// weights in `weights` (empty when unweighted).
void sort_scores(std::vector<double>& scores, std::vector<double>* weights) {
    if (!weights) {
        std::vector<std::uint64_t> keys(scores.size());
        for (std::size_t i = 0; i < keys.size(); ++i) keys[i] = sort_key(scores[i]);
        radix_sort(keys);
        for (std::size_t i = 0; i < keys.size(); ++i) scores[i] = from_key(keys[i]);
        return;
    }
    std::vector<KeyWeight> kw(scores.size());
    for (std::size_t i = 0; i < kw.size(); ++i) kw[i] = {sort_key(scores[i]), (*weights)[i]};
    radix_sort(kw);
    for (std::size_t i = 0; i < kw.size(); ++i) {
        scores[i] = from_key(kw[i].key);
        (*weights)[i] = kw[i].weight;
    }
}

}  // namespace

unsigned binned_histogram(const BinnedSpec& s, const View& y, const View& p, const double* w,
                          index_t b, index_t e, double* pos, double* neg) {
    return with_label(y, [&](auto* yy) {
        return with_float(p, [&](auto* pp) { return binned_impl(s, yy, pp, p.cols, w, b, e, pos, neg); });
    });
}

unsigned exact_append(const View& y, const View& p, const double* w, index_t b, index_t e,
                      std::vector<double>& pos, std::vector<double>& neg, std::vector<double>* pos_w,
                      std::vector<double>* neg_w) {
    return with_label(y, [&](auto* yy) {
        return with_float(p, [&](auto* pp) { return exact_impl(yy, pp, w, b, e, pos, neg, pos_w, neg_w); });
    });
}

ExactAreas exact_areas(std::vector<double>& pos, std::vector<double>& neg,
                       std::vector<double>* pos_w, std::vector<double>* neg_w) {
    const bool both = pos.size() + neg.size() > (1u << 16) && max_threads() > 1;
    if (both) {
        std::thread t([&] { sort_scores(neg, neg_w); });
        sort_scores(pos, pos_w);
        t.join();
    } else {
        sort_scores(pos, pos_w);
        sort_scores(neg, neg_w);
    }
    // Walk distinct scores from the highest down: each step adds the weight
    // of positives (dtp) and negatives (dfp) that share that score.
    double P = 0.0, N = 0.0;
    if (pos_w) {
        for (double v : *pos_w) P += v;
        for (double v : *neg_w) N += v;
    } else {
        P = static_cast<double>(pos.size());
        N = static_cast<double>(neg.size());
    }
    ExactAreas out;
    if (P <= 0.0) return out;  // no positives: both areas undefined, 0 as Keras
    std::size_t i = pos.size(), j = neg.size();
    double tp = 0.0, fp = 0.0, roc2 = 0.0, ap = 0.0;
    while (i > 0 || j > 0) {
        double s;
        if (i == 0) s = neg[j - 1];
        else if (j == 0) s = pos[i - 1];
        else s = std::max(pos[i - 1], neg[j - 1]);
        double dtp = 0.0, dfp = 0.0;
        while (i > 0 && pos[i - 1] == s) dtp += pos_w ? (*pos_w)[--i] : (--i, 1.0);
        while (j > 0 && neg[j - 1] == s) dfp += neg_w ? (*neg_w)[--j] : (--j, 1.0);
        roc2 += dfp * (2.0 * tp + dtp);  // trapezoid, doubled
        tp += dtp;
        fp += dfp;
        if (dtp > 0.0) ap += dtp * (tp / (tp + fp));
    }
    out.roc = N > 0.0 ? roc2 / (2.0 * P * N) : 0.0;
    out.average_precision = ap / P;
    return out;
}

}  // namespace bridge::kernels
