// Turning Python arguments into kernel views, with the checks and messages
// that belong on the Python side. Everything here runs with the GIL held.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "../kernels/kernels.hpp"

namespace bridge::glue {

namespace py = pybind11;
using kernels::DType;
using kernels::index_t;
using kernels::View;

// What an argument holds, which decides the dtypes accepted.
enum class Role {
    Scores,      // float32/float64 read in place; ints and bools converted to float64
    ClassIndex,  // int32/int64/bool read in place; other ints converted; floats refused
    Binary,      // 0/1 labels: bool/int32/int64 in place; floats that are exactly 0/1 converted
    Exact,       // any numeric dtype read in place when it is one of the five kernel dtypes
};

struct Input {
    py::object keep;  // owner of the memory `view` points into
    View view;
    int ndim = 0;
    const char* name = "";
    bool u64 = false;  // uint64 data read as int64 bits (Role::Exact only); see exact_pair
    std::string shape() const;  // "(3, 2)"
};

// Reads `h` as an array of rank 1 or 2 (rank 0 too when allow_scalar).
Input get_input(py::handle h, const char* name, Role role, bool allow_scalar = false);

// Converts `in` to float64 (for mixed-dtype comparisons).
Input as_float64(const Input& in);

// Makes two Role::Exact inputs of one shape comparable elementwise by value: the same dtype,
// integers staying integers when one is uint64 (uint64 2**64-1 != int64 -1), float64 otherwise.
void exact_pair(Input& t, Input& p);

// Sample weights for `rows` rows: None, a scalar, shape (rows,) or (rows, 1).
// Returned pointer is null for None; scalars are broadcast.
struct Weights {
    py::object keep;
    const double* data = nullptr;
};
Weights get_weights(py::handle h, index_t rows);

// y_true and y_pred must have the same rows and columns; (N,) and (N, 1) match.
void require_same_shape(const Input& t, const Input& p);
// Both must have the same number of rows.
void require_same_rows(const Input& t, const Input& p);

// How labels in y_true are constrained, for error messages.
struct LabelRule {
    enum Kind { Binary, Index, Unit } kind = Binary;
    index_t classes = 0;
};

// Raises the Python exception that describes `bad` (a kernels::Bad mask).
[[noreturn]] void raise_bad(unsigned bad, const Input& t, const Input& p, const LabelRule& rule,
                            const char* metric);

}  // namespace bridge::glue
