// Greedy non-maximum suppression on the CPU (see ops.h).
//
// The boxes are copied in score order into separate coordinate arrays, so the inner loop over the
// remaining candidates reads memory sequentially.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops/box_math.h"
#include "ops/ops.h"

namespace pyddsar {
namespace ops {

int64_t nms_cpu(const float* boxes, const float* scores, const int64_t* idxs, int64_t n, double iou_threshold,
                int64_t* keep) {
  require(n >= 0, "number of boxes must be non-negative");
  require(iou_threshold >= 0.0 && iou_threshold <= 1.0, "iou_threshold must be in [0, 1]");
  if (n == 0) return 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* b = boxes + 4 * i;
    require(std::isfinite(b[0]) && std::isfinite(b[1]) && std::isfinite(b[2]) && std::isfinite(b[3]) &&
                std::isfinite(scores[i]),
            "boxes or scores contain NaN or infinite values");
    require(b[2] >= b[0] && b[3] >= b[1], "boxes has boxes with x2 < x1 or y2 < y1");
  }
  // Stable order: decreasing score, equal scores by increasing index.
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(), [scores](int64_t a, int64_t b) { return scores[a] > scores[b]; });

  std::vector<float> sorted(static_cast<size_t>(4 * n)), area(static_cast<size_t>(n));
  std::vector<int64_t> cls(idxs ? static_cast<size_t>(n) : 0);
  for (int64_t i = 0; i < n; ++i) {
    std::copy(boxes + 4 * order[i], boxes + 4 * order[i] + 4, sorted.data() + 4 * i);
    area[i] = box_area(sorted.data() + 4 * i);
    if (idxs) cls[i] = idxs[order[i]];
  }
  // iou > thr (float) <=> (double) iou > iou_threshold, as torchvision's CPU kernel compares.
  const float thr = threshold_below(iou_threshold);
  std::vector<uint8_t> removed(static_cast<size_t>(n), 0);
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (removed[i]) continue;
    keep[count++] = order[i];
    const float* bi = sorted.data() + 4 * i;
    const float ai = area[i];
    for (int64_t j = i + 1; j < n; ++j) {
      if (removed[j]) continue;
      if (idxs && cls[j] != cls[i]) continue;
      if (nms_iou(bi, ai, sorted.data() + 4 * j, area[j]) > thr) removed[j] = 1;
    }
  }
  return count;
}

}  // namespace ops
}  // namespace pyddsar
