#include "arch.h"

#include <cmath>
#include <stdexcept>

#include "arch_walk.h"

namespace pyddsar {

int round8(double x) {
  const double q = std::nearbyint(x / 8.0);  // default rounding mode: ties to even
  const int r = static_cast<int>(q) * 8;
  return r < 8 ? 8 : r;
}

const char* block_type_name(BlockType t) {
  switch (t) {
    case BlockType::Conv: return "Conv";
    case BlockType::Res: return "Res";
    case BlockType::Btn: return "Btn";
    case BlockType::MB: return "MB";
  }
  return "?";
}

void validate(const Arch& arch) {
  if (arch.size() != 5)
    throw std::invalid_argument("an architecture has 5 blocks (stem + C2..C5), got " + std::to_string(arch.size()));
  for (size_t b = 0; b < arch.size(); ++b) {
    const Block& blk = arch[b];
    auto fail = [&](const std::string& what) {
      throw std::invalid_argument("block " + std::to_string(b) + " (" + block_type_name(blk.type) + "): " + what);
    };
    if (b == 0 && blk.type != BlockType::Conv) fail("the stem must be a Conv block");
    if (b > 0 && blk.type == BlockType::Conv) fail("stages C2..C5 are Res, Btn or MB blocks");
    if (blk.kernel != 1 && blk.kernel != 3 && blk.kernel != 5 && blk.kernel != 7) fail("kernel must be 1, 3, 5 or 7");
    if (blk.in <= 0 || blk.out <= 0) fail("channels must be positive");
    if (blk.in > 8192 || blk.out > 8192) fail("channels above 8192 are not supported");
    if (blk.stride != 1 && blk.stride != 2) fail("stride must be 1 or 2");
    if (blk.layers < 1 || blk.layers > 64) fail("layers must be in 1..64");
    if (blk.type != BlockType::Conv && (blk.bottleneck < 1 || blk.bottleneck > 8192))
      fail("bottleneck must be in 1..8192");
    if (blk.type == BlockType::MB && blk.expansion != 1 && blk.expansion != 2 && blk.expansion != 4 &&
        blk.expansion != 6)
      fail("expansion must be 1, 2, 4 or 6");
    if (b > 0 && blk.in != arch[b - 1].out)
      fail("input channels " + std::to_string(blk.in) + " do not match the previous block's output " +
           std::to_string(arch[b - 1].out));
  }
}

std::vector<ConvOp> expand(const Arch& arch, int64_t width, int64_t height) {
  std::vector<ConvOp> ops;
  walk(arch, width, height, [&](const ConvOp& op) { ops.push_back(op); });
  return ops;
}

namespace {
// int64 arithmetic that refuses to wrap (a huge resolution would otherwise give a wrong FLOPs count).
int64_t checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw std::invalid_argument("the FLOPs count exceeds 2^63 - 1; use a smaller resolution");
  return r;
}
int64_t checked_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw std::invalid_argument("the FLOPs count exceeds 2^63 - 1; use a smaller resolution");
  return r;
}
}  // namespace

Cost conv_cost(const ConvOp& op) {
  const int64_t out_elems = checked_mul(checked_mul(op.h_out, op.w_out), op.cout);
  const int64_t per_output = int64_t(op.cin / op.groups) * op.kernel * op.kernel;  // <= 8192 * 49
  const int64_t weights = int64_t(op.cout) * per_output;
  return {checked_add(checked_mul(out_elems, per_output), out_elems), weights + 2 * int64_t(op.cout)};
}

Cost arch_cost(const Arch& arch, int64_t width, int64_t height, std::vector<Cost>* per_block) {
  Cost total;
  if (per_block) per_block->assign(arch.size(), Cost());
  walk(arch, width, height, [&](const ConvOp& op) {
    const Cost c = conv_cost(op);
    total.flops = checked_add(total.flops, c.flops);
    total.params += c.params;
    if (per_block) {
      (*per_block)[op.block].flops += c.flops;
      (*per_block)[op.block].params += c.params;
    }
  });
  return total;
}

double release_flops(const Arch& arch, int64_t width, int64_t height) {
  double total = 0;
  walk(arch, width, height, [&](const ConvOp& op) {
    if (!op.shortcut) {
      total += double(conv_cost(op).flops);
      return;
    }
    const double area = double(op.h_out) / op.stride * (double(op.w_out) / op.stride);
    total += double(op.cin) * op.cout * area + area * op.cout;
  });
  return total;
}

}  // namespace pyddsar
