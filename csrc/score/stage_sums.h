// Per-stage parts of the score that the two walks produce; SAR, lambda and the total are
// combined the same way for both variants (Scorer).
#pragma once

#include <array>

namespace pyddsar {

struct StageSums {
  std::array<double, 5> sae{};  // structural entropy term of each stage (C1..C5)
  std::array<double, 5> fs{};   // filter sensitivity of each stage
};

// For report(): receives every layer the walk visits. The hot path passes NoRecord, which
// compiles to nothing.
struct NoRecord {
  template <class... A>
  void operator()(A&&...) const {}
};

}  // namespace pyddsar
