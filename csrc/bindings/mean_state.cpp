// MeanState: a weighted (total, count) pair behind Mean, Sum, the accuracies,
// the regression errors and the cross-entropies.
#include <string>

#include "../kernels/metrics.hpp"
#include "states.hpp"

namespace bridge::glue {
namespace {

using kernels::MeanKind;

MeanKind parse_kind(const std::string& s) {
    if (s == "values") return MeanKind::Values;
    if (s == "value_sums") return MeanKind::ValueSums;
    if (s == "squared_error") return MeanKind::SquaredError;
    if (s == "absolute_error") return MeanKind::AbsoluteError;
    if (s == "equal") return MeanKind::Equal;
    if (s == "categorical_accuracy") return MeanKind::CategoricalAccuracy;
    if (s == "sparse_accuracy") return MeanKind::SparseAccuracy;
    if (s == "sparse_top_k") return MeanKind::SparseTopK;
    if (s == "binary_crossentropy") return MeanKind::BinaryCrossentropy;
    if (s == "sparse_crossentropy") return MeanKind::SparseCrossentropy;
    throw py::value_error("Unknown mean kind. Received: kind=" + s);
}

class MeanState {
public:
    MeanState(const std::string& kind, int k, bool from_logits, double label_smoothing, std::string name)
        : acc_(2), name_(std::move(name)) {
        spec_.kind = parse_kind(kind);
        spec_.k = k;
        spec_.from_logits = from_logits;
        spec_.label_smoothing = label_smoothing;
    }

    void update(py::handle y_true, py::handle y_pred, py::handle sample_weight) {
        Input t, p;
        LabelRule rule;
        read(y_true, y_pred, t, p, rule);
        run(t, p, sample_weight, rule);
    }

    // Mean / Sum: one array of values.
    void update_values(py::handle values, py::handle sample_weight) {
        Input v = get_input(values, "values", Role::Scores, /*allow_scalar=*/true);
        run(Input{}, v, sample_weight, LabelRule{});
    }

    py::array_t<double> state() const { return to_numpy(acc_.snapshot()); }
    void set_state(py::handle a) { acc_.assign(from_numpy(a, 2, "state")); }
    void merge(const MeanState& o) { acc_.add(o.acc_.snapshot()); }
    void reset() { acc_.reset(); }

private:
    void read(py::handle y_true_in, py::handle y_pred, Input& t, Input& p, LabelRule& rule) {
        py::handle y_true = y_true_in;
        switch (spec_.kind) {
            case MeanKind::SquaredError:
            case MeanKind::AbsoluteError:
            case MeanKind::CategoricalAccuracy:
                t = get_input(y_true, "y_true", Role::Scores);
                p = get_input(y_pred, "y_pred", Role::Scores);
                require_same_shape(t, p);
                return;
            case MeanKind::Equal:
                t = get_input(y_true, "y_true", Role::Exact);
                p = get_input(y_pred, "y_pred", Role::Exact);
                require_same_shape(t, p);
                exact_pair(t, p);
                return;
            case MeanKind::SparseAccuracy:
            case MeanKind::SparseTopK:
            case MeanKind::SparseCrossentropy:
                t = get_input(y_true, "y_true", Role::ClassIndex);
                p = get_input(y_pred, "y_pred", Role::Scores);
                if (p.ndim != 2) {
                    throw py::value_error("Argument `y_pred` must have shape (batch_size, num_classes). "
                                          "Received: y_pred.shape=" + p.shape());
                }
                if (t.view.cols != 1) {
                    throw py::value_error("Argument `y_true` must hold one class index per row, shape "
                                          "(batch_size,) or (batch_size, 1). Received: y_true.shape=" +
                                          t.shape());
                }
                require_same_rows(t, p);
                rule = LabelRule{LabelRule::Index, p.view.cols};
                return;
            case MeanKind::BinaryCrossentropy: {
                p = get_input(y_pred, "y_pred", Role::Scores);
                // Soft targets (floats) take two logs per element; 0/1 labels take one.
                py::object obj = py::reinterpret_borrow<py::object>(y_true);
                if (!py::isinstance<py::array>(obj) && !obj.is_none()) {
                    py::array converted = py::array::ensure(obj);
                    if (converted) obj = converted;
                }
                bool soft = spec_.label_smoothing != 0.0 ||
                            (py::isinstance<py::array>(obj) &&
                             py::reinterpret_borrow<py::array>(obj).dtype().kind() == 'f');
                y_true = obj;
                t = get_input(y_true, "y_true", soft ? Role::Scores : Role::Binary);
                rule = LabelRule{soft ? LabelRule::Unit : LabelRule::Binary, 2};
                require_same_shape(t, p);
                return;
            }
            case MeanKind::Values:
            case MeanKind::ValueSums:
                break;
        }
        throw py::type_error("This metric takes `values`, not (y_true, y_pred).");
    }

    void run(const Input& t, const Input& p, py::handle sample_weight, const LabelRule& rule) {
        Weights w = get_weights(sample_weight, p.view.rows);
        const View tv = t.view, pv = p.view;
        const double bytes = static_cast<double>(pv.size()) * 8.0 + static_cast<double>(tv.size()) * 4.0;
        unsigned bad;
        {
            py::gil_scoped_release nogil;
            bad = acc_.update(pv.rows, bytes, /*atomic=*/true,
                              [&](double* out, index_t b, index_t e) {
                                  kernels::MeanPartial r = kernels::mean_update(spec_, tv, pv, w.data, b, e);
                                  if (r.bad) return r.bad;
                                  out[0] += r.total;
                                  out[1] += r.count;
                                  return 0u;
                              });
        }
        if (bad) raise_bad(bad, t, p, rule, name_.c_str());
    }

    kernels::MeanSpec spec_;
    kernels::Accumulator acc_;
    std::string name_;
};

}  // namespace

void register_mean_state(py::module_& m) {
    py::class_<MeanState>(m, "MeanState", "Weighted (total, count) of one value per row.")
        .def(py::init<const std::string&, int, bool, double, std::string>(), py::arg("kind"),
             py::arg("k") = 5, py::arg("from_logits") = false, py::arg("label_smoothing") = 0.0,
             py::arg("name") = "metric")
        .def("update", &MeanState::update, py::arg("y_true"), py::arg("y_pred"),
             py::arg("sample_weight") = py::none())
        .def("update_values", &MeanState::update_values, py::arg("values"),
             py::arg("sample_weight") = py::none())
        .def("state", &MeanState::state)
        .def("set_state", &MeanState::set_state)
        .def("merge", &MeanState::merge)
        .def("reset", &MeanState::reset);
}

}  // namespace bridge::glue
