#include "inputs.hpp"

#include <cmath>
#include <cstdint>
#include <sstream>

namespace bridge::glue {
namespace {

constexpr int kCContiguous = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_;
constexpr int kAligned = py::detail::npy_api::NPY_ARRAY_ALIGNED_;

py::object& numpy() {
    static auto* np = new py::object(py::module_::import("numpy"));  // leaked: lives until exit
    return *np;
}

bool native_order(const py::dtype& dt) {
    char bo = dt.byteorder();
    return bo == '=' || bo == '|' || bo == '<';  // little-endian builds only ship
}

std::string repr_dtype(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// C-contiguous, aligned, native copy of `a` with dtype `dt` (no copy when it already is).
py::array contiguous(const py::array& a, const char* dt) {
    return numpy().attr("ascontiguousarray")(a, py::arg("dtype") = dt);
}

DType kernel_dtype(const py::array& a, bool& ok) {
    ok = true;
    py::dtype dt = a.dtype();
    if (!native_order(dt)) {
        ok = false;
        return DType::F64;
    }
    switch (dt.num()) {
        case py::detail::npy_api::NPY_BOOL_: return DType::U8;
        case py::detail::npy_api::NPY_INT32_: return DType::I32;
        case py::detail::npy_api::NPY_INT64_: return DType::I64;
        case py::detail::npy_api::NPY_FLOAT_: return DType::F32;
        case py::detail::npy_api::NPY_DOUBLE_: return DType::F64;
        default:
            // NPY_LONG / NPY_LONGLONG alias int64 on LP64; match by size and kind.
            if (dt.kind() == 'i' && dt.itemsize() == 8) return DType::I64;
            if (dt.kind() == 'i' && dt.itemsize() == 4) return DType::I32;
            ok = false;
            return DType::F64;
    }
}

std::string index_str(const Input& in, index_t flat) {
    std::ostringstream os;
    os << in.name << "[";
    if (in.ndim == 2) os << flat / in.view.cols << ", " << flat % in.view.cols;
    else os << flat;
    os << "]";
    return os.str();
}

std::string value_str(const Input& in, index_t flat) {
    double v = kernels::value_at(in.view, flat);
    std::ostringstream os;
    if (in.view.dtype == DType::F32 || in.view.dtype == DType::F64) {
        if (std::isnan(v)) os << "nan";
        else if (std::isinf(v)) os << (v > 0 ? "inf" : "-inf");
        else os << v;
    } else {
        os << static_cast<long long>(v);
    }
    return os.str();
}

}  // namespace

std::string Input::shape() const {
    std::ostringstream os;
    if (ndim == 0) return "()";
    os << "(" << view.rows;
    if (ndim == 2) os << ", " << view.cols;
    else os << ",";
    os << ")";
    return os.str();
}

Input get_input(py::handle h, const char* name, Role role, bool allow_scalar) {
    if (h.is_none())
        throw py::type_error(std::string("Argument `") + name + "` must be an array, not None.");
    py::array a;
    if (py::isinstance<py::array>(h)) {
        a = py::reinterpret_borrow<py::array>(h);
    } else {
        a = py::reinterpret_steal<py::array>(
            py::detail::npy_api::get().PyArray_FromAny_(h.ptr(), nullptr, 0, 0, 0, nullptr));
        if (!a) {
            PyErr_Clear();
            throw py::type_error(std::string("Argument `") + name +
                                 "` must be array-like (a numpy array or nested sequence of numbers). "
                                 "Received: type(" + name + ")=" +
                                 py::str(py::type::of(h).attr("__name__")).cast<std::string>());
        }
    }
    char kind = a.dtype().kind();
    if (kind != 'b' && kind != 'i' && kind != 'u' && kind != 'f') {
        throw py::type_error(std::string("Argument `") + name + "` must hold numbers (bool, int or float). "
                             "Received: " + name + ".dtype=" + repr_dtype(a));
    }
    if (role == Role::ClassIndex && kind == 'f') {
        throw py::type_error(std::string("Argument `") + name + "` holds class indices and must have an "
                             "integer or bool dtype; converting floats would silently truncate. Cast it "
                             "with .astype(int) if the values are whole numbers. Received: " + name +
                             ".dtype=" + repr_dtype(a));
    }
    const int ndim = static_cast<int>(a.ndim());
    if (ndim > 2 || (ndim == 0 && !allow_scalar)) {
        std::ostringstream os;
        os << "Argument `" << name << "` must have rank " << (allow_scalar ? "0, 1 or 2" : "1 or 2")
           << " (a batch of values, or of rows). Received: " << name << ".shape="
           << py::str(a.attr("shape")).cast<std::string>();
        throw py::value_error(os.str());
    }
    if (a.size() == 0) {
        throw py::value_error(std::string("Argument `") + name + "` is empty; a batch needs at least one "
                              "row. Received: " + name + ".shape=" +
                              py::str(a.attr("shape")).cast<std::string>());
    }
    if (kind == 'u' && a.dtype().itemsize() == 8 && role != Role::Scores) {
        // uint64 values above the int64 range do not fit the int64 kernels.
        py::array u = contiguous(a, "uint64");
        if (role == Role::Exact) {  // compared by value against signed labels in exact_pair
            Input in;
            in.keep = u;
            in.name = name;
            in.ndim = ndim;
            in.u64 = true;
            in.view = View{u.data(), DType::I64, ndim == 0 ? 1 : u.shape(0), ndim == 2 ? u.shape(1) : 1};
            return in;
        }
        const auto largest = u.attr("max")().cast<unsigned long long>();
        if (largest > static_cast<unsigned long long>(INT64_MAX)) {
            throw py::value_error(std::string("Argument `") + name + "` must hold " +
                                  (role == Role::Binary ? "binary labels (0 or 1)" : "class indices") +
                                  "; uint64 values beyond the int64 range are neither. Received: " + name +
                                  ".max()=" + std::to_string(largest));
        }
    }
    bool ok = false;
    DType dt = kernel_dtype(a, ok);
    const bool is_float = kind == 'f';
    if (role == Role::Scores && ok && dt != DType::F32 && dt != DType::F64) ok = false;
    if ((role == Role::ClassIndex || role == Role::Binary) && is_float) ok = false;
    if (ok && !(a.flags() & kCContiguous && a.flags() & kAligned)) ok = false;
    if (!ok) {
        // Convert once to the canonical dtype for the role.
        const char* target;
        if (role == Role::Scores || (role == Role::Exact && is_float)) {
            target = (is_float && a.dtype().itemsize() <= 4) ? "float32" : "float64";
        } else if (role == Role::Exact) {
            target = kind == 'b' ? "bool" : "int64";
        } else if (role == Role::Binary && is_float) {
            py::array f = contiguous(a, "float64");
            const double* d = static_cast<const double*>(f.data());
            for (py::ssize_t k = 0; k < f.size(); ++k) {
                if (d[k] != 0.0 && d[k] != 1.0) {
                    Input tmp;
                    tmp.view = View{d, DType::F64, f.ndim() == 2 ? f.shape(0) : f.size(),
                                    f.ndim() == 2 ? f.shape(1) : 1};
                    tmp.ndim = static_cast<int>(f.ndim());
                    tmp.name = name;
                    throw py::value_error(std::string("Argument `") + name + "` must hold binary labels "
                                          "(0 or 1). Received: " + index_str(tmp, k) + "=" +
                                          value_str(tmp, k));
                }
            }
            target = "bool";
        } else {
            target = (kind == 'b') ? "bool" : (kind == 'i' && a.dtype().itemsize() <= 4 ? "int32" : "int64");
        }
        a = contiguous(a, target);
        dt = kernel_dtype(a, ok);
    }
    Input in;
    in.keep = a;
    in.name = name;
    in.ndim = ndim;
    index_t rows = ndim == 0 ? 1 : a.shape(0);
    index_t cols = ndim == 2 ? a.shape(1) : 1;
    in.view = View{a.data(), dt, rows, cols};
    return in;
}

Input as_float64(const Input& in) {
    Input out = in;
    py::array a = contiguous(py::reinterpret_borrow<py::array>(in.keep), "float64");
    out.keep = a;
    out.view.data = a.data();
    out.view.dtype = DType::F64;
    return out;
}

void exact_pair(Input& t, Input& p) {
    auto is_int = [](DType d) { return d != DType::F32 && d != DType::F64; };
    if (t.u64 != p.u64 && is_int(t.view.dtype) && is_int(p.view.dtype)) {
        Input& u = t.u64 ? t : p;
        Input& s = t.u64 ? p : t;
        py::array copy = numpy().attr("array")(s.keep, py::arg("dtype") = "int64", py::arg("order") = "C");
        auto* sv = static_cast<std::int64_t*>(copy.mutable_data());
        const auto* uv = static_cast<const std::int64_t*>(u.view.data);
        // Equal bits mean equal values unless the signed side is negative, which no uint64 is:
        // give those elements a value that differs from the uint64 bits.
        for (py::ssize_t k = 0; k < copy.size(); ++k) {
            if (sv[k] < 0) sv[k] = uv[k] ^ 1;
        }
        s.keep = copy;
        s.view.data = copy.data();
        s.view.dtype = DType::I64;
        u.u64 = s.u64 = false;
        return;
    }
    if (t.view.dtype != p.view.dtype || t.u64 != p.u64) {
        t = as_float64(t);
        p = as_float64(p);
    }
}

Weights get_weights(py::handle h, index_t rows) {
    Weights w;
    if (h.is_none()) return w;
    Input in = get_input(h, "sample_weight", Role::Scores, /*allow_scalar=*/true);
    const bool shape_ok = in.ndim == 0 || (in.view.rows == rows && in.view.cols == 1);
    if (!shape_ok) {
        std::ostringstream os;
        os << "Argument `sample_weight` must be a scalar or have one weight per row, shape (" << rows
           << ",) or (" << rows << ", 1). Received: sample_weight.shape=" << in.shape();
        throw py::value_error(os.str());
    }
    py::array a = py::reinterpret_borrow<py::array>(in.keep);
    if (in.ndim == 0) {
        a = numpy().attr("full")(rows, a, py::arg("dtype") = "float64");
    } else if (in.view.dtype != DType::F64) {
        a = contiguous(a, "float64");
    }
    w.keep = a;
    w.data = static_cast<const double*>(a.data());
    index_t bad = kernels::first_bad_weight(w.data, rows);
    if (bad >= 0) {
        std::ostringstream os;
        os << "Argument `sample_weight` must hold finite, non-negative weights. Received: sample_weight["
           << (in.ndim == 0 ? 0 : bad) << "]=" << w.data[bad];
        throw py::value_error(os.str());
    }
    return w;
}

void require_same_rows(const Input& t, const Input& p) {
    if (t.view.rows != p.view.rows) {
        throw py::value_error(std::string("Arguments `y_true` and `y_pred` must have the same number of rows. "
                              "Received: y_true.shape=") + t.shape() + ", y_pred.shape=" + p.shape());
    }
}

void require_same_shape(const Input& t, const Input& p) {
    if (t.view.rows != p.view.rows || t.view.cols != p.view.cols) {
        throw py::value_error(std::string("Arguments `y_true` and `y_pred` must have the same shape "
                              "((N,) and (N, 1) are treated alike). Received: y_true.shape=") +
                              t.shape() + ", y_pred.shape=" + p.shape());
    }
}

void raise_bad(unsigned bad, const Input& t, const Input& p, const LabelRule& rule, const char* metric) {
    std::ostringstream os;
    if (bad & kernels::kNonFiniteScore) {
        index_t k = kernels::first_nonfinite(p.view);
        os << metric << ": argument `" << p.name << "` must hold finite numbers (no NaN or inf). Received: "
           << index_str(p, k < 0 ? 0 : k) << "=" << value_str(p, k < 0 ? 0 : k);
        throw py::value_error(os.str());
    }
    if (bad & kernels::kNonFiniteTarget) {
        index_t k = kernels::first_nonfinite(t.view);
        os << metric << ": argument `" << t.name << "` must hold finite numbers (no NaN or inf). Received: "
           << index_str(t, k < 0 ? 0 : k) << "=" << value_str(t, k < 0 ? 0 : k);
        throw py::value_error(os.str());
    }
    if (bad & kernels::kLabelRange) {
        index_t k;
        os << metric << ": argument `" << t.name << "` must hold ";
        if (rule.kind == LabelRule::Index) {
            k = kernels::first_label_outside(t.view, 0, rule.classes - 1);
            os << "class indices in [0, " << rule.classes << ")";
        } else if (rule.kind == LabelRule::Unit) {
            k = kernels::first_outside(t.view, 0.0, 1.0);
            os << "targets in [0, 1]";
        } else {
            k = kernels::first_label_outside(t.view, 0, 1);
            os << "binary labels (0 or 1)";
        }
        if (k < 0) {  // the offender was in y_pred (confusion matrix of two label arrays)
            k = kernels::first_label_outside(p.view, 0, rule.classes - 1);
            std::ostringstream o2;
            o2 << metric << ": argument `" << p.name << "` must hold class indices in [0, " << rule.classes
               << "). Received: " << index_str(p, k < 0 ? 0 : k) << "=" << value_str(p, k < 0 ? 0 : k);
            throw py::value_error(o2.str());
        }
        os << ". Received: " << index_str(t, k) << "=" << value_str(t, k);
        throw py::value_error(os.str());
    }
    if (bad & kernels::kProbRange) {
        index_t k = kernels::first_outside(p.view, 0.0, 1.0);
        os << metric << ": argument `" << p.name << "` must hold probabilities in [0, 1] (pass "
           << "from_logits=True for logits). Received: " << index_str(p, k < 0 ? 0 : k) << "="
           << value_str(p, k < 0 ? 0 : k);
        throw py::value_error(os.str());
    }
    if (bad & kernels::kStateReplaced) {
        throw py::value_error(std::string(metric) + ": the state was replaced (set_state or merge_state from another "
                              "thread) while this batch was being counted; the batch was not added. Update and "
                              "replace the state from one thread at a time.");
    }
    throw py::value_error(std::string(metric) + ": invalid input");
}

}  // namespace bridge::glue
