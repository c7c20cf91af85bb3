// Small per-row helpers shared by the kernels (inlined into each ISA clone).
#pragma once

#include <algorithm>

#include "common.hpp"

namespace bridge::kernels {

// Index of the first maximum of x[0..n) (x finite; checked by the caller).
// Two passes (max, then first index equal to it) so both loops vectorise.
template <class T>
BRIDGE_INLINE index_t argmax_first(const T* x, index_t n) {
    T m = x[0];
    for (index_t j = 1; j < n; ++j) m = x[j] > m ? x[j] : m;
    index_t idx = n;
    for (index_t j = 0; j < n; ++j) idx = std::min(idx, x[j] == m ? j : n);
    return idx;
}

template <class T>
BRIDGE_INLINE index_t count_nonfinite(const T* x, index_t n) {
    index_t bad = 0;
    for (index_t j = 0; j < n; ++j) bad += !finite(x[j]);
    return bad;
}

// Same for one row (n < 2^31): 32-bit counters vectorise twice as wide.
template <class T>
BRIDGE_INLINE std::int32_t row_nonfinite(const T* x, index_t n) {
    std::int32_t bad = 0;
    for (index_t j = 0; j < n; ++j) bad += !finite(x[j]);
    return bad;
}

}  // namespace bridge::kernels
