// A search space of the evolutionary backbone search (SPEC section 3): which blocks, kernels,
// expansions and sizes a mutation may produce, and how it draws them. Plain data; the Python layer
// names the presets (pyddsar/search.py SPACES, among them the release's two spaces).
//
// The mutation is the release's (DDSAR/evolution_search.py get_new_random_structure_str with
// SearchSpace/*.py gen_search_space): a block's new form is drawn from a candidate list built from
// the block's current out channels, bottleneck and layers; docs/search.md cites every rule.
#pragma once

#include <string>
#include <vector>

#include "../arch/arch.h"

namespace pyddsar {

// One stage block form a mutation may draw, with its draw weight.
struct BlockChoice {
  BlockType type = BlockType::MB;
  int kernel = 3;
  int expansion = 1;  // MB only (1 otherwise)
  int weight = 1;     // the release's candidate list repeats some forms (docs/search.md): weights
};

struct SearchSpace {
  std::vector<BlockChoice> choices;  // stages C2..C5
  // Candidate out channels of a block with c channels: the distinct values round8(clamp(c * f))
  // over these factors, each equally likely (the release de-duplicates its list); likewise the
  // bottleneck. Factors above 1 only = widths that only grow (the release's 0.5G space).
  std::vector<double> channel_factors{2.5, 2.0, 1.5, 1.25, 1.0, 0.8, 2.0 / 3.0, 0.5, 0.4};
  std::vector<double> bottleneck_factors{2.5, 2.0, 1.5, 1.25, 1.0, 0.8, 2.0 / 3.0, 0.5, 0.4};
  int min_channels = 8, max_channels = 256;
  int min_bottleneck = 8, max_bottleneck = 256;
  // Candidate layers: the distinct values L-step..L+step that are >= 1 (equally likely). A child
  // with a stage block over max_block_layers is dropped (the release splits blocks of 6 or more
  // layers into two, which its 5-block scorer then refuses).
  int max_layer_step = 2;
  int max_block_layers = 5;
  int max_total_layers = 20;  // sum of `layers` over all five blocks, stem included (the release's rule)
  bool mutate_stem = false;   // the release never mutates block 0; when true: out channels and layers
  int stem_min_channels = 8, stem_max_channels = 64, stem_max_layers = 2;
  // How children are made: while the population has at most `seed_children` members, from the seed
  // with one mutation; afterwards from a uniformly drawn member with `mutations` block draws (a
  // block drawn twice changes once).
  int seed_children = 10;
  int mutations = 2;

  // Throws std::invalid_argument naming the field.
  void validate() const;
  // Empty when `arch` lies inside the space, else the first reason it does not.
  std::string why_outside(const Arch& arch) const;
};

int total_layers(const Arch& arch);

// A child of `parent`: `count` blocks drawn uniformly among the mutable ones (a repeat changes
// nothing more) are redrawn from their candidate lists; then the input channels of every block are
// re-chained to the previous block's output. The child may break the layer limits (callers drop it).
class Rng;
Arch mutate(const Arch& parent, const SearchSpace& space, Rng& rng, int count);
// Block `index` of `arch` redrawn from its candidate list (the step `mutate` takes per drawn block).
void redraw_block(Arch& arch, int index, const SearchSpace& space, Rng& rng);

}  // namespace pyddsar
