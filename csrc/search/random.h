// The search's random source: mt19937_64 plus our own bounded draws, so a seed gives the same
// run on every platform and standard library (std::uniform_int_distribution is not portable).
#pragma once

#include <cstdint>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>

namespace pyddsar {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : engine_(seed) {}

  // Uniform in [0, n) by rejection (no modulo bias). n >= 1.
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = engine_(); while (x >= limit);
    return x % n;
  }
  int64_t between(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo + 1))); }
  template <class Vec>
  const typename Vec::value_type& pick(const Vec& v) { return v[below(v.size())]; }

  // The engine's full state as text (for checkpoints) and back.
  std::string state() const {
    std::ostringstream out;
    out << engine_;
    return out.str();
  }
  void set_state(const std::string& text) {
    std::istringstream in(text);
    std::mt19937_64 e;
    in >> e;
    if (in.fail()) throw std::invalid_argument("random state in the checkpoint is corrupt");
    engine_ = e;
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace pyddsar
