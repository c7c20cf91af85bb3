// Shared types for the metric kernels. Pure C++17: no Python headers here.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

// Hot loops are compiled for several instruction sets and picked at load time
// (GCC/Clang ifunc). Only non-template entry points carry the attribute; the
// templated bodies are force-inlined into each clone.
#if defined(BRIDGE_TARGET_CLONES) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BRIDGE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BRIDGE_CLONES
#endif
#if defined(__GNUC__)
#define BRIDGE_INLINE inline __attribute__((always_inline))
// For lambdas in kernels: GCC does not inline plain lambdas into ISA clones.
#define BRIDGE_LAMBDA __attribute__((always_inline))
#else
#define BRIDGE_INLINE inline
#define BRIDGE_LAMBDA
#endif

namespace bridge::kernels {

using index_t = std::int64_t;

// Element types the kernels read in place.
enum class DType : std::uint8_t { U8, I32, I64, F32, F64 };

// A non-owning view of a C-contiguous array of rank <= 2 (rank 1 has cols == 1).
struct View {
    const void* data = nullptr;
    DType dtype = DType::F64;
    index_t rows = 0;
    index_t cols = 1;
    bool present() const { return data != nullptr; }
    index_t size() const { return rows * cols; }
};

// Problems a kernel can find while it reads its inputs. Kernels never write
// shared state when one of these is set; the caller reports the first offender.
enum Bad : unsigned {
    kOk = 0,
    kNonFiniteScore = 1u << 0,
    kLabelRange = 1u << 1,
    kProbRange = 1u << 2,
    kNonFiniteTarget = 1u << 3,
    kStateReplaced = 1u << 4,  // set_state/merge resized the state while the batch was counted
};

template <class To, class From>
BRIDGE_INLINE To bit_cast(From f);

// NaN and +-inf have every exponent bit set. Tested on the bits because the
// kernels are built with -fassociative-math, under which GCC may fold the
// arithmetic idioms (x * 0 == 0, x - x == 0) to true. Integer types are finite.
template <class T>
BRIDGE_INLINE bool finite(T x) {
    if constexpr (std::is_same_v<T, double>) {
        constexpr std::uint64_t kExp = 0x7ff0000000000000ull;
        return (bit_cast<std::uint64_t>(x) & kExp) != kExp;
    } else if constexpr (std::is_same_v<T, float>) {
        constexpr std::uint32_t kExp = 0x7f800000u;
        return (bit_cast<std::uint32_t>(x) & kExp) != kExp;
    } else {
        return true;
    }
}

template <class To, class From>
BRIDGE_INLINE To bit_cast(From f) {
    static_assert(sizeof(To) == sizeof(From), "size mismatch");
    To t;
    std::memcpy(&t, &f, sizeof(To));
    return t;
}

// Calls f with a typed pointer for a label view (bool, int32, int64).
template <class F>
decltype(auto) with_label(const View& v, F&& f) {
    switch (v.dtype) {
        case DType::U8: return f(static_cast<const std::uint8_t*>(v.data));
        case DType::I32: return f(static_cast<const std::int32_t*>(v.data));
        case DType::I64: return f(static_cast<const std::int64_t*>(v.data));
        default: throw std::logic_error("bridge: label view with a float dtype");
    }
}

// Calls f with a typed pointer for a float view (float32, float64).
template <class F>
decltype(auto) with_float(const View& v, F&& f) {
    switch (v.dtype) {
        case DType::F32: return f(static_cast<const float*>(v.data));
        case DType::F64: return f(static_cast<const double*>(v.data));
        default: throw std::logic_error("bridge: float view with an integer dtype");
    }
}

// Weight of row i, or 1 when the batch is unweighted (w == nullptr).
BRIDGE_INLINE double weight_at(const double* w, index_t i) { return w ? w[i] : 1.0; }

}  // namespace bridge::kernels
