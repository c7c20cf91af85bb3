// exp and log in double precision written with plain arithmetic and bit
// operations, so loops that call them auto-vectorise (glibc's scalar exp/log
// do not). Relative error is below 1e-15 on the ranges the kernels use.
#pragma once

#include "common.hpp"

namespace bridge::kernels {

// exp(x) for x <= 0 (log-sum-exp after subtracting the row max). Inputs below
// -700 return ~1e-304 instead of denormals: negligible next to exp(0) = 1.
BRIDGE_INLINE double exp_nonpos(double x) {
    constexpr double kLog2e = 1.4426950408889634074;
    constexpr double kLn2Hi = 6.93147180369123816490e-01;
    constexpr double kLn2Lo = 1.90821492927058770002e-10;
    x = x < -700.0 ? -700.0 : x;
    // Round x / ln2 to the nearest integer through int32 (x <= 0). The usual
    // "add 1.5 * 2^52" trick is unsafe here: the kernels are compiled with
    // -fassociative-math, which may fold (k + c) - c back to k.
    double k = x * kLog2e;
    std::int32_t ni = -static_cast<std::int32_t>(0.5 - k);
    double n = static_cast<double>(ni);
    double r = (x - n * kLn2Hi) - n * kLn2Lo;  // |r| <= ln2 / 2
    // Taylor series of exp(r) to degree 12 (error < 2e-16 on |r| <= 0.347).
    double p = 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    double scale = bit_cast<double>(static_cast<std::uint64_t>(static_cast<std::int64_t>(ni) + 1023) << 52);
    return p * scale;
}

// log(x) for positive normal x (callers clip probabilities away from 0).
BRIDGE_INLINE double log_pos(double x) {
    constexpr double kLn2Hi = 6.93147180369123816490e-01;
    constexpr double kLn2Lo = 1.90821492927058770002e-10;
    constexpr std::uint64_t kMantissa = (std::uint64_t(1) << 52) - 1;
    constexpr std::uint64_t kOneBits = std::uint64_t(1023) << 52;
    std::uint64_t bits = bit_cast<std::uint64_t>(x);
    // m in [1, 2), e the unbiased exponent (as a double, via the 2^52 trick).
    double m = bit_cast<double>((bits & kMantissa) | kOneBits);
    double e = bit_cast<double>((bits >> 52) | 0x4330000000000000ull) - 4503599627370496.0 - 1023.0;
    // Move m into [sqrt(1/2), sqrt(2)).
    bool big = m > 1.4142135623730951;
    m = big ? m * 0.5 : m;
    e = big ? e + 1.0 : e;
    double f = m - 1.0;
    double s = f / (2.0 + f);  // log(m) = 2 atanh(s), |s| <= 0.1716
    double z = s * s;
    double q = 1.0 / 23.0;
    q = q * z + 1.0 / 21.0;
    q = q * z + 1.0 / 19.0;
    q = q * z + 1.0 / 17.0;
    q = q * z + 1.0 / 15.0;
    q = q * z + 1.0 / 13.0;
    q = q * z + 1.0 / 11.0;
    q = q * z + 1.0 / 9.0;
    q = q * z + 1.0 / 7.0;
    q = q * z + 1.0 / 5.0;
    q = q * z + 1.0 / 3.0;
    // log(m) = 2s + 2s^3/3 + 2s^5/5 + ...
    double lm = 2.0 * s + 2.0 * s * z * q;
    return e * kLn2Hi + (lm + e * kLn2Lo);
}

// log(1 + u) for u >= 0, accurate for tiny u (Goldberg's correction).
BRIDGE_INLINE double log1p_pos(double u) {
    double w = 1.0 + u;
    double d = w - 1.0;
    double l = log_pos(w);
    return d == 0.0 ? u : l * (u / d);
}

}  // namespace bridge::kernels
