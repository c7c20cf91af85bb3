// AUC states: Keras-style bucketed histograms and exact (all scores) curves.
#include <algorithm>

#include "../kernels/metrics.hpp"
#include "states.hpp"

namespace bridge::glue {
namespace {

kernels::Curve parse_curve(const std::string& s) {
    if (s == "ROC") return kernels::Curve::ROC;
    if (s == "PR") return kernels::Curve::PR;
    throw py::value_error("Invalid curve. Expected 'ROC' or 'PR'. Received: curve=" + s);
}

kernels::Summation parse_summation(const std::string& s) {
    if (s == "interpolation") return kernels::Summation::Interpolation;
    if (s == "minoring") return kernels::Summation::Minoring;
    if (s == "majoring") return kernels::Summation::Majoring;
    throw py::value_error("Invalid summation_method. Received: summation_method=" + s);
}

// Flattens (N, d) inputs into N*d rows; weights are repeated per element.
void flatten(Input& t, Input& p, Weights& w) {
    const index_t d = p.view.cols;
    if (d == 1) return;
    t.view.rows *= d;
    t.view.cols = 1;
    p.view.rows *= d;
    p.view.cols = 1;
    if (w.data) {
        py::array a = py::module_::import("numpy").attr("repeat")(w.keep, d);
        w.keep = a;
        w.data = static_cast<const double*>(a.data());
    }
}

class BinnedCurveState {
public:
    // thresholds: all T thresholds including the -eps / 1+eps ends; uniform
    // selects Keras's evenly spaced fast path.
    BinnedCurveState(std::vector<double> thresholds, bool uniform, bool from_logits, std::string name)
        : acc_(state_entries(static_cast<long long>(thresholds.size()), 2, name, "num_thresholds")),
          name_(std::move(name)) {
        thresholds_.assign(thresholds.begin(), thresholds.end());
        spec_.num_thresholds = static_cast<int>(thresholds.size());
        spec_.thresholds = uniform ? nullptr : thresholds_.data();
        spec_.from_logits = from_logits;
    }

    void update(py::handle y_true, py::handle y_pred, py::handle sample_weight) {
        Input t = get_input(y_true, "y_true", Role::Binary);
        Input p = get_input(y_pred, "y_pred", Role::Scores);
        require_same_shape(t, p);
        Weights w = get_weights(sample_weight, p.view.rows);
        const View tv = t.view, pv = p.view;
        const int T = spec_.num_thresholds;
        const double bytes = static_cast<double>(pv.size()) * 12.0;
        unsigned bad;
        {
            py::gil_scoped_release nogil;
            bad = acc_.update(pv.rows, bytes, /*atomic=*/true, [&](double* out, index_t b, index_t e) {
                return kernels::binned_histogram(spec_, tv, pv, w.data, b, e, out, out + T);
            });
        }
        if (bad) raise_bad(bad, t, p, LabelRule{}, name_.c_str());
    }

    double result(const std::string& curve, const std::string& method) const {
        std::vector<double> s = acc_.snapshot();
        const std::size_t T = s.size() / 2;
        std::vector<double> pos(s.begin(), s.begin() + T), neg(s.begin() + T, s.end());
        return kernels::binned_auc(pos, neg, parse_curve(curve), parse_summation(method));
    }

    // Cumulative tp, fp, tn, fn per threshold (4 x T).
    py::array_t<double> confusion() const {
        std::vector<double> s = acc_.snapshot();
        const std::size_t T = s.size() / 2;
        std::vector<double> pos(s.begin(), s.begin() + T), neg(s.begin() + T, s.end());
        py::array_t<double> out = to_numpy(kernels::binned_confusion(pos, neg));
        return out.reshape({static_cast<py::ssize_t>(4), static_cast<py::ssize_t>(T)});
    }

    py::array_t<double> state() const { return to_numpy(acc_.snapshot()); }
    void set_state(py::handle a) { acc_.assign(from_numpy(a, 2 * thresholds_.size(), "state")); }
    void merge(const BinnedCurveState& o) { acc_.add(o.acc_.snapshot()); }
    void reset() { acc_.reset(); }

private:
    std::vector<float> thresholds_;
    kernels::BinnedSpec spec_;
    kernels::Accumulator acc_;
    std::string name_;
};

class ExactCurveState {
public:
    explicit ExactCurveState(std::string name) : name_(std::move(name)) {}

    void update(py::handle y_true, py::handle y_pred, py::handle sample_weight) {
        Input t = get_input(y_true, "y_true", Role::Binary);
        Input p = get_input(y_pred, "y_pred", Role::Scores);
        require_same_shape(t, p);
        Weights w = get_weights(sample_weight, p.view.rows);
        Input ft = t, fp = p;
        flatten(ft, fp, w);
        unsigned bad;
        {
            py::gil_scoped_release nogil;
            bad = curve_.update(ft.view, fp.view, w.data);
        }
        if (bad) raise_bad(bad, t, p, LabelRule{}, name_.c_str());
    }

    py::tuple areas() {
        kernels::ExactAreas a;
        {
            py::gil_scoped_release nogil;
            a = curve_.areas();
        }
        return py::make_tuple(a.roc, a.average_precision);
    }

    py::dict state() const {
        kernels::ExactCurve::Arrays a = curve_.snapshot();
        py::dict d;
        d["positive_scores"] = to_numpy(a.pos);
        d["negative_scores"] = to_numpy(a.neg);
        d["positive_weights"] = to_numpy(a.weighted ? a.pos_w : std::vector<double>(a.pos.size(), 1.0));
        d["negative_weights"] = to_numpy(a.weighted ? a.neg_w : std::vector<double>(a.neg.size(), 1.0));
        return d;
    }

    void set_state(const py::dict& d) {
        kernels::ExactCurve::Arrays a;
        const std::size_t any = static_cast<std::size_t>(-1);
        a.pos = from_numpy(d["positive_scores"], any, "positive_scores");
        a.neg = from_numpy(d["negative_scores"], any, "negative_scores");
        a.pos_w = from_numpy(d["positive_weights"], a.pos.size(), "positive_weights");
        a.neg_w = from_numpy(d["negative_weights"], a.neg.size(), "negative_weights");
        auto bad = [](const std::vector<double>& v, bool weights) {
            return std::any_of(v.begin(), v.end(), [weights](double x) {
                return !std::isfinite(x) || (weights && x < 0.0);
            });
        };
        if (bad(a.pos, false) || bad(a.neg, false) || bad(a.pos_w, true) || bad(a.neg_w, true))
            throw py::value_error(name_ + ": state holds non-finite scores or negative weights.");
        auto not_one = [](const std::vector<double>& v) {
            return std::any_of(v.begin(), v.end(), [](double x) { return x != 1.0; });
        };
        a.weighted = not_one(a.pos_w) || not_one(a.neg_w);
        curve_.assign(a);
    }

    void merge(const ExactCurveState& o) { curve_.merge(o.curve_); }
    void reset() { curve_.reset(); }
    std::size_t size() const { return curve_.size(); }

private:
    kernels::ExactCurve curve_;
    std::string name_;
};

}  // namespace

void register_curve_states(py::module_& m) {
    py::class_<BinnedCurveState>(m, "BinnedCurveState", "Per-bucket weights of positives and negatives.")
        .def(py::init<std::vector<double>, bool, bool, std::string>(), py::arg("thresholds"),
             py::arg("uniform"), py::arg("from_logits") = false, py::arg("name") = "auc")
        .def("update", &BinnedCurveState::update, py::arg("y_true"), py::arg("y_pred"),
             py::arg("sample_weight") = py::none())
        .def("result", &BinnedCurveState::result, py::arg("curve"), py::arg("summation_method"))
        .def("confusion", &BinnedCurveState::confusion)
        .def("state", &BinnedCurveState::state)
        .def("set_state", &BinnedCurveState::set_state)
        .def("merge", &BinnedCurveState::merge)
        .def("reset", &BinnedCurveState::reset);

    py::class_<ExactCurveState>(m, "ExactCurveState", "Every score, split by label, for exact areas.")
        .def(py::init<std::string>(), py::arg("name") = "auc")
        .def("update", &ExactCurveState::update, py::arg("y_true"), py::arg("y_pred"),
             py::arg("sample_weight") = py::none())
        .def("areas", &ExactCurveState::areas, "(ROC AUC, average precision) of everything seen.")
        .def("state", &ExactCurveState::state)
        .def("set_state", &ExactCurveState::set_state)
        .def("merge", &ExactCurveState::merge)
        .def("reset", &ExactCurveState::reset)
        .def("__len__", &ExactCurveState::size);
}

}  // namespace bridge::glue
