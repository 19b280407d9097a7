// Box coding between (l, t, r, b) distances from a point and (x1, y1, x2, y2) boxes (see ops.h).
#include <algorithm>

#include "ops/ops.h"

namespace pyddsar {
namespace ops {

void distance2bbox_cpu(const float* points, const float* distances, int64_t n, bool clamp, float max_h, float max_w,
                       float* out) {
  require(n >= 0, "number of points must be non-negative");
  if (clamp) require(max_h >= 0.f && max_w >= 0.f, "max_shape must be non-negative");
  for (int64_t i = 0; i < n; ++i) {
    const float px = points[2 * i], py = points[2 * i + 1];
    const float* d = distances + 4 * i;
    float x1 = px - d[0], y1 = py - d[1], x2 = px + d[2], y2 = py + d[3];
    if (clamp) {
      x1 = std::min(std::max(x1, 0.f), max_w);
      x2 = std::min(std::max(x2, 0.f), max_w);
      y1 = std::min(std::max(y1, 0.f), max_h);
      y2 = std::min(std::max(y2, 0.f), max_h);
    }
    float* o = out + 4 * i;
    o[0] = x1;
    o[1] = y1;
    o[2] = x2;
    o[3] = y2;
  }
}

void bbox2distance_cpu(const float* points, const float* boxes, int64_t n, float max_dis, float eps, float* out) {
  require(n >= 0, "number of points must be non-negative");
  const bool clamp = max_dis >= 0.f;
  const float hi = max_dis - eps;
  for (int64_t i = 0; i < n; ++i) {
    const float px = points[2 * i], py = points[2 * i + 1];
    const float* b = boxes + 4 * i;
    float d[4] = {px - b[0], py - b[1], b[2] - px, b[3] - py};
    float* o = out + 4 * i;
    for (int k = 0; k < 4; ++k) o[k] = clamp ? std::min(std::max(d[k], 0.f), hi) : d[k];
  }
}

}  // namespace ops
}  // namespace pyddsar
