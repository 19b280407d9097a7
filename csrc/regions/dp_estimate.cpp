#include "dp_estimate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "weights.h"

namespace pyddsar {
namespace {

constexpr double kStripTransitions = 2e6;  // all strips together: about 0.2-0.5 s here
constexpr int64_t kStripStates = 400'000;  // one strip beyond this is not run
constexpr int64_t kStripBytes = 256LL << 20;

struct Strip {
  int64_t columns;
  double states, transitions, bytes, seconds, width;  // width: of the widest state row
};

// y continued from the strips' last values to `width` columns. Growth that is polynomial in the
// columns (a local exponent of at most 4, as the work of a strip one cell row high) continues as
// that power; faster growth (the states of 2-D frontiers) continues exponentially, the logarithm
// with its last second difference held (the growth factor per column itself grows).
double extend(const std::vector<Strip>& s, double Strip::*field, int64_t width) {
  const size_t n = s.size();
  auto lg = [&](size_t i) { return std::log(std::max(1.0, s[i].*field)); };
  double step = lg(n - 1) - lg(n - 2);
  const double exponent = step / std::log(double(s[n - 1].columns) / double(s[n - 2].columns));
  if (exponent <= 4.0)
    return std::exp(std::min(700.0, lg(n - 1) + std::max(0.0, exponent) * std::log(double(width) / double(s[n - 1].columns))));
  const double curve = n >= 3 ? std::max(0.0, step - (lg(n - 2) - lg(n - 3))) : 0.0;
  double y = lg(n - 1);
  for (int64_t w = s.back().columns + 1; w <= width && y < 700.0; ++w) {
    step += curve;
    y += step;
  }
  return std::exp(std::min(y, 700.0));
}

std::string mib(double bytes) { return std::to_string(int64_t(std::ceil(bytes / double(1 << 20)))) + " MiB"; }

std::string duration(double s) {
  if (s < 120) return std::to_string(int64_t(std::ceil(s))) + " s";
  if (s < 7200) return std::to_string(int64_t(std::ceil(s / 60))) + " min";
  if (s < 2 * 86400) return std::to_string(int64_t(std::ceil(s / 3600))) + " h";
  return std::to_string(int64_t(std::min(s / 86400, 1e15))) + " days";
}

}  // namespace

template <class Weight>
DpEstimate estimate_frontier_dp(const ConvLayer& layer, const DpLimits& limits) {
  DpEstimate est;
  const int64_t h1 = layer.out_h(), w1 = layer.out_w(), s = layer.stride;
  // rows enough for the state count to level off (measured: within 3 % after 2 f / s + 2 rows)
  const int64_t rows = std::min<int64_t>(h1, 3 * ((layer.f1 + s - 1) / s) + 2);
  std::vector<Strip> strips;
  double spent = 0;
  for (int64_t w = 2; w < w1; ++w) {
    ConvLayer strip = layer;
    strip.w0 = (w - 1) * s + layer.f2;
    strip.h0 = (rows - 1) * s + layer.f1;
    DpLimits strip_limits = limits;
    strip_limits.max_states = kStripStates;
    strip_limits.max_bytes = kStripBytes;
    strip_limits.max_seconds = 0;
    DpStats stats;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      frontier_dp<Weight>(strip, strip_limits, &stats);
    } catch (const std::invalid_argument&) {
      break;  // this strip is already large: extrapolate from the narrower ones
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spent += stats.transitions;
    strips.push_back({w, double(stats.peak_states), stats.transitions, stats.peak_bytes, dt, double(stats.peak_width)});
    est.strips = w;
    // the next strip costs about as many times this one as this one cost the one before (counted
    // in transitions, so which strips run does not depend on the machine's speed)
    const double growth = strips.size() >= 2 ? stats.transitions / std::max(1.0, strips[strips.size() - 2].transitions) : 10.0;
    if (spent + stats.transitions * std::max(1.0, growth) > kStripTransitions) break;
  }
  if (strips.size() < 2) return est;
  const Strip& last = strips.back();
  est.known = true;
  // Memory: per state, two tables of rows of `width` 16-bit values (the live one and the next),
  // plus what the last strip shows beyond its rows (weights, hash slots). Time: per transition,
  // a pass over the row (the cost per transition and row value measured on the last strip).
  const double width = double(frontier_row_width(layer, rows, limits));
  est.states = extend(strips, &Strip::states, w1);
  const double beyond_rows = std::max(48.0, last.bytes / std::max(1.0, last.states) - 4.0 * last.width);
  est.bytes = est.states * (4.0 * width + beyond_rows);
  const double transitions = extend(strips, &Strip::transitions, w1) * double(h1) / double(rows);
  const double per_value = last.seconds / std::max(1.0, last.transitions * last.width);
  est.seconds = transitions * width * per_value;
  return est;
}

template <class Weight>
void check_frontier_dp(const ConvLayer& layer, const DpLimits& limits) {
  const DpEstimate e = estimate_frontier_dp<Weight>(layer, limits);
  if (!e.known) return;
  const double m = kEstimateMargin;
  const bool over_bytes = limits.max_bytes > 0 && e.bytes * m > double(limits.max_bytes);
  const bool over_states = limits.max_states > 0 && e.states * m > double(limits.max_states);
  const bool over_time = limits.max_seconds > 0 && e.seconds * m > limits.max_seconds;
  if (!over_bytes && !over_states && !over_time) return;
  throw std::invalid_argument(
      "exact counting of this layer would need about " + mib(e.bytes) + ", " +
      std::to_string(int64_t(e.states)) + " dynamic-programming states and " + duration(e.seconds) +
      " (estimated from strips of it up to " + std::to_string(e.strips) + " output columns wide, within a factor of " +
      std::to_string(int64_t(m)) + "); the limits are " + mib(double(limits.max_bytes)) + ", " +
      std::to_string(limits.max_states) + " states and " + std::to_string(int64_t(limits.max_seconds)) +
      " s: use the lower bound (linear_regions_lower_bound, pyddsar regions --lower-bound) or a smaller grid");
}

template DpEstimate estimate_frontier_dp<ExactWeight>(const ConvLayer&, const DpLimits&);
template DpEstimate estimate_frontier_dp<LogWeight>(const ConvLayer&, const DpLimits&);
template void check_frontier_dp<ExactWeight>(const ConvLayer&, const DpLimits&);
template void check_frontier_dp<LogWeight>(const ConvLayer&, const DpLimits&);

}  // namespace pyddsar
