// Arbitrary-precision unsigned integers, just enough for exact region counts:
// addition, multiplication (Karatsuba above a few dozen limbs, so a 12-million-bit power takes
// under a second instead of 35 s schoolbook) and conversion to a hex string (handed to Python's int).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace pyddsar {

class BigUInt {
 public:
  BigUInt() = default;
  explicit BigUInt(uint64_t v) {
    while (v) {
      limbs_.push_back(static_cast<uint32_t>(v));
      v >>= 32;
    }
  }

  bool is_zero() const { return limbs_.empty(); }

  BigUInt& operator+=(const BigUInt& o) {
    if (limbs_.size() < o.limbs_.size()) limbs_.resize(o.limbs_.size(), 0);
    uint64_t carry = 0;
    for (size_t i = 0; i < limbs_.size(); ++i) {
      uint64_t s = uint64_t(limbs_[i]) + carry + (i < o.limbs_.size() ? o.limbs_[i] : 0);
      limbs_[i] = static_cast<uint32_t>(s);
      carry = s >> 32;
      if (!carry && i >= o.limbs_.size()) break;
    }
    if (carry) limbs_.push_back(static_cast<uint32_t>(carry));
    return *this;
  }

  friend BigUInt operator*(const BigUInt& a, const BigUInt& b) {
    BigUInt r;
    if (a.is_zero() || b.is_zero()) return r;
    r.limbs_ = multiply(a.limbs_, b.limbs_);
    r.trim();
    return r;
  }

  // Exact division by a small divisor; the caller guarantees divisibility where it matters.
  BigUInt& div_small(uint32_t d) {
    uint64_t rem = 0;
    for (size_t i = limbs_.size(); i-- > 0;) {
      uint64_t cur = (rem << 32) | limbs_[i];
      limbs_[i] = static_cast<uint32_t>(cur / d);
      rem = cur % d;
    }
    trim();
    return *this;
  }

  size_t byte_size() const { return limbs_.capacity() * sizeof(uint32_t); }

  size_t bit_length() const {
    if (limbs_.empty()) return 0;
    uint32_t top = limbs_.back();
    size_t bits = 0;
    while (top) { ++bits; top >>= 1; }
    return (limbs_.size() - 1) * 32 + bits;
  }

  friend bool operator==(const BigUInt& a, const BigUInt& b) { return a.limbs_ == b.limbs_; }

  std::string to_hex() const {
    if (limbs_.empty()) return "0";
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < limbs_.size(); ++i) {
      uint32_t v = limbs_[i];
      for (int k = 0; k < 8; ++k) {
        s.push_back(digits[v & 15u]);
        v >>= 4;
      }
    }
    while (s.size() > 1 && s.back() == '0') s.pop_back();
    std::reverse(s.begin(), s.end());
    return s;
  }

 private:
  using Limbs = std::vector<uint32_t>;
  static constexpr size_t kKaratsubaLimbs = 40;  // below this, schoolbook is faster

  void trim() {
    while (!limbs_.empty() && limbs_.back() == 0) limbs_.pop_back();
  }
  static void trim(Limbs& v) {
    while (!v.empty() && v.back() == 0) v.pop_back();
  }
  static Limbs slice(const Limbs& v, size_t lo, size_t hi) {
    lo = std::min(lo, v.size());
    hi = std::min(hi, v.size());
    Limbs out(v.begin() + static_cast<std::ptrdiff_t>(lo), v.begin() + static_cast<std::ptrdiff_t>(hi));
    trim(out);
    return out;
  }
  // acc += v << (32 * shift)
  static void add_shifted(Limbs& acc, const Limbs& v, size_t shift) {
    if (v.empty()) return;
    if (acc.size() < v.size() + shift + 1) acc.resize(v.size() + shift + 1, 0);
    uint64_t carry = 0;
    size_t i = 0;
    for (; i < v.size(); ++i) {
      uint64_t s = uint64_t(acc[i + shift]) + v[i] + carry;
      acc[i + shift] = static_cast<uint32_t>(s);
      carry = s >> 32;
    }
    for (size_t k = i + shift; carry; ++k) {
      if (k == acc.size()) acc.push_back(0);
      uint64_t s = uint64_t(acc[k]) + carry;
      acc[k] = static_cast<uint32_t>(s);
      carry = s >> 32;
    }
  }
  // a -= b, with a >= b
  static void subtract(Limbs& a, const Limbs& b) {
    int64_t borrow = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      int64_t d = int64_t(a[i]) - (i < b.size() ? int64_t(b[i]) : 0) - borrow;
      borrow = d < 0;
      a[i] = static_cast<uint32_t>(d + (borrow << 32));
      if (!borrow && i >= b.size()) break;
    }
    trim(a);
  }
  static Limbs schoolbook(const Limbs& a, const Limbs& b) {
    Limbs r(a.size() + b.size(), 0);
    for (size_t i = 0; i < a.size(); ++i) {
      uint64_t carry = 0;
      for (size_t j = 0; j < b.size(); ++j) {
        uint64_t cur = uint64_t(a[i]) * b[j] + r[i + j] + carry;
        r[i + j] = static_cast<uint32_t>(cur);
        carry = cur >> 32;
      }
      size_t k = i + b.size();
      while (carry) {
        uint64_t cur = uint64_t(r[k]) + carry;
        r[k++] = static_cast<uint32_t>(cur);
        carry = cur >> 32;
      }
    }
    trim(r);
    return r;
  }
  // Karatsuba: a * b = z2 B^2m + ((a0 + a1)(b0 + b1) - z0 - z2) B^m + z0; an operand much
  // shorter than the other is multiplied into the longer one's pieces of its own length.
  static Limbs multiply(const Limbs& a, const Limbs& b) {
    if (a.empty() || b.empty()) return {};
    if (a.size() < b.size()) return multiply(b, a);
    if (b.size() < kKaratsubaLimbs) return schoolbook(a, b);
    if (2 * b.size() <= a.size()) {
      Limbs r;
      for (size_t lo = 0; lo < a.size(); lo += b.size()) add_shifted(r, multiply(slice(a, lo, lo + b.size()), b), lo);
      trim(r);
      return r;
    }
    const size_t m = a.size() / 2;
    const Limbs a0 = slice(a, 0, m), a1 = slice(a, m, a.size()), b0 = slice(b, 0, m), b1 = slice(b, m, b.size());
    Limbs z0 = multiply(a0, b0), z2 = multiply(a1, b1);
    Limbs sa = a0, sb = b0;
    add_shifted(sa, a1, 0);
    add_shifted(sb, b1, 0);
    trim(sa);
    trim(sb);
    Limbs z1 = multiply(sa, sb);
    subtract(z1, z0);
    subtract(z1, z2);
    Limbs r = z0;
    add_shifted(r, z1, m);
    add_shifted(r, z2, 2 * m);
    trim(r);
    return r;
  }
  std::vector<uint32_t> limbs_;  // little-endian base 2^32
};

}  // namespace pyddsar
