// Python-facing state objects: each owns a kernels state, reads numpy inputs
// through inputs.hpp and releases the GIL while the kernels run.
#pragma once

#include "inputs.hpp"

namespace bridge::glue {

void register_mean_state(py::module_& m);
void register_count_states(py::module_& m);
void register_curve_states(py::module_& m);

// Shared helpers for the register_* files.
py::array_t<double> to_numpy(const std::vector<double>& v);
std::vector<double> from_numpy(py::handle h, std::size_t expected, const char* what);

}  // namespace bridge::glue
