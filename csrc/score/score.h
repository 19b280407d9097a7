// DDSAR-Score (DamoFD, ICLR 2023, section 4; SPEC section 2): the paper's score and the released
// code's variant, computed from an Arch without any tensor. The search calls Scorer::operator()
// in its inner loop, so everything that does not depend on the architecture (FS values of the
// probe, logs of channel ratios) is prepared once in the constructor.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "arch/arch.h"

namespace pyddsar {

// How far the five stage weights may sum from 1 (Python: _core.LAMBDA_SUM_TOLERANCE).
constexpr double kLambdaSumTolerance = 1e-6;

enum class ScoreVariant : int { Paper = 0, Release = 1 };

struct FsProbe {            // the one-layer network N'_l whose regions give FS (SPEC section 2)
  bool literal = false;     // true: the paper's literal 1x1 input of depth d_{l-1}, FS_l = raw count (at most 2^filters)
  int grid = 3;             // default probe: output grid grid x grid, input side k + (grid-1)*s, depth 1
  int depth = 1;
  int filters = 7;          // d'
};

struct ScoreConfig {
  ScoreVariant variant = ScoreVariant::Paper;
  double alpha = 0.25;
  std::array<double, 5> lambdas{0.2, 0.27, 0.25, 0.18, 0.10};
  int64_t width = 224, height = 224;
  FsProbe probe;
};

struct StageLayer { int64_t h, w, d; int kernel, stride; };          // one conv of the plain chain
struct StageScore { std::vector<StageLayer> layers; double sae, fs, sar, lambda, weighted; };

class Scorer {               // owns the FS cache keyed by (kernel, stride, probe); not thread-safe, one per thread
 public:
  explicit Scorer(const ScoreConfig& cfg);   // throws std::invalid_argument on a bad config
  double operator()(const Arch& arch);       // DDSAR score; throws std::invalid_argument (message names block/layer) on invalid input, e.g. ln 0
  std::vector<StageScore> report(const Arch& arch);
  const ScoreConfig& config() const;

  // FS_l this scorer adds for one conv of the paper's plain chain (kernel, stride, input depth).
  double fs_layer(int kernel, int stride, int64_t input_depth) const;

 private:
  ScoreConfig cfg_;
  std::array<std::array<double, 2>, 8> probe_fs_{};  // [kernel][stride - 1], kernels 1, 3, 5, 7 used
  std::vector<double> literal_fs_;                   // [min(input depth, filters)]
  std::vector<double> ln_quotient_;                  // [q] = ln q, q = floor(d / d0)
};

}  // namespace pyddsar
