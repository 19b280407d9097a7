#include "fs_probe.h"

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>

#include "regions/linear_regions.h"

namespace pyddsar {

void validate_probe(const FsProbe& probe) {
  auto in_range = [](int v, int lo, int hi, const char* name) {
    if (v < lo || v > hi)
      throw std::invalid_argument(std::string("FS probe ") + name + " = " + std::to_string(v) + " must be in " +
                                  std::to_string(lo) + ".." + std::to_string(hi));
  };
  if (probe.literal) {
    in_range(probe.filters, 1, kMaxLiteralFilters, "filters");
    return;
  }
  in_range(probe.grid, 1, kMaxProbeGrid, "grid");
  in_range(probe.depth, 1, kMaxProbeDepth, "depth");
  in_range(probe.filters, 1, kMaxProbeFilters, "filters");
}

double probe_fs(int kernel, int stride, const FsProbe& probe) {
  using Key = std::tuple<int, int, int, int, int>;
  static std::mutex mutex;
  static std::map<Key, double> cache;
  const Key key{kernel, stride, probe.grid, probe.depth, probe.filters};
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  const int64_t side = kernel + int64_t(probe.grid - 1) * stride;
  const ConvLayer layer{side, side, probe.depth, kernel, kernel, stride, probe.filters};
  const double value = log_linear_regions(layer);  // outside the lock: it may take a while
  std::lock_guard<std::mutex> lock(mutex);
  cache.emplace(key, value);
  return value;
}

double literal_fs(int64_t input_depth, int filters) {
  // One output cell with n0 = input_depth inputs: sum_{t <= min(d', n0)} C(d', t).
  const int64_t top = input_depth < filters ? input_depth : filters;
  double binom = 1.0, sum = 0.0;
  for (int64_t t = 0; t <= top; ++t) {
    sum += binom;
    binom = binom * double(filters - t) / double(t + 1);
  }
  return sum;
}

}  // namespace pyddsar
