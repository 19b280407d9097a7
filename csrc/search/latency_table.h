// A measured per-operation latency table and the prediction a latency-budget search makes from it
// (no measurement inside the search loop). pyddsar/latency.py measures the table; docs/search.md
// ("Latency budgets") describes the model.
//
// A backbone's latency is predicted as scale * (sum over its operations) + offset, where the
// operations are those of `walk` (arch_walk.h): every conv (dense or depthwise, with or without its
// ReLU) and every residual join relu(branch + shortcut). Each operation kind at one input
// resolution has a grid of measured latencies over its channels: dense convs over (in, out),
// depthwise convs and joins over channels. Between grid points the latency is interpolated
// bilinearly, which reproduces a cost a + b*in + c*out + d*in*out (memory read, write, compute)
// exactly. Outside a grid nothing is extrapolated: the operation is missing and the prediction
// says which. scale and offset are fitted on whole networks measured when the table was built.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "../arch/arch.h"

namespace pyddsar {

enum class LatencyOp { Conv = 0, Depthwise = 1, Join = 2 };

struct LatencyKey {
  int op = 0;      // LatencyOp
  int kernel = 0;  // 0 for joins
  int stride = 1;
  bool act = false;
  int64_t h = 0, w = 0;  // input resolution
  bool operator<(const LatencyKey& o) const {
    return std::tie(op, kernel, stride, act, h, w) < std::tie(o.op, o.kernel, o.stride, o.act, o.h, o.w);
  }
};

struct LatencyGrid {
  std::vector<int> cin;    // increasing; the channels of depthwise convs and joins
  std::vector<int> cout;   // increasing; {0} for depthwise convs and joins
  std::vector<double> ms;  // ms[i * cout.size() + j]; NaN where a point was not measured
};

// One operation of a network as the table sees it.
struct LatencyItem {
  LatencyKey key;
  int cin = 0, cout = 0;  // cout 0 for depthwise convs and joins
};

// The operations of `arch` at width x height in forward order (walk's convs and joins).
std::vector<LatencyItem> latency_items(const Arch& arch, int64_t width, int64_t height);
std::string describe(const LatencyItem& item);

class LatencyTable {
 public:
  // Throws std::invalid_argument naming what is wrong with a grid.
  void add(const LatencyKey& key, LatencyGrid grid);
  void set_calibration(double scale, double offset_ms);
  // The detector's neck and head: lateral 1x1 convs from the outputs of blocks `levels` to
  // `neck_channels` (looked up in the conv grids) plus `rest_ms` for everything after them.
  void set_detector(std::vector<int> levels, int neck_channels, double rest_ms);
  bool has_detector() const { return !levels_.empty(); }

  int64_t width = 0, height = 0;  // the resolution the table was measured at

  // Sum of the table's latencies of `item`; NaN (and `*missing` set) when the table lacks it.
  double lookup(const LatencyItem& item, std::string* missing) const;
  // Predicted milliseconds of the backbone (detector: plus neck and head); NaN when an
  // operation is missing, with `*missing` naming the first one.
  double predict(const Arch& arch, bool detector, std::string* missing) const;
  size_t size() const { return grids_.size(); }

 private:
  std::map<LatencyKey, LatencyGrid> grids_;
  double scale_ = 1.0, offset_ = 0.0;
  std::vector<int> levels_;
  int neck_channels_ = 0;
  double rest_ms_ = 0.0;
};

}  // namespace pyddsar
