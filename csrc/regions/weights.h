// The two number systems the region counter runs in: exact big integers, and natural
// logarithms (for log_linear_regions, which must not build the integer).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "big_uint.h"

namespace pyddsar {

struct ExactWeight {
  using T = BigUInt;
  static T zero() { return BigUInt(); }
  static T one() { return BigUInt(1); }
  static void add(T& acc, const T& v) { acc += v; }
  static T mul(const T& a, const T& b) { return a * b; }
  static size_t bytes(const T& v) { return sizeof(T) + v.byte_size(); }
  // a^e by squaring; refuses results beyond max_bits rather than running for hours.
  static T pow(const T& a, int64_t e, int64_t max_bits) {
    if (static_cast<double>(a.bit_length()) * static_cast<double>(e) > static_cast<double>(max_bits))
      throw std::invalid_argument("the exact count would have more than " + std::to_string(max_bits) +
                                  " bits; use log_linear_regions for this layer");
    BigUInt result(1), base = a;
    while (e > 0) {
      if (e & 1) result = result * base;
      e >>= 1;
      if (e) base = base * base;
    }
    return result;
  }
  // C(n, t) for t = 0..min(n, upto), by the multiplicative recurrence (each step divides exactly):
  // a count needs t only up to the inputs a cell sees.
  static std::vector<T> binomials(int64_t n, int64_t upto) {
    const int64_t top = std::min(n, upto);
    std::vector<T> out;
    out.reserve(static_cast<size_t>(top + 1));
    BigUInt c(1);
    for (int64_t t = 0; t <= top; ++t) {
      out.push_back(c);
      if (t < top) {
        c = c * BigUInt(static_cast<uint64_t>(n - t));
        c.div_small(static_cast<uint32_t>(t + 1));
      }
    }
    return out;
  }
};

struct LogWeight {
  using T = double;
  static T zero() { return -std::numeric_limits<double>::infinity(); }
  static T one() { return 0.0; }
  static void add(T& acc, const T& v) {
    if (v == zero()) return;
    if (acc == zero()) { acc = v; return; }
    double hi = acc > v ? acc : v, lo = acc > v ? v : acc;
    acc = hi + std::log1p(std::exp(lo - hi));
  }
  static T mul(const T& a, const T& b) { return a + b; }
  static size_t bytes(const T&) { return sizeof(T); }
  static T pow(const T& a, int64_t e, int64_t) { return a * static_cast<double>(e); }
  static std::vector<T> binomials(int64_t n, int64_t upto) {
    const int64_t top = std::min(n, upto);
    std::vector<T> out(static_cast<size_t>(top + 1));
    for (int64_t t = 0; t <= top; ++t)
      out[t] = std::lgamma(n + 1.0) - std::lgamma(t + 1.0) - std::lgamma(n - t + 1.0);
    return out;
  }
};

}  // namespace pyddsar
