// bridge._metrics_core: table of contents only; see the register_* files.
#include "../kernels/parallel.hpp"
#include "states.hpp"

namespace bridge::glue {

py::array_t<double> to_numpy(const std::vector<double>& v) {
    py::array_t<double> a(static_cast<py::ssize_t>(v.size()));
    if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(double));
    return a;
}

std::vector<double> from_numpy(py::handle h, std::size_t expected, const char* what) {
    auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(h);
    if (!a) throw py::type_error(std::string("State entry `") + what + "` must be a numeric array.");
    if (expected != static_cast<std::size_t>(-1) && static_cast<std::size_t>(a.size()) != expected) {
        throw py::value_error(std::string("State entry `") + what + "` must have " + std::to_string(expected) +
                              " values. Received: " + std::to_string(a.size()));
    }
    return std::vector<double>(a.data(), a.data() + a.size());
}

std::size_t state_entries(long long groups, long long per_group, const std::string& name, const char* arg) {
    if (groups < 1 || per_group < 1 || groups > kMaxStateEntries / per_group) {
        throw py::value_error(name + ": argument `" + arg + "`=" + std::to_string(groups) + " needs a state of " +
                              std::to_string(groups) + " x " + std::to_string(per_group) +
                              " values; it must be positive and at most " + std::to_string(kMaxStateEntries) +
                              " values (1 GiB) in all.");
    }
    return static_cast<std::size_t>(groups * per_group);
}

}  // namespace bridge::glue

PYBIND11_MODULE(_metrics_core, m) {
    namespace py = pybind11;
    m.doc() = "Compiled streaming-metric kernels for bridge.metrics (internal).";
    bridge::glue::register_mean_state(m);
    bridge::glue::register_count_states(m);
    bridge::glue::register_curve_states(m);
    m.def("set_num_threads", &bridge::kernels::set_num_threads, py::arg("n"),
          "Threads used for large batches (1 disables threading).");
    m.def("get_num_threads", &bridge::kernels::max_threads);
}
