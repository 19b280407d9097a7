// Arbitrary-precision unsigned integers, just enough for exact region counts:
// addition, multiplication and conversion to a hex string (handed to Python's int).
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
    r.limbs_.assign(a.limbs_.size() + b.limbs_.size(), 0);
    for (size_t i = 0; i < a.limbs_.size(); ++i) {
      uint64_t carry = 0;
      for (size_t j = 0; j < b.limbs_.size(); ++j) {
        uint64_t cur = uint64_t(a.limbs_[i]) * b.limbs_[j] + r.limbs_[i + j] + carry;
        r.limbs_[i + j] = static_cast<uint32_t>(cur);
        carry = cur >> 32;
      }
      size_t k = i + b.limbs_.size();
      while (carry) {
        uint64_t cur = uint64_t(r.limbs_[k]) + carry;
        r.limbs_[k++] = static_cast<uint32_t>(cur);
        carry = cur >> 32;
      }
    }
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
  void trim() {
    while (!limbs_.empty() && limbs_.back() == 0) limbs_.pop_back();
  }
  std::vector<uint32_t> limbs_;  // little-endian base 2^32
};

}  // namespace pyddsar
