// bnnflow: an hls::vector for compiling FINN's generated cppsim programs with g++ and the open ap_types headers
// (which have no hls_vector.h). It follows the documented Vitis HLS interface: a fixed-size array of N
// elements of T with element-wise arithmetic and comparison. FINN's vector streams (npy2vectorstream.hpp and
// the pooling layer) use it; the matrix-vector, thresholding and label-select layers do not.
#ifndef BNNFLOW_HLS_VECTOR_H
#define BNNFLOW_HLS_VECTOR_H

#include <array>
#include <cstddef>
#include <initializer_list>

namespace hls {

template <typename T, std::size_t N>
class vector {
  public:
    vector() = default;
    explicit vector(const T &value) { elems_.fill(value); }
    vector(std::initializer_list<T> values) {
        std::size_t i = 0;
        for (const T &v : values) {
            if (i < N) elems_[i++] = v;
        }
    }
    vector(const std::array<T, N> &values) : elems_(values) {}

    T &operator[](std::size_t i) { return elems_[i]; }
    const T &operator[](std::size_t i) const { return elems_[i]; }
    static constexpr std::size_t size() { return N; }
    T *begin() { return elems_.data(); }
    T *end() { return elems_.data() + N; }
    const T *begin() const { return elems_.data(); }
    const T *end() const { return elems_.data() + N; }

#define BNNFLOW_HLS_VECTOR_OP(op)                                                  \
    vector &operator op##=(const vector & rhs) {                                   \
        for (std::size_t i = 0; i < N; i++) elems_[i] = elems_[i] op rhs.elems_[i]; \
        return *this;                                                              \
    }                                                                              \
    vector &operator op##=(const T & rhs) {                                        \
        for (std::size_t i = 0; i < N; i++) elems_[i] = elems_[i] op rhs;          \
        return *this;                                                              \
    }                                                                              \
    friend vector operator op(vector lhs, const vector & rhs) { return lhs op## = rhs; } \
    friend vector operator op(vector lhs, const T & rhs) { return lhs op## = rhs; }
    BNNFLOW_HLS_VECTOR_OP(+)
    BNNFLOW_HLS_VECTOR_OP(-)
    BNNFLOW_HLS_VECTOR_OP(*)
    BNNFLOW_HLS_VECTOR_OP(/)
#undef BNNFLOW_HLS_VECTOR_OP

    friend bool operator==(const vector &a, const vector &b) {
        for (std::size_t i = 0; i < N; i++) {
            if (!(a.elems_[i] == b.elems_[i])) return false;
        }
        return true;
    }
    friend bool operator!=(const vector &a, const vector &b) { return !(a == b); }

  private:
    std::array<T, N> elems_{};
};

}  // namespace hls

#endif
