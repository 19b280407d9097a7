// Theorem 1 (Xiong et al. 2020): the maximal number of linear regions of a one-layer ReLU CNN.
// Dispatches to closed forms where the windows do not overlap and to the frontier DP otherwise.
#pragma once

#include "big_uint.h"
#include "conv_layer.h"
#include "frontier_dp.h"

namespace pyddsar {

constexpr int64_t kMaxExactBits = 1 << 24;

BigUInt count_linear_regions(const ConvLayer& layer, const DpLimits& limits = DpLimits());
double log_linear_regions(const ConvLayer& layer, const DpLimits& limits = DpLimits());

}  // namespace pyddsar
