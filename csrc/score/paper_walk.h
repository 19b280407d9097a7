// The paper's SAE and FS per stage (SPEC section 2, Eq. 5-6): BN and residual links removed, each
// stage is the plain chain of its block's convs (shortcut projections skipped; MB blocks give
// their 1x1 and depthwise convs, a depthwise conv counting with its output channels).
//   SAE = ln(h_L * w_L * d0) + sum_n h_n * w_n * d0 * ln(floor(d_n / d0)),   d0 = 3
//   FS  = sum_l FS_l(kernel_l, stride_l, d_{l-1})
// h_n, w_n, d_n: output of conv n at the scoring resolution ('same' padding: only strides shrink).
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>

#include "arch/arch_walk.h"
#include "score.h"
#include "stage_sums.h"

namespace pyddsar {

constexpr int kInputChannels = 3;  // d0: the network's input channels (RGB)

// fs_of(const ConvOp&) -> FS_l; ln_of(q) -> ln q (q >= 1); record(block, StageLayer).
template <class FsOf, class LnOf, class Record>
void paper_walk(const Arch& arch, int64_t width, int64_t height, FsOf&& fs_of, LnOf&& ln_of, StageSums& sums,
                Record&& record) {
  std::array<double, 5> entropy_sum{};     // sum_n h_n w_n d0 ln floor(d_n/d0), in layer order
  std::array<int64_t, 5> last_cells{};     // h_L * w_L of each stage
  int block = -1, layer = 0;
  walk(arch, width, height, [&](const ConvOp& op) {
    if (op.shortcut) return;  // residual links are removed for scoring
    if (op.block != block) block = op.block, layer = 0;
    ++layer;
    const int64_t q = op.cout / kInputChannels;
    if (q == 0)
      throw std::invalid_argument(
          "paper DDSAR: block " + std::to_string(block) + " (C" + std::to_string(block + 1) + "), layer " +
          std::to_string(layer) + " (" + std::to_string(op.kernel) + "x" + std::to_string(op.kernel) + " conv " +
          std::to_string(op.cin) + "->" + std::to_string(op.cout) + "): d_n = " + std::to_string(op.cout) +
          " < d0 = 3 channels makes ln(floor(d_n / d0)) = ln 0 in SAE (Eq. 5)");
    const int64_t cells = op.h_out * op.w_out;
    entropy_sum[block] += double(cells * kInputChannels) * ln_of(q);
    sums.fs[block] += fs_of(op);
    last_cells[block] = cells;
    record(block, StageLayer{op.h_out, op.w_out, op.cout, op.kernel, op.stride});
  });
  for (int b = 0; b < 5; ++b)
    sums.sae[b] = std::log(double(last_cells[b] * kInputChannels)) + entropy_sum[b];
}

}  // namespace pyddsar
