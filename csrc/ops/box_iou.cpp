// Pairwise IoU matrix (mmdet's bbox_overlaps formula, see box_math.h).
#include <vector>

#include "ops/box_math.h"
#include "ops/ops.h"

namespace pyddsar {
namespace ops {

void box_iou_cpu(const float* a, int64_t n, const float* b, int64_t m, float* out) {
  require(n >= 0 && m >= 0, "box counts must be non-negative");
  std::vector<float> area_b(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) area_b[j] = box_area(b + 4 * j);
  for (int64_t i = 0; i < n; ++i) {
    const float* ai = a + 4 * i;
    const float area_a = box_area(ai);
    float* row = out + i * m;
    for (int64_t j = 0; j < m; ++j) row[j] = overlap_iou(ai, area_a, b + 4 * j, area_b[j]);
  }
}

}  // namespace ops
}  // namespace pyddsar
