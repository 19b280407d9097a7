#include "search_space.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "random.h"

namespace pyddsar {

namespace {

bool is_kernel(int k) { return k == 3 || k == 5 || k == 7; }
bool is_expansion(int e) { return e == 1 || e == 2 || e == 4 || e == 6; }

// The distinct candidates round8(clamp(c * f, lo, hi)) over `factors`, in increasing order. The
// release clamps first and rounds after (get_select_student_channels_list); with lo and hi
// multiples of 8 the result stays inside [lo, hi].
std::vector<int> channel_candidates(int c, const std::vector<double>& factors, int lo, int hi) {
  std::vector<int> out;
  for (double f : factors) out.push_back(round8(std::min(double(hi), std::max(double(lo), c * f))));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// The distinct layer counts L-step..L+step that are >= 1 and <= hi (get_select_student_sublayers_list).
int draw_layers(int layers, int step, int hi, Rng& rng) {
  const int lo = std::max(1, layers - step);
  const int top = std::min(hi, layers + step);
  if (top < lo) return lo;
  return static_cast<int>(rng.between(lo, top));
}

const BlockChoice& draw_choice(const std::vector<BlockChoice>& choices, Rng& rng) {
  int64_t total = 0;
  for (const BlockChoice& c : choices) total += c.weight;
  int64_t x = static_cast<int64_t>(rng.below(static_cast<uint64_t>(total)));
  for (const BlockChoice& c : choices) {
    if (x < c.weight) return c;
    x -= c.weight;
  }
  return choices.back();
}

void redraw(Block& b, bool stem, const SearchSpace& s, Rng& rng) {
  if (stem) {  // the stem stays a stride-2 3x3 conv: channels and layers only
    b.out = rng.pick(channel_candidates(b.out, s.channel_factors, s.stem_min_channels, s.stem_max_channels));
    b.layers = draw_layers(b.layers, s.max_layer_step, s.stem_max_layers, rng);
    return;
  }
  const BlockChoice& c = draw_choice(s.choices, rng);
  b.type = c.type;
  b.kernel = c.kernel;
  b.expansion = c.type == BlockType::MB ? c.expansion : 1;
  b.out = rng.pick(channel_candidates(b.out, s.channel_factors, s.min_channels, s.max_channels));
  // Unbounded above: a child over max_block_layers is dropped, as the release drops split blocks.
  b.layers = draw_layers(b.layers, s.max_layer_step, b.layers + s.max_layer_step, rng);
  b.bottleneck = rng.pick(channel_candidates(b.bottleneck, s.bottleneck_factors, s.min_bottleneck, s.max_bottleneck));
}

}  // namespace

void SearchSpace::validate() const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("search space: " + what); };
  if (choices.empty()) fail("choices must list at least one stage block form");
  for (const BlockChoice& c : choices) {
    if (c.type == BlockType::Conv) fail("stage types are Res, Btn or MB (Conv is the stem)");
    if (!is_kernel(c.kernel)) fail("kernels must be among 3, 5, 7");
    if (c.type == BlockType::MB && !is_expansion(c.expansion)) fail("expansions must be among 1, 2, 4, 6");
    if (c.weight < 1 || c.weight > 1000000) fail("choice weights must be in 1..1000000");
  }
  auto check_range = [&](int lo, int hi, const char* what) {
    if (lo < 8 || hi < lo || hi > 8192 || lo % 8 || hi % 8)
      fail(std::string(what) + ": need 8 <= min <= max <= 8192, both multiples of 8");
  };
  check_range(min_channels, max_channels, "channels");
  check_range(min_bottleneck, max_bottleneck, "bottleneck");
  check_range(stem_min_channels, stem_max_channels, "stem channels");
  if (max_block_layers < 1 || max_block_layers > 64) fail("max_block_layers must be in 1..64");
  if (max_total_layers < 5) fail("max_total_layers must be at least 5 (one layer per block)");
  if (stem_max_layers < 1 || stem_max_layers > 64) fail("stem_max_layers must be in 1..64");
  for (const auto* factors : {&channel_factors, &bottleneck_factors}) {
    if (factors->empty()) fail("channel and bottleneck factors must not be empty");
    for (double f : *factors)
      if (!(f > 0) || !(f <= 64)) fail("channel and bottleneck factors must be in (0, 64]");
  }
  if (max_layer_step < 0 || max_layer_step > 64) fail("max_layer_step must be in 0..64");
  if (seed_children < 0) fail("seed_children must be >= 0");
  if (mutations < 1 || mutations > 64) fail("mutations must be in 1..64");
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
    const bool known = std::any_of(choices.begin(), choices.end(), [&](const BlockChoice& c) {
      return c.type == b.type && c.kernel == b.kernel && (b.type != BlockType::MB || c.expansion == b.expansion);
    });
    if (!known)
      return where + "kernel " + std::to_string(b.kernel) +
             (b.type == BlockType::MB ? ", expansion " + std::to_string(b.expansion) : std::string()) +
             " is not a form of the space";
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

void redraw_block(Arch& arch, int index, const SearchSpace& s, Rng& rng) { redraw(arch.at(index), index == 0, s, rng); }

Arch mutate(const Arch& parent, const SearchSpace& s, Rng& rng, int count) {
  Arch child = parent;
  const int first = s.mutate_stem ? 0 : 1;
  std::vector<bool> drawn(child.size(), false);
  for (int r = 0; r < count; ++r) {
    const int i = static_cast<int>(rng.between(first, static_cast<int64_t>(child.size()) - 1));
    if (drawn[i]) continue;  // the release skips a block it already redrew
    drawn[i] = true;
    redraw_block(child, i, s, rng);
  }
  for (size_t j = 1; j < child.size(); ++j) child[j].in = child[j - 1].out;
  return child;
}

}  // namespace pyddsar
