// A backbone as the DamoFD search sees it: a stem and four stages, each one block of
// `layers` repeated sub-layers. The walk below expands blocks into their convolutions; FLOPs,
// parameters and the score all read that one expansion.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pyddsar {

// The largest resolution per side that costs, scores and walks accept (Python reads it as
// _core.MAX_RESOLUTION, so both layers refuse the same inputs).
constexpr int64_t kMaxResolution = 100000;

enum class BlockType : int { Conv = 0, Res = 1, Btn = 2, MB = 3 };

struct Block {
  BlockType type = BlockType::Conv;
  int kernel = 3;
  int in = 3, out = 8;
  int stride = 1;
  int bottleneck = 0;  // Res/Btn/MB only
  int layers = 1;
  int expansion = 1;   // MB only
};

using Arch = std::vector<Block>;

// One convolution of the expanded network (input size h_in x w_in, 'same' padding k/2).
struct ConvOp {
  int block;        // index of the block it belongs to
  int cin, cout, kernel, stride, groups;
  int64_t h_in, w_in, h_out, w_out;
  bool shortcut;    // a projection on a residual link (not part of the plain chain)
  bool act = true;  // a ReLU follows (false for a branch's last conv and for projections)
};

// round8 of SPEC section 3: the nearest multiple of 8, at least 8 (halves round to even,
// like Python's round() in the release).
int round8(double x);

// "Conv", "Res", "Btn" or "MB" (for messages).
const char* block_type_name(BlockType t);

// Throws std::invalid_argument naming the block and field.
void validate(const Arch& arch);

// Every conv of the network, in forward order, at input resolution width x height.
std::vector<ConvOp> expand(const Arch& arch, int64_t width, int64_t height);

struct Cost {
  int64_t flops = 0;   // multiply-accumulates of convs + one per BN output element
  int64_t params = 0;  // conv weights + BN affine (2 per channel)
};

Cost conv_cost(const ConvOp& op);
// Per block and total, without materialising the op list (the search calls this in its loop).
Cost arch_cost(const Arch& arch, int64_t width, int64_t height, std::vector<Cost>* per_block = nullptr);

// FLOPs as the DamoFD release counts them for its budget check (DDSAR/Masternet.py get_FLOPs over
// PlainNet/basic_blocks.py): the same convs and BNs, except that a residual projection is counted
// at (its output size / its stride)^2, a quirk of ResBlock/ResBlockProj.get_FLOPs, which divide the
// already strided output size by the stride again (true division, so not always an integer).
double release_flops(const Arch& arch, int64_t width, int64_t height);

}  // namespace pyddsar
