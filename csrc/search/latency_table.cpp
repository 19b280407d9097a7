#include "latency_table.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "../arch/arch_walk.h"

namespace pyddsar {

std::vector<LatencyItem> latency_items(const Arch& arch, int64_t width, int64_t height) {
  std::vector<LatencyItem> items;
  walk(
      arch, width, height,
      [&](const ConvOp& op) {
        const bool depthwise = op.groups > 1;  // walk's only grouped convs are depthwise (groups == channels)
        LatencyKey key{static_cast<int>(depthwise ? LatencyOp::Depthwise : LatencyOp::Conv), op.kernel, op.stride, op.act,
                       op.h_in, op.w_in};
        items.push_back(LatencyItem{key, op.cin, depthwise ? 0 : op.cout});
      },
      [&](int channels, int64_t h, int64_t w) {
        items.push_back(LatencyItem{LatencyKey{static_cast<int>(LatencyOp::Join), 0, 1, true, h, w}, channels, 0});
      });
  return items;
}

std::string describe(const LatencyItem& it) {
  const std::string at = " at " + std::to_string(it.key.w) + "x" + std::to_string(it.key.h);
  const std::string k = std::to_string(it.key.kernel);
  switch (static_cast<LatencyOp>(it.key.op)) {
    case LatencyOp::Conv:
      return "conv " + k + "x" + k + " " + std::to_string(it.cin) + "->" + std::to_string(it.cout) + " stride " +
             std::to_string(it.key.stride) + (it.key.act ? " +relu" : "") + at;
    case LatencyOp::Depthwise:
      return "depthwise conv " + k + "x" + k + " " + std::to_string(it.cin) + " channels stride " +
             std::to_string(it.key.stride) + (it.key.act ? " +relu" : "") + at;
    case LatencyOp::Join:
      return "residual join (add + relu) " + std::to_string(it.cin) + " channels" + at;
  }
  return "unknown operation";
}

namespace {

bool increasing(const std::vector<int>& v) {
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] <= v[i - 1]) return false;
  return !v.empty();
}

// (lower index, weight of the upper point) of x on `axis`; false when x lies outside it.
bool bracket(const std::vector<int>& axis, int x, size_t& lo, double& t) {
  if (x < axis.front() || x > axis.back()) return false;
  const auto it = std::lower_bound(axis.begin(), axis.end(), x);
  const size_t hi = static_cast<size_t>(it - axis.begin());
  if (*it == x) {
    lo = hi;
    t = 0.0;
    return true;
  }
  lo = hi - 1;
  t = double(x - axis[lo]) / double(axis[hi] - axis[lo]);
  return true;
}

}  // namespace

void LatencyTable::add(const LatencyKey& key, LatencyGrid grid) {
  if (key.op < 0 || key.op > 2) throw std::invalid_argument("latency grid: operation code must be 0..2");
  if (key.h <= 0 || key.w <= 0) throw std::invalid_argument("latency grid: the resolution must be positive");
  if (!increasing(grid.cin) || !increasing(grid.cout))
    throw std::invalid_argument("latency grid: channel axes must be non-empty and strictly increasing");
  if (grid.ms.size() != grid.cin.size() * grid.cout.size())
    throw std::invalid_argument("latency grid: " + std::to_string(grid.ms.size()) + " values for a " +
                                std::to_string(grid.cin.size()) + " x " + std::to_string(grid.cout.size()) + " grid");
  for (double v : grid.ms)
    if (!(std::isnan(v) || (std::isfinite(v) && v >= 0)))
      throw std::invalid_argument("latency grid: values must be >= 0 milliseconds (NaN: not measured)");
  if (grids_.count(key)) throw std::invalid_argument("latency grid: the same operation is given twice");
  grids_.emplace(key, std::move(grid));
}

void LatencyTable::set_calibration(double scale, double offset_ms) {
  if (!(std::isfinite(scale) && scale > 0) || !std::isfinite(offset_ms))
    throw std::invalid_argument("latency calibration: scale must be > 0 and the offset finite");
  scale_ = scale;
  offset_ = offset_ms;
}

void LatencyTable::set_detector(std::vector<int> levels, int neck_channels, double rest_ms) {
  if (levels.empty() || neck_channels <= 0 || !std::isfinite(rest_ms))
    throw std::invalid_argument("latency detector: needs levels, positive neck channels and a finite rest");
  for (int l : levels)
    if (l < 0 || l > 4) throw std::invalid_argument("latency detector: levels are block indices 0..4");
  levels_ = std::move(levels);
  neck_channels_ = neck_channels;
  rest_ms_ = rest_ms;
}

double LatencyTable::lookup(const LatencyItem& item, std::string* missing) const {
  auto fail = [&]() {
    if (missing) *missing = describe(item);
    return NAN;
  };
  const auto it = grids_.find(item.key);
  if (it == grids_.end()) return fail();
  const LatencyGrid& g = it->second;
  size_t i = 0, j = 0;
  double ti = 0, tj = 0;
  if (!bracket(g.cin, item.cin, i, ti) || !bracket(g.cout, item.cout, j, tj)) return fail();
  const size_t n = g.cout.size();
  auto at = [&](size_t a, size_t b) { return g.ms[a * n + b]; };
  const size_t i1 = ti > 0 ? i + 1 : i, j1 = tj > 0 ? j + 1 : j;
  const double v = (1 - ti) * ((1 - tj) * at(i, j) + tj * at(i, j1)) + ti * ((1 - tj) * at(i1, j) + tj * at(i1, j1));
  return std::isnan(v) ? fail() : v;
}

double LatencyTable::predict(const Arch& arch, bool detector, std::string* missing) const {
  if (detector && !has_detector()) throw std::invalid_argument("this latency table has no neck and head measured");
  double sum = 0;
  for (const LatencyItem& item : latency_items(arch, width, height)) {
    const double v = lookup(item, missing);
    if (std::isnan(v)) return NAN;
    sum += v;
  }
  double extra = 0;
  if (detector) {
    int64_t h = height, w = width;
    std::vector<int64_t> hs, ws;
    for (const Block& b : arch) {
      h = same_pad_out(h, b.stride);
      w = same_pad_out(w, b.stride);
      hs.push_back(h);
      ws.push_back(w);
    }
    for (int l : levels_) {
      if (l >= static_cast<int>(arch.size())) throw std::invalid_argument("latency detector: the network has too few blocks");
      const LatencyItem lateral{LatencyKey{static_cast<int>(LatencyOp::Conv), 1, 1, false, hs[l], ws[l]}, arch[l].out,
                                neck_channels_};
      const double v = lookup(lateral, missing);
      if (std::isnan(v)) return NAN;
      sum += v;
    }
    extra = rest_ms_;
  }
  return scale_ * sum + offset_ + extra;
}

}  // namespace pyddsar
