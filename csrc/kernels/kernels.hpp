// Entry points of the metric kernels. Each reads a row range [begin, end) of a
// batch and returns partial sums; callers add partials into a metric's state
// only when `bad` is kOk, so a rejected batch never changes a metric.
#pragma once

#include <vector>

#include "common.hpp"

namespace bridge::kernels {

// ---- metrics that are a (weighted) mean of one value per row -------------
enum class MeanKind : int {
    Values,               // Mean: mean of the row's values
    ValueSums,            // Sum: sum of the row's values
    SquaredError,         // mean over the row of (t - p)^2
    AbsoluteError,        // mean over the row of |t - p|
    Equal,                // mean over the row of (t == p)
    CategoricalAccuracy,  // argmax(t) == argmax(p), t one-hot
    SparseAccuracy,       // argmax(p) == t, t a class index
    SparseTopK,           // t among the k largest p (ties count as inside)
    BinaryCrossentropy,   // mean over the row of log loss, t in [0, 1]
    SparseCrossentropy,   // -log softmax(p)[t] or -log(p[t] / sum p)
};

struct MeanSpec {
    MeanKind kind = MeanKind::Values;
    int k = 5;
    bool from_logits = false;
    double label_smoothing = 0.0;
};

struct MeanPartial {
    double total = 0.0;
    double count = 0.0;
    unsigned bad = kOk;
};

MeanPartial mean_update(const MeanSpec& spec, const View& y_true, const View& y_pred,
                        const double* w, index_t begin, index_t end);

// ---- thresholded binary confusion counts --------------------------------
// out has 4 * T slots: tp[T], fp[T], tn[T], fn[T]. Columns [col_begin,
// col_begin + col_count) of each row are used (class_id selects one column).
struct BinarySpec {
    const double* thresholds = nullptr;
    int num_thresholds = 0;
    index_t col_begin = 0;
    index_t col_count = 1;
};
unsigned binary_counts(const BinarySpec& spec, const View& y_true, const View& y_pred,
                       const double* w, index_t begin, index_t end, double* out);

// ---- per-class tp / fp / fn / support (F-scores) -------------------------
// out has 4 * C slots: tp[C], fp[C], fn[C], support[C]. With argmax_rule the
// positives of a row are the entries equal to its maximum (non-zero), else
// the entries above `threshold`. sparse: y_true holds class indices.
struct ClassCountsSpec {
    double threshold = 0.5;
    bool argmax_rule = false;
    bool sparse = false;
    index_t classes = 1;
};
unsigned class_counts(const ClassCountsSpec& spec, const View& y_true, const View& y_pred,
                      const double* w, index_t begin, index_t end, double* out);

// ---- multi-class confusion matrix ---------------------------------------
enum class PredMode : int { Labels, Argmax, Threshold };
struct ConfusionSpec {
    index_t classes = 2;
    PredMode mode = PredMode::Labels;
    double threshold = 0.5;
};
// out is classes x classes, row = true class.
unsigned confusion(const ConfusionSpec& spec, const View& y_true, const View& y_pred,
                   const double* w, index_t begin, index_t end, double* out);

// ---- histogram of scores over thresholds (Keras-style bucketed AUC) -------
// Thresholds t_0 < ... < t_{T-1}; a score is counted at every threshold below
// it, so it lands in bucket (number of thresholds below it) - 1.
struct BinnedSpec {
    int num_thresholds = 200;
    const float* thresholds = nullptr;  // null: Keras's evenly spaced set
    bool from_logits = false;
};
unsigned binned_histogram(const BinnedSpec& spec, const View& y_true, const View& y_pred,
                          const double* w, index_t begin, index_t end, double* pos, double* neg);

// ---- exact curves: all scores kept, sorted at result time -----------------
unsigned exact_append(const View& y_true, const View& y_pred, const double* w, index_t begin,
                      index_t end, std::vector<double>& pos, std::vector<double>& neg,
                      std::vector<double>* pos_w, std::vector<double>* neg_w);

struct ExactAreas {
    double roc = 0.0;
    double average_precision = 0.0;
};
// Sorts the four arrays in place (weights follow their scores).
ExactAreas exact_areas(std::vector<double>& pos, std::vector<double>& neg,
                       std::vector<double>* pos_w, std::vector<double>* neg_w);

// ---- calibration histogram ----------------------------------------------
// out has 3 * B slots: weight[B], confidence sum[B], correct sum[B].
unsigned calibration_bins(int num_bins, const View& y_true, const View& y_pred, const double* w,
                          index_t begin, index_t end, double* out);

// ---- helpers used to word error messages (slow path only) ----------------
index_t first_nonfinite(const View& v);
index_t first_outside(const View& v, double lo, double hi);  // also NaN
index_t first_label_outside(const View& v, std::int64_t lo, std::int64_t hi);
index_t first_bad_weight(const double* w, index_t n);  // negative / NaN / inf
double value_at(const View& v, index_t flat);

}  // namespace bridge::kernels
