#include "linear_regions.h"

#include <algorithm>
#include <string>
#include <type_traits>

#include "dp_estimate.h"
#include "weights.h"

namespace pyddsar {
namespace {

// One output cell: sum_{t <= min(d1, n0)} C(d1, t) (Pascanu et al. 2013, Prop. 2).
template <class Weight>
typename Weight::T single_cell(const ConvLayer& layer) {
  const int64_t top = std::min(layer.d1, layer.window());
  const auto binom = Weight::binomials(layer.d1, top);
  auto sum = Weight::zero();
  for (int64_t t = 0; t <= top; ++t) Weight::add(sum, binom[t]);
  return sum;
}

// The exact dynamic program adds big integers that grow by about log2(single cell count) bits per
// cell, so its work is at least cells^2 / 2 x those bits (in 64-bit words), about 2e7 words per
// second here (a 1 x 60,000 strip: 1.9e8 words in 8.5 s; 1 x 200,000: 2.1e9 in 100 s). Refused up
// front beyond about 45 s of it; the log form stays linear (0.4 s for the 200,000 strip).
constexpr double kMaxExactWords = 1e9;

template <class Weight>
void check_exact_work(const ConvLayer& layer, const BigUInt& single) {
  if constexpr (std::is_same_v<Weight, ExactWeight>) {
    const double cells = static_cast<double>(layer.cells());
    const double words = cells * cells / 2.0 * static_cast<double>(single.bit_length()) / 64.0;
    if (words > kMaxExactWords)
      throw std::invalid_argument("an exact count of this layer (" + std::to_string(layer.cells()) +
                                  " output cells) would add up about " + std::to_string(int64_t(words / 1e9)) +
                                  " billion 64-bit words of big integers (about " +
                                  std::to_string(int64_t(words / 2e7)) + " s); use log_linear_regions");
  }
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
  if constexpr (std::is_same_v<Weight, ExactWeight>) check_exact_work<Weight>(layer, single_cell<ExactWeight>(layer));
  const int64_t frontier_rows = (layer.f1 - s) * ((w1 - 1) * s + layer.f2);
  const int64_t frontier_cols = (layer.f2 - s) * ((h1 - 1) * s + layer.f1);
  const bool transpose = (h1 > 1 && w1 > 1 && frontier_cols < frontier_rows) || (h1 > 1 && w1 == 1);
  const ConvLayer walked = transpose ? layer.transposed() : layer;  // a column becomes a row
  check_frontier_dp<Weight>(walked, limits);  // refused at once when too large, with the estimate
  return frontier_dp<Weight>(walked, limits);
}

}  // namespace

BigUInt count_linear_regions(const ConvLayer& layer, const DpLimits& limits) {
  return count<ExactWeight>(layer, limits);
}

double log_linear_regions(const ConvLayer& layer, const DpLimits& limits) {
  return count<LogWeight>(layer, limits);
}

}  // namespace pyddsar
