// Greedy non-maximum suppression on the CPU (see ops.h).
//
// The boxes are copied in score order into separate coordinate arrays, so the inner loop over the
// remaining candidates reads memory sequentially and vectorises.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/box_math.h"
#include "ops/ops.h"

namespace pyddsar {
namespace ops {

namespace {

// Mark the boxes j in [from, n) that box a suppresses. Branch-free over contiguous arrays, so it
// vectorises; one instantiation per mode keeps the class test out of plain NMS.
template <bool Batched>
void suppress(float ax1, float ay1, float ax2, float ay2, float area_a, int64_t cls_a, int64_t from, int64_t n,
              const std::vector<float>& x1, const std::vector<float>& y1, const std::vector<float>& x2,
              const std::vector<float>& y2, const std::vector<float>& area, const std::vector<int64_t>& cls,
              float thr, std::vector<uint8_t>& removed) {
  for (int64_t j = from; j < n; ++j) {
    const float inter = intersection(ax1, ay1, ax2, ay2, x1[j], y1[j], x2[j], y2[j]);
    bool hit = nms_iou_of(inter, area_a, area[j]) > thr;
    if constexpr (Batched) hit = hit & (cls[j] == cls_a);
    removed[j] |= static_cast<uint8_t>(hit);
  }
}

}  // namespace

int64_t nms_cpu(const float* boxes, const float* scores, const int64_t* idxs, int64_t n, double iou_threshold,
                int64_t* keep, int64_t max_keep) {
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
  // Stable order: decreasing score, equal scores by increasing index (a total order, so std::sort).
  struct Key {
    float score;
    int64_t index;
  };
  std::vector<Key> keys(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) keys[i] = {scores[i], i};
  std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) {
    return a.score > b.score || (a.score == b.score && a.index < b.index);
  });

  // Coordinates in score order, one array each, so the inner loop below is branch-free over
  // contiguous floats and the compiler vectorises it.
  std::vector<float> x1(n), y1(n), x2(n), y2(n), area(n);
  std::vector<int64_t> cls(idxs ? static_cast<size_t>(n) : 0);
  for (int64_t i = 0; i < n; ++i) {
    const float* b = boxes + 4 * keys[i].index;
    x1[i] = b[0], y1[i] = b[1], x2[i] = b[2], y2[i] = b[3];
    area[i] = box_area(b);
    if (idxs) cls[i] = idxs[keys[i].index];
  }
  // iou > thr (float) <=> (double) iou > iou_threshold, as torchvision's CPU kernel compares.
  const float thr = threshold_below(iou_threshold);
  std::vector<uint8_t> removed(static_cast<size_t>(n), 0);
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (removed[i]) continue;
    if (count == max_keep) break;  // greedy order: later boxes cannot change the first max_keep kept
    keep[count++] = keys[i].index;
    const float ax1 = x1[i], ay1 = y1[i], ax2 = x2[i], ay2 = y2[i], ai = area[i];
    if (idxs)
      suppress<true>(ax1, ay1, ax2, ay2, ai, cls[i], i + 1, n, x1, y1, x2, y2, area, cls, thr, removed);
    else
      suppress<false>(ax1, ay1, ax2, ay2, ai, 0, i + 1, n, x1, y1, x2, y2, area, cls, thr, removed);
  }
  return count;
}

}  // namespace ops
}  // namespace pyddsar
