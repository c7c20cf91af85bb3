// Row-wise metric values reduced to a weighted (total, count) pair.
#include <algorithm>

#include "fastmath.hpp"
#include "kernels.hpp"
#include "rowops.hpp"

namespace bridge::kernels {
namespace {

constexpr double kProbEps = 1e-7;  // Keras's epsilon for clipping probabilities

// Adds v_i (row value) with weight w_i for rows [b, e).
template <class RowFn>
BRIDGE_INLINE MeanPartial accumulate(const double* w, index_t b, index_t e, RowFn&& row) {
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
    index_t nonfinite = 0;
    const double inv = row_sum ? 1.0 : 1.0 / static_cast<double>(d);
    MeanPartial out = accumulate(w, b, e, [&](index_t i) {
        double s = 0.0;
        for (index_t c = 0; c < d; ++c) {
            T v = x[i * d + c];
            nonfinite += !finite(v);
            s += static_cast<double>(v);
        }
        return s * inv;
    });
    if (nonfinite) out.bad |= kNonFiniteScore;
    return out;
}

template <class TT, class TP>
BRIDGE_CLONES MeanPartial error_mean(const TT* t, const TP* p, index_t d, bool absolute,
                                     const double* w, index_t b, index_t e) {
    index_t nf_t = 0, nf_p = 0;
    const double inv = 1.0 / static_cast<double>(d);
    MeanPartial out = accumulate(w, b, e, [&](index_t i) {
        double s = 0.0;
        for (index_t c = 0; c < d; ++c) {
            double tv = static_cast<double>(t[i * d + c]);
            double pv = static_cast<double>(p[i * d + c]);
            nf_t += !finite(tv);
            nf_p += !finite(pv);
            double diff = tv - pv;
            s += absolute ? std::fabs(diff) : diff * diff;
        }
        return s * inv;
    });
    if (nf_p) out.bad |= kNonFiniteScore;
    if (nf_t) out.bad |= kNonFiniteTarget;
    return out;
}

template <class T>
BRIDGE_CLONES MeanPartial equal_mean(const T* t, const T* p, index_t d, const double* w, index_t b,
                                     index_t e) {
    index_t nonfinite = 0;
    const double inv = 1.0 / static_cast<double>(d);
    MeanPartial out = accumulate(w, b, e, [&](index_t i) {
        index_t hits = 0;
        for (index_t c = 0; c < d; ++c) {
            T pv = p[i * d + c];
            nonfinite += !finite(pv) + !finite(t[i * d + c]);
            hits += t[i * d + c] == pv;
        }
        return static_cast<double>(hits) * inv;
    });
    if (nonfinite) out.bad |= kNonFiniteScore;
    return out;
}

template <class TT, class TP>
BRIDGE_CLONES MeanPartial categorical_accuracy(const TT* t, const TP* p, index_t C, const double* w,
                                               index_t b, index_t e) {
    index_t nf_p = 0, nf_t = 0;
    MeanPartial out = accumulate(w, b, e, [&](index_t i) {
        const TP* row = p + i * C;
        const TT* trow = t + i * C;
        nf_p += count_nonfinite(row, C);
        nf_t += count_nonfinite(trow, C);
        return argmax_first(row, C) == argmax_first(trow, C) ? 1.0 : 0.0;
    });
    if (nf_p) out.bad |= kNonFiniteScore;
    if (nf_t) out.bad |= kNonFiniteTarget;
    return out;
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

// argmax(row) == lab, where argmax picks the first maximum: nothing before lab
// may reach row[lab] and nothing after may exceed it.
template <class L, class TP>
BRIDGE_CLONES MeanPartial sparse_accuracy(const L* y, const TP* p, index_t C, int k, bool top_k,
                                          const double* w, index_t b, index_t e) {
    index_t nonfinite = 0, bad_label = 0;
    MeanPartial out = accumulate(w, b, e, [&](index_t i) {
        const TP* row = p + i * C;
        index_t lab = safe_label(y, i, C, bad_label);
        TP target = row[lab];
        index_t above = 0, tied_before = 0;
        for (index_t j = 0; j < C; ++j) {
            nonfinite += !finite(row[j]);
            above += row[j] > target;
            tied_before += (row[j] == target) & (j < lab);
        }
        bool hit = top_k ? above < k : above + tied_before == 0;
        return hit ? 1.0 : 0.0;
    });
    if (nonfinite) out.bad |= kNonFiniteScore;
    if (bad_label) out.bad |= kLabelRange;
    return out;
}

BRIDGE_INLINE double clip_prob(double p) {
    return std::min(std::max(p, kProbEps), 1.0 - kProbEps);
}

// Binary log loss with hard 0/1 labels: one log per element.
template <class L, class TP>
BRIDGE_CLONES MeanPartial bce_hard(const L* y, const TP* p, index_t d, bool from_logits,
                                   const double* w, index_t b, index_t e) {
    index_t nonfinite = 0, bad_label = 0, bad_prob = 0;
    const double inv = 1.0 / static_cast<double>(d);
    MeanPartial out = accumulate(w, b, e, [&](index_t i) {
        double s = 0.0;
        for (index_t c = 0; c < d; ++c) {
            auto lab = static_cast<std::int64_t>(y[i * d + c]);
            double x = static_cast<double>(p[i * d + c]);
            nonfinite += !finite(x);
            bad_label += (lab != 0) & (lab != 1);
            if (from_logits) {
                // max(x, 0) - x*y + log(1 + exp(-|x|))
                double ax = std::fabs(x);
                double lin = (x > 0.0 ? x : 0.0) - (lab == 1 ? x : 0.0);
                s += lin + log1p_pos(exp_nonpos(-ax));
            } else {
                bad_prob += !(x >= 0.0 && x <= 1.0);
                double q = clip_prob(x);
                s -= log_pos(lab == 1 ? q : 1.0 - q);
            }
        }
        return s * inv;
    });
    if (nonfinite) out.bad |= kNonFiniteScore;
    if (bad_label) out.bad |= kLabelRange;
    if (bad_prob && !nonfinite) out.bad |= kProbRange;
    return out;
}

// Binary log loss with soft targets in [0, 1] (and label smoothing).
template <class TT, class TP>
BRIDGE_CLONES MeanPartial bce_soft(const TT* t, const TP* p, index_t d, bool from_logits,
                                   double smoothing, const double* w, index_t b, index_t e) {
    index_t nonfinite = 0, bad_target = 0, bad_prob = 0;
    const double inv = 1.0 / static_cast<double>(d);
    MeanPartial out = accumulate(w, b, e, [&](index_t i) {
        double s = 0.0;
        for (index_t c = 0; c < d; ++c) {
            double tv = static_cast<double>(t[i * d + c]);
            double x = static_cast<double>(p[i * d + c]);
            nonfinite += !finite(x);
            bad_target += !(tv >= 0.0 && tv <= 1.0);
            tv = tv * (1.0 - smoothing) + 0.5 * smoothing;
            if (from_logits) {
                double ax = std::fabs(x);
                s += (x > 0.0 ? x : 0.0) - x * tv + log1p_pos(exp_nonpos(-ax));
            } else {
                bad_prob += !(x >= 0.0 && x <= 1.0);
                double q = clip_prob(x);
                s -= tv * log_pos(q) + (1.0 - tv) * log_pos(1.0 - q);
            }
        }
        return s * inv;
    });
    if (nonfinite) out.bad |= kNonFiniteScore;
    if (bad_target) out.bad |= kLabelRange;
    if (bad_prob && !nonfinite) out.bad |= kProbRange;
    return out;
}

template <class L, class TP>
BRIDGE_CLONES MeanPartial sparse_ce(const L* y, const TP* p, index_t C, bool from_logits,
                                    const double* w, index_t b, index_t e) {
    index_t nonfinite = 0, bad_label = 0, bad_prob = 0;
    MeanPartial out = accumulate(w, b, e, [&](index_t i) {
        const TP* row = p + i * C;
        index_t lab = safe_label(y, i, C, bad_label);
        if (from_logits) {
            double m = static_cast<double>(row[0]);
            for (index_t j = 1; j < C; ++j) {
                double v = static_cast<double>(row[j]);
                m = v > m ? v : m;
            }
            double s = 0.0;
            for (index_t j = 0; j < C; ++j) {
                double v = static_cast<double>(row[j]);
                nonfinite += !finite(v);
                s += exp_nonpos(v - m);
            }
            return log_pos(s) + m - static_cast<double>(row[lab]);
        }
        // Probabilities: clip like Keras, then renormalise the row.
        double s = 0.0;
        for (index_t j = 0; j < C; ++j) {
            double v = static_cast<double>(row[j]);
            nonfinite += !finite(v);
            bad_prob += !(v >= 0.0 && v <= 1.0);
            s += clip_prob(v);
        }
        return log_pos(s) - log_pos(clip_prob(static_cast<double>(row[lab])));
    });
    if (nonfinite) out.bad |= kNonFiniteScore;
    if (bad_label) out.bad |= kLabelRange;
    if (bad_prob && !nonfinite) out.bad |= kProbRange;
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
