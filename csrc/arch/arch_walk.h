// The one description of how each block expands into convolutions (SPEC section 3).
// `emit(const ConvOp&)` is called for every conv in forward order; BN follows every conv.
// `join(channels, h, w)`, when given, is called where a residual branch meets its shortcut
// (relu(branch + shortcut) on `channels` x h x w), after the branch's and the projection's convs.
#pragma once

#include "arch.h"

namespace pyddsar {

inline int64_t same_pad_out(int64_t size, int stride) { return (size + stride - 1) / stride; }

template <class Emit, class Join>
void walk(const Arch& arch, int64_t width, int64_t height, Emit&& emit, Join&& join) {
  int64_t h = height, w = width;
  for (int b = 0; b < static_cast<int>(arch.size()); ++b) {
    const Block& blk = arch[b];
    int cin = blk.in;
    auto conv = [&](int ci, int co, int k, int s, int groups, bool act) {
      ConvOp op{b, ci, co, k, s, groups, h, w, same_pad_out(h, s), same_pad_out(w, s), false, act};
      emit(op);
      h = op.h_out;
      w = op.w_out;
    };
    // A residual link around a branch that starts at (h_in, w_in) with ci channels and stride s.
    auto link = [&](int ci, int co, int s, bool first, int64_t h_in, int64_t w_in) {
      if (first || ci != co) {
        ConvOp op{b, ci, co, 1, s, 1, h_in, w_in, same_pad_out(h_in, s), same_pad_out(w_in, s), true, false};
        emit(op);
      }
      join(co, h, w);
    };
    for (int l = 0; l < blk.layers; ++l) {
      const int s = l == 0 ? blk.stride : 1;
      const bool first = l == 0;
      const int64_t h_in = h, w_in = w;
      switch (blk.type) {
        case BlockType::Conv:
          conv(cin, blk.out, blk.kernel, s, 1, true);
          break;
        case BlockType::Res:
          conv(cin, blk.bottleneck, blk.kernel, s, 1, true);
          conv(blk.bottleneck, blk.out, blk.kernel, 1, 1, false);
          link(cin, blk.out, s, first, h_in, w_in);
          break;
        case BlockType::Btn: {
          conv(cin, blk.bottleneck, 1, 1, 1, true);
          conv(blk.bottleneck, blk.bottleneck, blk.kernel, s, 1, true);
          conv(blk.bottleneck, blk.out, 1, 1, 1, false);
          link(cin, blk.out, s, first, h_in, w_in);
          const int64_t h_mid = h, w_mid = w;
          conv(blk.out, blk.bottleneck, 1, 1, 1, true);
          conv(blk.bottleneck, blk.bottleneck, blk.kernel, 1, 1, true);
          conv(blk.bottleneck, blk.out, 1, 1, 1, false);
          link(blk.out, blk.out, 1, false, h_mid, w_mid);
          break;
        }
        case BlockType::MB: {
          const int e1 = round8(static_cast<double>(blk.expansion) * blk.bottleneck);
          conv(cin, e1, 1, 1, 1, true);
          conv(e1, e1, blk.kernel, s, e1, true);
          conv(e1, blk.bottleneck, 1, 1, 1, false);
          link(cin, blk.bottleneck, s, first, h_in, w_in);
          const int64_t h_mid = h, w_mid = w;
          const int e2 = round8(static_cast<double>(blk.expansion) * blk.out);
          conv(blk.bottleneck, e2, 1, 1, 1, true);
          conv(e2, e2, blk.kernel, 1, e2, true);
          conv(e2, blk.out, 1, 1, 1, false);
          link(blk.bottleneck, blk.out, 1, false, h_mid, w_mid);
          break;
        }
      }
      cin = blk.out;
    }
  }
}

// The convs only (no residual joins).
template <class Emit>
void walk(const Arch& arch, int64_t width, int64_t height, Emit&& emit) {
  walk(arch, width, height, emit, [](int, int64_t, int64_t) {});
}

}  // namespace pyddsar
