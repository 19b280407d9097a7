// Anchor generation in the SCRFD / mmdet layout (see ops.h).
#include "ops/ops.h"

namespace pyddsar {
namespace ops {

namespace {
void check_levels(const int64_t* heights, const int64_t* widths, const int64_t* strides, int64_t num_levels) {
  require(num_levels >= 0, "number of levels must be non-negative");
  for (int64_t l = 0; l < num_levels; ++l) {
    require(heights[l] >= 0 && widths[l] >= 0, "feature sizes must be non-negative");
    require(heights[l] <= (1 << 20) && widths[l] <= (1 << 20), "feature sizes must be at most 2^20");
    // positions x * stride must stay exact in the int64 product and meaningful as float32 pixels
    if (strides) require(strides[l] > 0 && strides[l] <= (1 << 20), "strides must be in 1..2^20");
  }
}
}  // namespace

int64_t anchor_count(const int64_t* heights, const int64_t* widths, int64_t num_levels, int64_t per_location) {
  check_levels(heights, widths, nullptr, num_levels);
  require(per_location > 0, "anchors per location must be positive");
  constexpr int64_t kMax = (int64_t(1) << 31) - 1;
  int64_t n = 0;
  for (int64_t l = 0; l < num_levels; ++l) {
    // sizes <= 2^20 each, so the cell count fits; per_location is checked before it multiplies
    const int64_t cells = heights[l] * widths[l];
    require(cells == 0 || per_location <= kMax / cells, "too many anchors (at most 2^31 - 1)");
    n += cells * per_location;
    require(n <= kMax, "too many anchors (at most 2^31 - 1)");
  }
  return n;
}

void anchors_cpu(const int64_t* heights, const int64_t* widths, const int64_t* strides, const float* sizes,
                 int64_t num_levels, int64_t num_sizes, float* out) {
  check_levels(heights, widths, strides, num_levels);
  anchor_count(heights, widths, num_levels, num_sizes);
  for (int64_t l = 0; l < num_levels; ++l) {
    const float* s = sizes + l * num_sizes;
    for (int64_t y = 0; y < heights[l]; ++y) {
      const float cy = static_cast<float>(y * strides[l]);
      for (int64_t x = 0; x < widths[l]; ++x) {
        const float cx = static_cast<float>(x * strides[l]);
        for (int64_t a = 0; a < num_sizes; ++a) {
          const float half = 0.5f * s[a];
          out[0] = cx - half;
          out[1] = cy - half;
          out[2] = cx + half;
          out[3] = cy + half;
          out += 4;
        }
      }
    }
  }
}

void anchor_centers_cpu(const int64_t* heights, const int64_t* widths, const int64_t* strides, int64_t num_levels,
                        int64_t num_anchors, float* out) {
  check_levels(heights, widths, strides, num_levels);
  anchor_count(heights, widths, num_levels, num_anchors);
  for (int64_t l = 0; l < num_levels; ++l)
    for (int64_t y = 0; y < heights[l]; ++y)
      for (int64_t x = 0; x < widths[l]; ++x)
        for (int64_t a = 0; a < num_anchors; ++a) {
          out[0] = static_cast<float>(x * strides[l]);
          out[1] = static_cast<float>(y * strides[l]);
          out += 2;
        }
}

}  // namespace ops
}  // namespace pyddsar
