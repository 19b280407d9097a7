#include "search_space.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "random.h"

namespace pyddsar {

namespace {

bool contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// Scale by a random factor of the space, round to a multiple of 8 and clamp to [lo, hi].
int scaled(int c, const SearchSpace& s, Rng& rng, int lo, int hi) {
  const int r = round8(c * rng.pick(s.channel_factors));
  return std::min(hi, std::max(lo, r));
}

}  // namespace

void SearchSpace::validate() const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("search space: " + what); };
  if (types.empty()) fail("types must list at least one of Res, Btn, MB");
  for (BlockType t : types)
    if (t == BlockType::Conv) fail("stage types are Res, Btn or MB (Conv is the stem)");
  if (kernels.empty()) fail("kernels must not be empty");
  for (int k : kernels)
    if (k != 3 && k != 5 && k != 7) fail("kernels must be among 3, 5, 7");
  if (std::find(types.begin(), types.end(), BlockType::MB) != types.end()) {
    if (expansions.empty()) fail("an MB space needs expansions");
    for (int e : expansions)
      if (e != 1 && e != 2 && e != 4 && e != 6) fail("expansions must be among 1, 2, 4, 6");
  }
  if (min_channels < 8 || max_channels < min_channels || max_channels > 8192 || min_channels % 8 || max_channels % 8)
    fail("channels: need 8 <= min_channels <= max_channels <= 8192, both multiples of 8");
  if (min_bottleneck < 8 || max_bottleneck < min_bottleneck || max_bottleneck > 8192 || min_bottleneck % 8 ||
      max_bottleneck % 8)
    fail("bottleneck: need 8 <= min_bottleneck <= max_bottleneck <= 8192, both multiples of 8");
  if (max_block_layers < 1 || max_block_layers > 64) fail("max_block_layers must be in 1..64");
  if (max_total_layers < 5) fail("max_total_layers must be at least 5 (one layer per block)");
  if (stem_min_channels < 8 || stem_max_channels < stem_min_channels || stem_max_channels > 8192 ||
      stem_min_channels % 8 || stem_max_channels % 8)
    fail("stem channels: need 8 <= stem_min_channels <= stem_max_channels <= 8192, multiples of 8");
  if (stem_max_layers < 1 || stem_max_layers > 64) fail("stem_max_layers must be in 1..64");
  if (channel_factors.empty()) fail("channel_factors must not be empty");
  for (double f : channel_factors)
    if (!(f > 0) || !std::isfinite(f)) fail("channel_factors must be positive");
  if (max_layer_step < 0) fail("max_layer_step must be >= 0");
}

int total_layers(const Arch& arch) {
  int n = 0;
  for (const Block& b : arch) n += b.layers;
  return n;
}

std::string SearchSpace::why_outside(const Arch& arch) const {
  if (arch.size() != 5) return "it has " + std::to_string(arch.size()) + " blocks, not 5";
  const Block& stem = arch[0];
  if (stem.type != BlockType::Conv || stem.stride != 2) return "the stem must be a stride-2 Conv block";
  if (stem.out < stem_min_channels || stem.out > stem_max_channels)
    return "stem channels " + std::to_string(stem.out) + " outside " + std::to_string(stem_min_channels) + ".." +
           std::to_string(stem_max_channels);
  if (stem.layers > stem_max_layers) return "stem layers " + std::to_string(stem.layers) + " > " + std::to_string(stem_max_layers);
  for (size_t i = 1; i < arch.size(); ++i) {
    const Block& b = arch[i];
    const std::string where = "block " + std::to_string(i) + " (" + block_type_name(b.type) + "): ";
    if (std::find(types.begin(), types.end(), b.type) == types.end()) return where + "type not in the space";
    if (!contains(kernels, b.kernel)) return where + "kernel " + std::to_string(b.kernel) + " not in the space";
    if (b.type == BlockType::MB && !contains(expansions, b.expansion))
      return where + "expansion " + std::to_string(b.expansion) + " not in the space";
    if (b.out < min_channels || b.out > max_channels) return where + "out channels " + std::to_string(b.out) + " outside the range";
    if (b.bottleneck < min_bottleneck || b.bottleneck > max_bottleneck)
      return where + "bottleneck " + std::to_string(b.bottleneck) + " outside the range";
    if (b.layers > max_block_layers) return where + "layers " + std::to_string(b.layers) + " > " + std::to_string(max_block_layers);
    if (b.stride != 2) return where + "stage blocks have stride 2";
  }
  if (total_layers(arch) > max_total_layers)
    return "total layers " + std::to_string(total_layers(arch)) + " > " + std::to_string(max_total_layers);
  return "";
}

Arch mutate(const Arch& parent, const SearchSpace& s, Rng& rng) {
  Arch child = parent;
  const int first = s.mutate_stem ? 0 : 1;
  const int i = static_cast<int>(rng.between(first, static_cast<int64_t>(child.size()) - 1));
  Block& b = child[i];
  const int step = static_cast<int>(rng.between(-s.max_layer_step, s.max_layer_step));
  if (i == 0) {
    b.out = scaled(b.out, s, rng, s.stem_min_channels, s.stem_max_channels);
    b.layers = std::min(s.stem_max_layers, std::max(1, b.layers + step));
  } else {
    b.type = rng.pick(s.types);
    b.kernel = rng.pick(s.kernels);
    b.out = scaled(b.out, s, rng, s.min_channels, s.max_channels);
    b.bottleneck = scaled(b.bottleneck, s, rng, s.min_bottleneck, s.max_bottleneck);
    b.expansion = b.type == BlockType::MB ? rng.pick(s.expansions) : 1;
    b.layers = std::min(s.max_block_layers, std::max(1, b.layers + step));
  }
  for (size_t j = 1; j < child.size(); ++j) child[j].in = child[j - 1].out;
  return child;
}

}  // namespace pyddsar
