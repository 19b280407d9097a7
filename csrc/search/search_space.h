// A search space of the evolutionary backbone search (SPEC section 3): which blocks, kernels,
// expansions and sizes a mutation may produce. Plain data; the Python layer names the presets.
#pragma once

#include <string>
#include <vector>

#include "../arch/arch.h"

namespace pyddsar {

struct SearchSpace {
  std::vector<BlockType> types;  // allowed for stages C2..C5
  std::vector<int> kernels;      // of stages C2..C5
  std::vector<int> expansions;   // MB only
  int min_channels = 8, max_channels = 256;
  int min_bottleneck = 8, max_bottleneck = 256;
  int max_block_layers = 6;      // per stage block
  int max_total_layers = 20;     // sum of `layers` over all five blocks, stem included (the release's rule)
  bool mutate_stem = true;       // out channels and layers only; the stem stays a stride-2 3x3 conv
  int stem_min_channels = 8, stem_max_channels = 64, stem_max_layers = 2;
  std::vector<double> channel_factors{2.5, 2.0, 1.5, 1.25, 1.0, 0.8, 2.0 / 3.0, 0.5, 0.4};
  int max_layer_step = 2;        // layers change by at most this much per mutation

  // Throws std::invalid_argument naming the field.
  void validate() const;
  // Empty when `arch` lies inside the space, else the first reason it does not.
  std::string why_outside(const Arch& arch) const;
};

int total_layers(const Arch& arch);

// One mutation: a randomly chosen block is redrawn (type, kernel, out channels scaled by a factor,
// rounded to 8 and clamped, bottleneck likewise or MB expansion, layers +-), then the input channels
// of every block are re-chained to the previous block's output.
class Rng;
Arch mutate(const Arch& parent, const SearchSpace& space, Rng& rng);

}  // namespace pyddsar
