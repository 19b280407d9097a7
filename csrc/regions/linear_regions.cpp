#include "linear_regions.h"

#include <algorithm>

#include "weights.h"

namespace pyddsar {
namespace {

// One output cell: sum_{t <= min(d1, n0)} C(d1, t) (Pascanu et al. 2013, Prop. 2).
template <class Weight>
typename Weight::T single_cell(const ConvLayer& layer) {
  const auto binom = Weight::binomials(static_cast<int>(layer.d1));
  const int64_t top = std::min(layer.d1, layer.window());
  auto sum = Weight::zero();
  for (int64_t t = 0; t <= top; ++t) Weight::add(sum, binom[t]);
  return sum;
}

template <class Weight>
typename Weight::T count(const ConvLayer& layer, const DpLimits& limits) {
  layer.validate();
  const int64_t h1 = layer.out_h(), w1 = layer.out_w(), s = layer.stride;
  const bool rows_apart = s >= layer.f1 || h1 == 1;  // windows of different cell rows share no input row
  const bool cols_apart = s >= layer.f2 || w1 == 1;
  if (h1 * w1 == 1) return single_cell<Weight>(layer);
  if (rows_apart && cols_apart) return Weight::pow(single_cell<Weight>(layer), h1 * w1, kMaxExactBits);
  if (rows_apart && h1 > 1) {
    // Independent parts: every cell row is the same 1 x w1 problem.
    ConvLayer row = layer;
    row.h0 = layer.f1;
    return Weight::pow(count<Weight>(row, limits), h1, kMaxExactBits);
  }
  if (cols_apart && w1 > 1) {
    ConvLayer col = layer;
    col.w0 = layer.f2;
    return Weight::pow(count<Weight>(col, limits), w1, kMaxExactBits);
  }
  // Overlap in both directions (or a single row/column of overlapping windows): walk the
  // raster order across the dimension that keeps the frontier (about (f - s) input lines) small.
  const int64_t frontier_rows = (layer.f1 - s) * ((w1 - 1) * s + layer.f2);
  const int64_t frontier_cols = (layer.f2 - s) * ((h1 - 1) * s + layer.f1);
  if (h1 > 1 && w1 > 1 && frontier_cols < frontier_rows) return frontier_dp<Weight>(layer.transposed(), limits);
  if (h1 > 1 && w1 == 1) return frontier_dp<Weight>(layer.transposed(), limits);  // a column becomes a row
  return frontier_dp<Weight>(layer, limits);
}

}  // namespace

BigUInt count_linear_regions(const ConvLayer& layer, const DpLimits& limits) {
  return count<ExactWeight>(layer, limits);
}

double log_linear_regions(const ConvLayer& layer, const DpLimits& limits) {
  return count<LogWeight>(layer, limits);
}

}  // namespace pyddsar
