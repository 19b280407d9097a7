// The released DamoFD score (DDSAR/Masternet.py, compute_sar_score / forward_ddsar_score; facts in
// notes/release.md section 3), reproduced term by term and in the release's summation order so the
// result is the same double. Per block b (= stage C{b+1}):
//   item_1 = ln(h * w * d0)                       h, w: the block's input size, carried across blocks
//   item_2 = sum of T(c) = h * w * d0 * ln(c / d0) over the release's list of conv inputs (true
//            division, no floor; h, w halved with true division after the strided conv)
//   item_3 = sum of kernel sizes (1x1 convs count 1)
//   SAE = ln(item_1 + item_2), FS = item_3
// Quirks kept on purpose (docs/score.md lists them): the outer log; MB blocks use the unrounded
// E * bottleneck for every depthwise-related term, also in the second half where the real width is
// round8(E * out); Btn lists its second bottleneck's input as `out`; only a stride of 2 shrinks h.
// The release squares h (square inputs only); here h * w, identical for square resolutions.
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>

#include "score.h"
#include "stage_sums.h"

namespace pyddsar {

template <class Record>
void release_walk(const Arch& arch, int64_t width, int64_t height, StageSums& sums, Record&& record) {
  const double d0 = 3.0;
  double cur_h = double(height), cur_w = double(width);  // never reset between blocks
  for (int b = 0; b < 5; ++b) {
    const Block& blk = arch[b];
    const int k = blk.kernel;
    const double item_1 = std::log(cur_h * cur_w * d0);
    double item_2 = 0.0;
    int64_t item_3 = 0;
    int stride = blk.stride;
    int64_t in_ch = blk.in;
    // T(c): the term of one conv whose input has c channels at the current resolution.
    auto term = [&](int64_t c, int kernel, int conv_stride) {
      item_2 += cur_h * cur_w * d0 * std::log(double(c) / d0);
      record(b, StageLayer{int64_t(cur_h), int64_t(cur_w), c, kernel, conv_stride});
    };
    auto down = [&]() {
      if (stride == 2) {
        cur_h /= 2;
        cur_w /= 2;
        stride = 1;
      }
    };
    for (int layer = 0; layer < blk.layers; ++layer) {
      switch (blk.type) {
        case BlockType::Conv:
          term(in_ch, k, stride);
          down();
          item_3 += k;
          break;
        case BlockType::Res:
          term(in_ch, k, stride);
          down();
          term(blk.bottleneck, k, 1);
          item_3 += k + k;
          break;
        case BlockType::Btn:
          term(in_ch, 1, 1);
          term(blk.bottleneck, k, stride);
          down();
          term(blk.bottleneck, 1, 1);
          term(blk.out, 1, 1);
          term(blk.bottleneck, k, 1);
          term(blk.bottleneck, 1, 1);
          item_3 += 2 * k + 4;
          break;
        case BlockType::MB: {
          const int64_t dw = int64_t(blk.expansion) * blk.bottleneck;  // unrounded, both halves
          term(in_ch, 1, 1);
          term(dw, k, stride);
          down();
          term(dw, 1, 1);
          term(blk.bottleneck, 1, 1);
          term(dw, k, 1);
          term(dw, 1, 1);
          item_3 += 2 * k + 4;
          break;
        }
      }
      in_ch = blk.out;
    }
    const double inner = item_1 + item_2;
    if (!(inner > 0.0))
      throw std::invalid_argument("damofd-release DDSAR: block " + std::to_string(b) + " (C" + std::to_string(b + 1) +
                                  "): item_1 + item_2 = " + std::to_string(inner) +
                                  " is not positive, so its log is undefined (too few channels: ln(c / 3) < 0)");
    sums.sae[b] = std::log(inner);
    sums.fs[b] = double(item_3);
  }
}

}  // namespace pyddsar
