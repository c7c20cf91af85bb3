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

// Largest metric state, in doubles (1 GiB); Python's bridge.metrics.base checks the same bound.
constexpr long long kMaxStateEntries = 1LL << 27;

// groups * per_group, the size of a state, checked without overflow: raises ValueError naming
// `arg` when it is not positive or exceeds kMaxStateEntries.
std::size_t state_entries(long long groups, long long per_group, const std::string& name, const char* arg);

}  // namespace bridge::glue
