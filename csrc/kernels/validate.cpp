// Slow-path scans that find the first offending element of a rejected batch,
// so error messages can name it.
#include "kernels.hpp"

namespace bridge::kernels {

double value_at(const View& v, index_t k) {
    switch (v.dtype) {
        case DType::U8: return static_cast<const std::uint8_t*>(v.data)[k];
        case DType::I32: return static_cast<const std::int32_t*>(v.data)[k];
        case DType::I64: return static_cast<double>(static_cast<const std::int64_t*>(v.data)[k]);
        case DType::F32: return static_cast<const float*>(v.data)[k];
        case DType::F64: return static_cast<const double*>(v.data)[k];
    }
    return 0.0;
}

index_t first_nonfinite(const View& v) {
    if (v.dtype != DType::F32 && v.dtype != DType::F64) return -1;
    for (index_t k = 0; k < v.size(); ++k)
        if (!std::isfinite(value_at(v, k))) return k;
    return -1;
}

index_t first_outside(const View& v, double lo, double hi) {
    for (index_t k = 0; k < v.size(); ++k) {
        double x = value_at(v, k);
        if (!(x >= lo && x <= hi)) return k;
    }
    return -1;
}

index_t first_label_outside(const View& v, std::int64_t lo, std::int64_t hi) {
    for (index_t k = 0; k < v.size(); ++k) {
        std::int64_t x = v.dtype == DType::I64 ? static_cast<const std::int64_t*>(v.data)[k]
                                               : static_cast<std::int64_t>(value_at(v, k));
        if (x < lo || x > hi) return k;
    }
    return -1;
}

index_t first_bad_weight(const double* w, index_t n) {
    for (index_t k = 0; k < n; ++k)
        if (!(w[k] >= 0.0) || !std::isfinite(w[k])) return k;
    return -1;
}

}  // namespace bridge::kernels
