// Row-wise metric values reduced to a weighted (total, count) pair.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "fastmath.hpp"
#include "kernels.hpp"
#include "rowops.hpp"

namespace bridge::kernels {
namespace {

constexpr double kProbEps = 1e-7;  // Keras's epsilon for clipping probabilities

// Flags set by a kernel's checks, counted in locals so loops vectorise.
struct Counts {
    index_t nonfinite = 0, nonfinite_target = 0, label = 0, prob = 0;
    unsigned flags() const {
        return (nonfinite ? kNonFiniteScore : 0u) | (nonfinite_target ? kNonFiniteTarget : 0u) |
               (label ? kLabelRange : 0u) | (prob && !nonfinite ? kProbRange : 0u);
    }
};

// Weighted mean over rows of the mean over each row's d elements of f(k),
// where k indexes elements. Unweighted batches (any d) and weighted batches
// with d == 1 run as one flat loop.
template <class F>
BRIDGE_INLINE MeanPartial elementwise(index_t d, const double* w, index_t b, index_t e, F&& f) {
    MeanPartial out;
    double total = 0.0, count = 0.0;
    if (!w) {
        const index_t lo = b * d, hi = e * d;
        for (index_t k = lo; k < hi; ++k) total += f(k);
        total /= static_cast<double>(d);
        count = static_cast<double>(e - b);
    } else if (d == 1) {
        for (index_t i = b; i < e; ++i) {
            total += w[i] * f(i);
            count += w[i];
        }
    } else {
        const double inv = 1.0 / static_cast<double>(d);
        for (index_t i = b; i < e; ++i) {
            double s = 0.0;
            for (index_t c = 0; c < d; ++c) s += f(i * d + c);
            total += w[i] * s * inv;
            count += w[i];
        }
    }
    out.total = total;
    out.count = count;
    return out;
}

// Weighted mean of one value per row, row(i).
template <class F>
BRIDGE_INLINE MeanPartial rowwise(const double* w, index_t b, index_t e, F&& row) {
    MeanPartial out;
    double total = 0.0, count = 0.0;
    if (w) {
        for (index_t i = b; i < e; ++i) {
            total += w[i] * row(i);
            count += w[i];
        }
    } else {
        for (index_t i = b; i < e; ++i) total += row(i);
        count = static_cast<double>(e - b);
    }
    out.total = total;
    out.count = count;
    return out;
}

template <class T>
BRIDGE_CLONES MeanPartial values_mean(const T* x, index_t d, bool row_sum, const double* w, index_t b,
                                      index_t e) {
    index_t nf = 0;
    MeanPartial out = elementwise(d, w, b, e, [&](index_t k) BRIDGE_LAMBDA {
        nf += !finite(x[k]);
        return static_cast<double>(x[k]);
    });
    if (row_sum) out.total *= static_cast<double>(d);
    out.bad = nf ? kNonFiniteScore : kOk;
    return out;
}

template <class TT, class TP>
BRIDGE_CLONES MeanPartial error_mean(const TT* t, const TP* p, index_t d, bool absolute,
                                     const double* w, index_t b, index_t e) {
    index_t nf_t = 0, nf_p = 0;
    auto sq = [&](index_t k) BRIDGE_LAMBDA {
        nf_t += !finite(t[k]);
        nf_p += !finite(p[k]);
        double diff = static_cast<double>(t[k]) - static_cast<double>(p[k]);
        return diff * diff;
    };
    auto ab = [&](index_t k) BRIDGE_LAMBDA {
        nf_t += !finite(t[k]);
        nf_p += !finite(p[k]);
        return std::fabs(static_cast<double>(t[k]) - static_cast<double>(p[k]));
    };
    MeanPartial out = absolute ? elementwise(d, w, b, e, ab) : elementwise(d, w, b, e, sq);
    out.bad = (nf_p ? kNonFiniteScore : 0u) | (nf_t ? kNonFiniteTarget : 0u);
    return out;
}

template <class T>
BRIDGE_CLONES MeanPartial equal_mean(const T* t, const T* p, index_t d, const double* w, index_t b,
                                     index_t e) {
    index_t nf_t = 0, nf_p = 0;
    MeanPartial out = elementwise(d, w, b, e, [&](index_t k) BRIDGE_LAMBDA {
        nf_p += !finite(p[k]);
        nf_t += !finite(t[k]);
        return t[k] == p[k] ? 1.0 : 0.0;
    });
    out.bad = (nf_p ? kNonFiniteScore : 0u) | (nf_t ? kNonFiniteTarget : 0u);
    return out;
}

template <class TT, class TP>
BRIDGE_CLONES MeanPartial categorical_accuracy(const TT* t, const TP* p, const index_t C, const double* w,
                                               index_t b, index_t e) {
    index_t nf_p = count_nonfinite(p + b * C, (e - b) * C);
    index_t nf_t = count_nonfinite(t + b * C, (e - b) * C);
    if (nf_p || nf_t) {
        MeanPartial out;
        out.bad = (nf_p ? kNonFiniteScore : 0u) | (nf_t ? kNonFiniteTarget : 0u);
        return out;
    }
    return rowwise(w, b, e, [&](index_t i) BRIDGE_LAMBDA {
        return argmax_first(p + i * C, C) == argmax_first(t + i * C, C) ? 1.0 : 0.0;
    });
}

// Label of row i clamped into [0, C) so a bad label never reads out of
// bounds; `bad` counts the labels that needed it.
template <class L>
BRIDGE_INLINE index_t safe_label(const L* y, index_t i, index_t C, index_t& bad) {
    auto lab = static_cast<std::int64_t>(y[i]);
    bool ok = lab >= 0 && lab < C;
    bad += !ok;
    return ok ? lab : 0;
}

// sparse_accuracy for few classes: rows are handled in blocks, column by
// column, so the loop over rows vectorises (strided loads) instead of the
// short loop over a row's classes.
template <class L, class TP>
BRIDGE_INLINE MeanPartial sparse_accuracy_narrow(const L* y, const TP* p, const index_t C, const int k,
                                                 const bool top_k, const double* w, index_t b, index_t e) {
    constexpr index_t R = 512;
    TP tgt[R];
    std::int32_t lab[R], above[R], tied[R];
    index_t nonfinite = count_nonfinite(p + b * C, (e - b) * C);
    index_t bad_label = 0;
    double total = 0.0, count = 0.0;
    for (index_t r0 = b; r0 < e; r0 += R) {
        const index_t nr = std::min(R, e - r0);
        for (index_t i = 0; i < nr; ++i) {
            const index_t l = safe_label(y, r0 + i, C, bad_label);
            lab[i] = static_cast<std::int32_t>(l);
            tgt[i] = p[(r0 + i) * C + l];
            above[i] = 0;
            tied[i] = 0;
        }
        for (index_t j = 0; j < C; ++j) {
            const TP* col = p + r0 * C + j;
            const std::int32_t jj = static_cast<std::int32_t>(j);
            for (index_t i = 0; i < nr; ++i) {
                const TP v = col[i * C];
                above[i] += v > tgt[i];
                tied[i] += (v == tgt[i]) & (jj < lab[i]);
            }
        }
        if (w) {
            for (index_t i = 0; i < nr; ++i) {
                const bool hit = top_k ? above[i] < k : above[i] + tied[i] == 0;
                total += hit ? w[r0 + i] : 0.0;
                count += w[r0 + i];
            }
        } else {
            index_t hits = 0;
            for (index_t i = 0; i < nr; ++i) hits += top_k ? above[i] < k : above[i] + tied[i] == 0;
            total += static_cast<double>(hits);
            count += static_cast<double>(nr);
        }
    }
    MeanPartial out;
    out.total = total;
    out.count = count;
    out.bad = (nonfinite ? kNonFiniteScore : 0u) | (bad_label ? kLabelRange : 0u);
    return out;
}

// argmax(row) == lab, where argmax picks the first maximum: nothing before lab
// may reach row[lab] and nothing after may exceed it. Top-k (in_top_k rule):
// fewer than k entries exceed row[lab].
template <class L, class TP>
BRIDGE_CLONES MeanPartial sparse_accuracy(const L* y, const TP* p, const index_t C, const int k,
                                          const bool top_k, const double* w, index_t b, index_t e) {
    if (C <= 64) return sparse_accuracy_narrow(y, p, C, k, top_k, w, b, e);
    index_t nf = 0;
    index_t bad_label = 0;
    MeanPartial out = rowwise(w, b, e, [&](index_t i) BRIDGE_LAMBDA {
        const TP* row = p + i * C;
        nf += row_nonfinite(row, C);  // per row: the row is in L1 for the next loop
        const index_t lab = safe_label(y, i, C, bad_label);
        const TP target = row[lab];
        std::int32_t above = 0, tied_before = 0;
        for (index_t j = 0; j < C; ++j) {
            above += row[j] > target;
            tied_before += (row[j] == target) & (j < lab);
        }
        bool hit = top_k ? above < k : above + tied_before == 0;
        return hit ? 1.0 : 0.0;
    });
    out.bad = (nf ? kNonFiniteScore : 0u) | (bad_label ? kLabelRange : 0u);
    return out;
}

BRIDGE_INLINE double clip_prob(double p) {
    return std::min(std::max(p, kProbEps), 1.0 - kProbEps);
}

// Binary log loss with hard 0/1 labels: one log per element.
template <class L, class TP>
BRIDGE_CLONES MeanPartial bce_hard(const L* y, const TP* p, index_t d, bool from_logits,
                                   const double* w, index_t b, index_t e) {
    Counts n;
    MeanPartial out;
    if (from_logits) {
        out = elementwise(d, w, b, e, [&](index_t k) BRIDGE_LAMBDA {
            auto lab = static_cast<std::int64_t>(y[k]);
            double x = static_cast<double>(p[k]);
            n.nonfinite += !finite(p[k]);
            n.label += (lab != 0) & (lab != 1);
            // max(x, 0) - x*y + log(1 + exp(-|x|))
            double lin = (x > 0.0 ? x : 0.0) - (lab == 1 ? x : 0.0);
            return lin + log1p_pos(exp_nonpos(-std::fabs(x)));
        });
    } else {
        out = elementwise(d, w, b, e, [&](index_t k) BRIDGE_LAMBDA {
            auto lab = static_cast<std::int64_t>(y[k]);
            double x = static_cast<double>(p[k]);
            n.nonfinite += !finite(p[k]);
            n.label += (lab != 0) & (lab != 1);
            n.prob += !(x >= 0.0 && x <= 1.0);
            double q = clip_prob(x);
            return -log_pos(lab == 1 ? q : 1.0 - q);
        });
    }
    out.bad = n.flags();
    return out;
}

// Binary log loss with soft targets in [0, 1] (and label smoothing).
template <class TT, class TP>
BRIDGE_CLONES MeanPartial bce_soft(const TT* t, const TP* p, index_t d, bool from_logits,
                                   double smoothing, const double* w, index_t b, index_t e) {
    Counts n;
    MeanPartial out = elementwise(d, w, b, e, [&](index_t k) BRIDGE_LAMBDA {
        double tv = static_cast<double>(t[k]);
        double x = static_cast<double>(p[k]);
        n.nonfinite += !finite(p[k]);
        n.label += !(tv >= 0.0 && tv <= 1.0);
        tv = tv * (1.0 - smoothing) + 0.5 * smoothing;
        if (from_logits) return (x > 0.0 ? x : 0.0) - x * tv + log1p_pos(exp_nonpos(-std::fabs(x)));
        n.prob += !(x >= 0.0 && x <= 1.0);
        double q = clip_prob(x);
        return -(tv * log_pos(q) + (1.0 - tv) * log_pos(1.0 - q));
    });
    out.bad = n.flags();
    return out;
}

// Softmax cross-entropy from logits, logsumexp(row) - row[label], over blocks
// of rows: the exps of a whole block go through one flat loop (which
// vectorises even when rows are short), then per-row sums and logs.
template <class L, class TP>
BRIDGE_INLINE MeanPartial logits_ce(const L* y, const TP* p, const index_t C, const double* w, index_t b,
                                    index_t e) {
    constexpr index_t kBlockElems = 2048;
    const index_t rows_per_block = std::max<index_t>(1, kBlockElems / C);
    std::vector<double> buf_heap;
    double buf_stack[kBlockElems];
    double* buf = buf_stack;
    if (C > kBlockElems) {
        buf_heap.resize(static_cast<std::size_t>(C));
        buf = buf_heap.data();
    }
    double shift[kBlockElems], loss[kBlockElems];
    index_t bad_label = 0, nonfinite = 0;
    double total = 0.0, count = 0.0;
    for (index_t r0 = b; r0 < e; r0 += rows_per_block) {
        const index_t r1 = std::min(e, r0 + rows_per_block);
        const index_t nr = r1 - r0;
        for (index_t i = 0; i < nr; ++i) {
            const TP* row = p + (r0 + i) * C;
            nonfinite += row_nonfinite(row, C);
            TP m = row[0];
            for (index_t j = 1; j < C; ++j) m = row[j] > m ? row[j] : m;
            const index_t lab = safe_label(y, r0 + i, C, bad_label);
            shift[i] = static_cast<double>(m);
            loss[i] = static_cast<double>(m) - static_cast<double>(row[lab]);
            double* out = buf + i * C;
            for (index_t j = 0; j < C; ++j) out[j] = static_cast<double>(row[j]) - static_cast<double>(m);
        }
        const index_t n = nr * C;
        for (index_t k = 0; k < n; ++k) buf[k] = exp_nonpos(buf[k]);
        for (index_t i = 0; i < nr; ++i) {
            double s = 0.0;
            const double* row = buf + i * C;
            for (index_t j = 0; j < C; ++j) s += row[j];
            shift[i] = s;
        }
        for (index_t i = 0; i < nr; ++i) loss[i] += log_pos(shift[i]);
        if (w) {
            for (index_t i = 0; i < nr; ++i) {
                total += w[r0 + i] * loss[i];
                count += w[r0 + i];
            }
        } else {
            for (index_t i = 0; i < nr; ++i) total += loss[i];
            count += static_cast<double>(nr);
        }
    }
    MeanPartial out;
    out.total = total;
    out.count = count;
    out.bad = (nonfinite ? kNonFiniteScore : 0u) | (bad_label ? kLabelRange : 0u);
    return out;
}

template <class L, class TP>
BRIDGE_CLONES MeanPartial sparse_ce(const L* y, const TP* p, const index_t C, const bool from_logits,
                                    const double* w, index_t b, index_t e) {
    Counts n;
    if (from_logits) return logits_ce(y, p, C, w, b, e);
    n.nonfinite = count_nonfinite(p + b * C, (e - b) * C);
    {
        const index_t lo = b * C, hi = e * C;
        for (index_t k = lo; k < hi; ++k) n.prob += !(p[k] >= TP(0) && p[k] <= TP(1));
    }
    if (n.nonfinite || n.prob) {
        MeanPartial out;
        out.bad = n.flags();
        return out;
    }
    index_t bad_label = 0;
    MeanPartial out = rowwise(w, b, e, [&](index_t i) BRIDGE_LAMBDA {
        const TP* row = p + i * C;
        const index_t lab = safe_label(y, i, C, bad_label);
        // Probabilities: clip like Keras, then renormalise the row.
        double s = 0.0;
        for (index_t j = 0; j < C; ++j) s += clip_prob(static_cast<double>(row[j]));
        return log_pos(s) - log_pos(clip_prob(static_cast<double>(row[lab])));
    });
    out.bad = bad_label ? kLabelRange : kOk;
    return out;
}

template <class F>
decltype(auto) with_any(const View& v, F&& f) {
    if (v.dtype == DType::F32 || v.dtype == DType::F64) return with_float(v, f);
    return with_label(v, f);
}

}  // namespace

MeanPartial mean_update(const MeanSpec& spec, const View& t, const View& p, const double* w,
                        index_t b, index_t e) {
    const index_t d = p.cols;
    switch (spec.kind) {
        case MeanKind::Values:
        case MeanKind::ValueSums: {
            bool row_sum = spec.kind == MeanKind::ValueSums;
            return with_float(p, [&](auto* x) { return values_mean(x, d, row_sum, w, b, e); });
        }
        case MeanKind::SquaredError:
        case MeanKind::AbsoluteError: {
            bool absolute = spec.kind == MeanKind::AbsoluteError;
            return with_float(t, [&](auto* tt) {
                return with_float(p, [&](auto* pp) { return error_mean(tt, pp, d, absolute, w, b, e); });
            });
        }
        case MeanKind::Equal:
            return with_any(p, [&](auto* pp) {
                using T = std::remove_const_t<std::remove_pointer_t<decltype(pp)>>;
                return equal_mean(static_cast<const T*>(t.data), pp, d, w, b, e);
            });
        case MeanKind::CategoricalAccuracy:
            return with_float(t, [&](auto* tt) {
                return with_float(p, [&](auto* pp) { return categorical_accuracy(tt, pp, d, w, b, e); });
            });
        case MeanKind::SparseAccuracy:
        case MeanKind::SparseTopK: {
            bool top_k = spec.kind == MeanKind::SparseTopK;
            return with_label(t, [&](auto* y) {
                return with_float(p, [&](auto* pp) { return sparse_accuracy(y, pp, d, spec.k, top_k, w, b, e); });
            });
        }
        case MeanKind::BinaryCrossentropy:
            if (t.dtype == DType::F32 || t.dtype == DType::F64 || spec.label_smoothing != 0.0) {
                return with_float(t, [&](auto* tt) {
                    return with_float(p, [&](auto* pp) {
                        return bce_soft(tt, pp, d, spec.from_logits, spec.label_smoothing, w, b, e);
                    });
                });
            }
            return with_label(t, [&](auto* y) {
                return with_float(p, [&](auto* pp) { return bce_hard(y, pp, d, spec.from_logits, w, b, e); });
            });
        case MeanKind::SparseCrossentropy:
            return with_label(t, [&](auto* y) {
                return with_float(p, [&](auto* pp) { return sparse_ce(y, pp, d, spec.from_logits, w, b, e); });
            });
    }
    throw std::logic_error("bridge: unknown mean kind");
}

}  // namespace bridge::kernels
