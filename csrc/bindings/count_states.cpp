// Count-based states: binary confusion counts at thresholds, per-class counts
// (F-scores), the confusion matrix and calibration bins.
#include <cmath>
#include <limits>

#include "../kernels/metrics.hpp"
#include "states.hpp"

namespace bridge::glue {
namespace {

// Runs a non-atomic counting kernel and raises on bad input.
template <class Kernel>
void run_counts(kernels::Accumulator& acc, const Input& t, const Input& p, bool atomic, const LabelRule& rule, const std::string& name, Kernel&& kernel) {
    const double bytes = static_cast<double>(p.view.size()) * 8.0 + static_cast<double>(t.view.size()) * 4.0;
    unsigned bad;
    {
        py::gil_scoped_release nogil;
        bad = acc.update(p.view.rows, bytes, atomic, kernel);
    }
    if (bad) raise_bad(bad, t, p, rule, name.c_str());
}

class BinaryCountsState {
public:
    BinaryCountsState(std::vector<double> thresholds, int class_id, std::string name)
        : thresholds_(std::move(thresholds)), class_id_(class_id),
          acc_(state_entries(static_cast<long long>(thresholds_.size()), 4, name, "thresholds")),
          name_(std::move(name)) {}

    void update(py::handle y_true, py::handle y_pred, py::handle sample_weight) {
        Input t = get_input(y_true, "y_true", Role::Binary);
        Input p = get_input(y_pred, "y_pred", Role::Scores);
        require_same_shape(t, p);
        kernels::BinarySpec spec;
        spec.thresholds = thresholds_.data();
        spec.num_thresholds = static_cast<int>(thresholds_.size());
        spec.col_count = p.view.cols;
        if (class_id_ >= 0) {
            if (p.ndim != 2 || class_id_ >= p.view.cols) {
                throw py::value_error(name_ + ": with class_id=" + std::to_string(class_id_) +
                                      ", `y_pred` must have shape (batch_size, num_classes) with more than " +
                                      std::to_string(class_id_) + " columns. Received: y_pred.shape=" + p.shape());
            }
            spec.col_begin = class_id_;
            spec.col_count = 1;
        }
        Weights w = get_weights(sample_weight, p.view.rows);
        const View tv = t.view, pv = p.view;
        run_counts(acc_, t, p, /*atomic=*/true, LabelRule{}, name_,
                   [&](double* out, index_t b, index_t e) {
                       return kernels::binary_counts(spec, tv, pv, w.data, b, e, out);
                   });
    }

    py::array_t<double> state() const { return to_numpy(acc_.snapshot()); }
    void set_state(py::handle a) { acc_.assign(from_numpy(a, 4 * thresholds_.size(), "state")); }
    void merge(const BinaryCountsState& o) { acc_.add(o.acc_.snapshot()); }
    void reset() { acc_.reset(); }

private:
    std::vector<double> thresholds_;
    int class_id_;
    kernels::Accumulator acc_;
    std::string name_;
};

class ClassCountsState {
public:
    // threshold NaN: the row maximum is the positive (Keras F1Score default).
    ClassCountsState(double threshold, std::string name) : name_(std::move(name)) {
        spec_.threshold = threshold;
        spec_.argmax_rule = std::isnan(threshold);
    }

    void update(py::handle y_true, py::handle y_pred, py::handle sample_weight) {
        Input p = get_input(y_pred, "y_pred", Role::Scores);
        const index_t C = p.view.cols;
        // Class indices with 2-D scores; otherwise 0/1 labels shaped like y_pred.
        bool sparse = false;
        if (C > 1 && py::isinstance<py::array>(y_true)) {
            auto a = py::reinterpret_borrow<py::array>(y_true);
            sparse = a.ndim() == 1 || (a.ndim() == 2 && a.shape(1) == 1 && C > 1);
        } else if (C > 1) {
            py::array a = py::array::ensure(y_true);
            sparse = a && (a.ndim() == 1 || (a.ndim() == 2 && a.shape(1) == 1));
        }
        Input t = get_input(y_true, "y_true", sparse ? Role::ClassIndex : Role::Binary);
        if (sparse) require_same_rows(t, p);
        else require_same_shape(t, p);
        kernels::ClassCountsSpec spec = spec_;
        spec.sparse = sparse;
        spec.classes = C;
        Weights w = get_weights(sample_weight, p.view.rows);
        const View tv = t.view, pv = p.view;
        LabelRule rule{sparse ? LabelRule::Index : LabelRule::Binary, C};
        auto kernel = [&](double* out, index_t b, index_t e) {
            return kernels::class_counts(spec, tv, pv, w.data, b, e, out);
        };
        if (classes_ != 0) {
            require_classes(C, p);
            run_counts(acc_, t, p, /*atomic=*/false, rule, name_, kernel);
            return;
        }
        // The first batch fixes the number of classes. It is counted into a batch-local state
        // and only then installed (with the GIL held), so a rejected first batch changes
        // nothing, even while another thread's batch is being counted.
        kernels::Accumulator first(state_entries(C, 4, name_, "y_pred.shape[1]"));
        run_counts(first, t, p, /*atomic=*/false, rule, name_, kernel);
        if (classes_ == 0) {
            classes_ = C;
            acc_.assign(first.snapshot());
        } else {
            require_classes(C, p);
            acc_.add(first.snapshot());
        }
    }

    void require_classes(index_t C, const Input& p) const {
        if (classes_ != C) {
            throw py::value_error(name_ + ": every batch must have the same number of classes. Expected " +
                                  std::to_string(classes_) + " columns. Received: y_pred.shape=" + p.shape());
        }
    }

    py::array_t<double> state() const { return to_numpy(acc_.snapshot()); }
    void set_state(py::handle a) {
        std::vector<double> v = from_numpy(a, std::numeric_limits<std::size_t>::max(), "state");
        if (v.size() % 4 != 0) throw py::value_error(name_ + ": state must have 4 * num_classes entries.");
        classes_ = static_cast<index_t>(v.size() / 4);
        acc_.assign(v);
    }
    void merge(const ClassCountsState& o) {
        if (o.classes_ == 0) return;
        if (classes_ == 0) {
            classes_ = o.classes_;
            acc_.assign(o.acc_.snapshot());
            return;
        }
        if (classes_ != o.classes_) throw py::value_error(name_ + ": cannot merge states with different numbers of classes.");
        acc_.add(o.acc_.snapshot());
    }
    void reset() { acc_.reset(); }
    index_t classes() const { return classes_; }

private:
    kernels::ClassCountsSpec spec_;
    index_t classes_ = 0;
    kernels::Accumulator acc_;
    std::string name_;
};

class ConfusionState {
public:
    ConfusionState(index_t classes, double threshold, std::string name)
        : acc_(state_entries(classes, classes, name, "num_classes")), name_(std::move(name)) {
        spec_.classes = classes;
        spec_.threshold = threshold;
    }

    void update(py::handle y_true, py::handle y_pred, py::handle sample_weight) {
        Input t = get_input(y_true, "y_true", Role::ClassIndex);
        py::object pred = py::reinterpret_borrow<py::object>(y_pred);
        if (!py::isinstance<py::array>(pred) && !pred.is_none()) {
            py::array converted = py::array::ensure(pred);
            if (converted) pred = converted;
        }
        bool float_pred = py::isinstance<py::array>(pred) && py::reinterpret_borrow<py::array>(pred).dtype().kind() == 'f';
        Input p = get_input(pred, "y_pred", float_pred ? Role::Scores : Role::ClassIndex);
        if (t.view.cols != 1) {
            throw py::value_error(name_ + ": `y_true` must hold one class index per row. Received: y_true.shape=" + t.shape());
        }
        require_same_rows(t, p);
        kernels::ConfusionSpec spec = spec_;
        if (!float_pred) {
            spec.mode = kernels::PredMode::Labels;
            if (p.view.cols != 1) {
                throw py::value_error(name_ + ": integer `y_pred` must hold one class index per row. Received: y_pred.shape=" + p.shape());
            }
        } else if (p.view.cols == 1) {
            if (spec_.classes != 2) {
                throw py::value_error(name_ + ": a column of float scores is thresholded into 2 classes, but "
                                      "num_classes=" + std::to_string(spec_.classes) + ". Pass class indices "
                                      "(integers) or scores of shape (batch_size, num_classes). Received: y_pred.shape=" + p.shape());
            }
            spec.mode = kernels::PredMode::Threshold;
        } else {
            if (p.view.cols != spec_.classes) {
                throw py::value_error(name_ + ": `y_pred` scores must have num_classes=" + std::to_string(spec_.classes) +
                                      " columns. Received: y_pred.shape=" + p.shape());
            }
            spec.mode = kernels::PredMode::Argmax;
        }
        Weights w = get_weights(sample_weight, p.view.rows);
        const View tv = t.view, pv = p.view;
        run_counts(acc_, t, p, /*atomic=*/true, LabelRule{LabelRule::Index, spec_.classes}, name_,
                   [&](double* out, index_t b, index_t e) { return kernels::confusion(spec, tv, pv, w.data, b, e, out); });
    }

    py::array_t<double> state() const { return to_numpy(acc_.snapshot()); }
    void set_state(py::handle a) {
        acc_.assign(from_numpy(a, acc_.size(), "state"));
    }
    void merge(const ConfusionState& o) { acc_.add(o.acc_.snapshot()); }
    void reset() { acc_.reset(); }

private:
    kernels::ConfusionSpec spec_;
    kernels::Accumulator acc_;
    std::string name_;
};

class CalibrationState {
public:
    CalibrationState(index_t num_bins, std::string name)
        : bins_(num_bins), acc_(state_entries(num_bins, 3, name, "num_bins")), name_(std::move(name)) {}

    void update(py::handle y_true, py::handle y_pred, py::handle sample_weight) {
        Input p = get_input(y_pred, "y_pred", Role::Scores);
        Input t = get_input(y_true, "y_true", p.view.cols > 1 ? Role::ClassIndex : Role::Binary);
        if (t.view.cols != 1) {
            throw py::value_error(name_ + ": `y_true` must hold one label per row. Received: y_true.shape=" + t.shape());
        }
        require_same_rows(t, p);
        Weights w = get_weights(sample_weight, p.view.rows);
        const View tv = t.view, pv = p.view;
        LabelRule rule{pv.cols > 1 ? LabelRule::Index : LabelRule::Binary, pv.cols};
        run_counts(acc_, t, p, /*atomic=*/false, rule, name_, [&](double* out, index_t b, index_t e) {
            return kernels::calibration_bins(static_cast<int>(bins_), tv, pv, w.data, b, e, out);
        });
    }

    py::array_t<double> state() const { return to_numpy(acc_.snapshot()); }
    void set_state(py::handle a) { acc_.assign(from_numpy(a, acc_.size(), "state")); }
    void merge(const CalibrationState& o) { acc_.add(o.acc_.snapshot()); }
    void reset() { acc_.reset(); }

private:
    index_t bins_;
    kernels::Accumulator acc_;
    std::string name_;
};

template <class S>
void common_methods(py::class_<S>& c) {
    c.def("update", &S::update, py::arg("y_true"), py::arg("y_pred"), py::arg("sample_weight") = py::none())
        .def("state", &S::state)
        .def("set_state", &S::set_state)
        .def("merge", &S::merge)
        .def("reset", &S::reset);
}

}  // namespace

void register_count_states(py::module_& m) {
    py::class_<BinaryCountsState> b(m, "BinaryCountsState", "tp, fp, tn, fn at each threshold.");
    b.def(py::init<std::vector<double>, int, std::string>(), py::arg("thresholds"), py::arg("class_id") = -1,
          py::arg("name") = "metric");
    common_methods(b);

    py::class_<ClassCountsState> c(m, "ClassCountsState", "Per-class tp, fp, fn and support.");
    c.def(py::init<double, std::string>(), py::arg("threshold"), py::arg("name") = "metric");
    c.def_property_readonly("classes", &ClassCountsState::classes);
    common_methods(c);

    py::class_<ConfusionState> d(m, "ConfusionState", "Weighted num_classes x num_classes counts.");
    d.def(py::init<index_t, double, std::string>(), py::arg("num_classes"), py::arg("threshold") = 0.5,
          py::arg("name") = "metric");
    common_methods(d);

    py::class_<CalibrationState> e(m, "CalibrationState", "Per-bin weight, confidence and hit sums.");
    e.def(py::init<index_t, std::string>(), py::arg("num_bins"), py::arg("name") = "metric");
    common_methods(e);
}

}  // namespace bridge::glue
