// A tiny persistent thread pool for splitting large batches across cores.
#pragma once

#include <functional>

#include "common.hpp"

namespace bridge::kernels {

// Number of threads the pool may use (hardware threads, at least 1, capped at 16).
int max_threads();

// Sets the number of threads used for large batches (1 turns threading off).
void set_num_threads(int n);

// Number of chunks `parallel_chunks` would split `work_bytes` of input into.
int plan_chunks(index_t rows, double work_bytes);

// Runs fn(chunk, begin, end) for `chunks` contiguous row ranges of [0, rows),
// in parallel when the pool is free, otherwise inline (never deadlocks when
// called from several threads at once). Exceptions from fn are re-thrown.
void parallel_chunks(index_t rows, int chunks,
                     const std::function<void(int, index_t, index_t)>& fn);

}  // namespace bridge::kernels
