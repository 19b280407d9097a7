// The cost of the frontier DP (frontier_dp.h) before it runs, so a layer too large to count is
// refused at once with the estimate instead of after minutes and gigabytes.
//
// How. The DP's live states depend on the width of the output grid (the frontier runs across it)
// far more than on its height: after a few cell rows the count levels off, and the work then grows
// linearly with the rows. So the DP is run for real on narrow strips of the same layer (output
// widths 2, 3, ..., at most a few cell rows), while that stays cheap (a fraction of a second in
// all), and its peak states, transitions, memory and time are extrapolated to the full width: the
// logarithm of each is continued with its last second difference (the growth factor per column
// itself grows), then the work is scaled to the full height. On the layers of
// tests/test_regions.py the estimate of the peak states is within 0.5x..1.9x of the count.
#pragma once

#include <cstdint>

#include "conv_layer.h"
#include "frontier_dp.h"

namespace pyddsar {

struct DpEstimate {
  bool known = false;  // false: the strips reached the full width (the DP is cheap) or too few ran
  double states = 0, bytes = 0, seconds = 0;
  int64_t strips = 0;  // the widest strip measured (output columns)
};

// Margin for the estimate's error: refused when margin x estimate is over a limit.
constexpr double kEstimateMargin = 2.0;

template <class Weight>
DpEstimate estimate_frontier_dp(const ConvLayer& layer, const DpLimits& limits);

// Throws std::invalid_argument with the estimate and the alternatives when the estimate (times
// kEstimateMargin) is over max_bytes, max_states or max_seconds.
template <class Weight>
void check_frontier_dp(const ConvLayer& layer, const DpLimits& limits);

}  // namespace pyddsar
