// ATSS assignment on the CPU (mmdet's algorithm, SPEC section 4; see ops.h).
//
// For each face and level, the k anchors nearest to the face centre are found in one pass that keeps
// a sorted list of k (distance, index) keys; the squared distances of a block of anchors are computed
// first in a vectorisable loop and only those not farther than the current k-th are considered, so the
// square root is taken for few anchors. Ordering, like mmdet's, is by the float32 distance
// sqrt(dx*dx + dy*dy); equal distances go to the lower anchor index. The candidates' IoU mean and
// unbiased std are computed in double.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/box_math.h"
#include "ops/ops.h"

namespace pyddsar {
namespace ops {

namespace {

void check_boxes(const float* b, int64_t n, const char* what) {
  for (int64_t i = 0; i < n; ++i) {
    const float* p = b + 4 * i;
    require(std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]) && std::isfinite(p[3]),
            std::string(what) + " must be finite");
    require(p[2] >= p[0] && p[3] >= p[1], std::string(what) + " must satisfy x2 >= x1 and y2 >= y1");
  }
}

}  // namespace

void atss_assign_cpu(const float* anchors, int64_t num_anchors, const int64_t* level_sizes, int64_t num_levels,
                     const float* gt, int64_t num_gt, const float* ignore, int64_t num_ignore, double ignore_iof_thr,
                     int64_t topk, int inside_mode, int64_t* assigned, float* max_iou) {
  require(num_anchors >= 0 && num_anchors < (int64_t(1) << 31), "number of anchors must be in [0, 2^31)");
  require(num_gt >= 0 && num_ignore >= 0, "box counts must be non-negative");
  require(num_levels >= 1, "at least one level is needed");
  require(topk >= 1, "topk must be positive");
  require(inside_mode == kInsideScrfd || inside_mode == kInsideMmdet, "inside must be 'scrfd' or 'mmdet'");
  int64_t total = 0;
  for (int64_t l = 0; l < num_levels; ++l) {
    require(level_sizes[l] >= 0, "anchors per level must be non-negative");
    total += level_sizes[l];
  }
  require(total == num_anchors, "anchors per level must sum to the number of anchors");
  check_boxes(anchors, num_anchors, "anchors");
  check_boxes(gt, num_gt, "gt boxes");
  check_boxes(ignore, num_ignore, "ignore boxes");

  const size_t N = static_cast<size_t>(num_anchors);
  std::vector<float> acx(N), acy(N), aarea(N);
  // +inf for anchors excluded by an ignore box: their "distance" sorts after every real one.
  std::vector<float> penalty(N, 0.f);
  std::vector<uint8_t> ignored(N, 0);
  const float iof_thr = static_cast<float>(ignore_iof_thr);  // compared in float32, as mmdet does
  for (size_t a = 0; a < N; ++a) {
    const float* p = anchors + 4 * a;
    acx[a] = centre(p[0], p[2]);
    acy[a] = centre(p[1], p[3]);
    aarea[a] = box_area(p);
    for (int64_t k = 0; k < num_ignore; ++k) {
      if (overlap_iof(p, aarea[a], ignore + 4 * k) > iof_thr) {
        ignored[a] = 1;
        penalty[a] = std::numeric_limits<float>::infinity();
        break;
      }
    }
  }

  // Best claim per anchor: highest IoU, equal IoUs to the lower face index (faces run in order).
  std::vector<float> best_iou(N, -1.f);
  std::vector<int64_t> best_gt(N, -1);

  constexpr int64_t kBlock = 256;
  float d2buf[kBlock];
  std::vector<uint64_t> keys(static_cast<size_t>(topk));
  std::vector<float> keyd2(static_cast<size_t>(topk));
  std::vector<int64_t> cand;
  std::vector<float> cand_iou;
  cand.reserve(static_cast<size_t>(topk * num_levels));

  for (int64_t j = 0; j < num_gt; ++j) {
    const float* g = gt + 4 * j;
    const float gcx = centre(g[0], g[2]), gcy = centre(g[1], g[3]);
    const float garea = box_area(g);
    cand.clear();
    int64_t start = 0;
    for (int64_t l = 0; l < num_levels; ++l) {
      const int64_t cnt = level_sizes[l];
      const int64_t k = std::min(topk, cnt);
      int64_t filled = 0;
      float worst_d2 = std::numeric_limits<float>::infinity();
      for (int64_t b0 = 0; b0 < cnt; b0 += kBlock) {
        const int64_t len = std::min(kBlock, cnt - b0);
        const float* cx = acx.data() + start + b0;
        const float* cy = acy.data() + start + b0;
        const float* pen = penalty.data() + start + b0;
        for (int64_t i = 0; i < len; ++i) {
          const float dx = cx[i] - gcx, dy = cy[i] - gcy;
          d2buf[i] = (dx * dx + dy * dy) + pen[i];
        }
        for (int64_t i = 0; i < len; ++i) {
          const float d2 = d2buf[i];
          if (filled == k && !(d2 <= worst_d2)) continue;  // farther than the k-th and a higher index
          const uint64_t key =
              (uint64_t(float_key(std::sqrt(d2))) << 32) | static_cast<uint32_t>(start + b0 + i);
          if (filled == k && key >= keys[k - 1]) continue;
          int64_t pos = filled < k ? filled++ : k - 1;
          while (pos > 0 && keys[pos - 1] > key) {
            keys[pos] = keys[pos - 1];
            keyd2[pos] = keyd2[pos - 1];
            --pos;
          }
          keys[pos] = key;
          keyd2[pos] = d2;
          if (filled == k) worst_d2 = keyd2[k - 1];
        }
      }
      for (int64_t i = 0; i < filled; ++i) cand.push_back(static_cast<int64_t>(keys[i] & 0xffffffffu));
      start += cnt;
    }
    const size_t C = cand.size();
    if (C == 0) continue;
    cand_iou.resize(C);
    double sum = 0.0;
    for (size_t c = 0; c < C; ++c) {
      cand_iou[c] = overlap_iou(anchors + 4 * cand[c], aarea[cand[c]], g, garea);
      sum += cand_iou[c];
    }
    const double mean = sum / static_cast<double>(C);
    double ss = 0.0;
    for (size_t c = 0; c < C; ++c) ss += (cand_iou[c] - mean) * (cand_iou[c] - mean);
    // Unbiased std; one candidate gives NaN as in PyTorch, so it never becomes positive (as in mmdet).
    const double thr = mean + std::sqrt(ss / static_cast<double>(static_cast<int64_t>(C) - 1));
    for (size_t c = 0; c < C; ++c) {
      const int64_t a = cand[c];
      if (!(static_cast<double>(cand_iou[c]) >= thr)) continue;
      if (!centre_inside(acx[a], acy[a], g, inside_mode)) continue;
      if (cand_iou[c] > best_iou[a]) {
        best_iou[a] = cand_iou[c];
        best_gt[a] = j;
      }
    }
  }
  for (size_t a = 0; a < N; ++a) {
    if (best_gt[a] >= 0) {
      assigned[a] = best_gt[a] + 1;
      max_iou[a] = best_iou[a];
    } else {
      assigned[a] = ignored[a] ? -1 : 0;
      max_iou[a] = 0.f;
    }
  }
}

}  // namespace ops
}  // namespace pyddsar
