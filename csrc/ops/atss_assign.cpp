// ATSS assignment on the CPU (mmdet's algorithm, SPEC section 4; see ops.h).
//
// For each face and level, the k anchors nearest to the face centre are found with a bucket grid of the
// level's anchor centres (built once per call, for any anchor layout): cells are visited in rings
// around the face centre until no unvisited cell can hold an anchor as near as the k-th found, so a
// face costs O(k) instead of O(anchors). Levels the grid does not suit (few anchors, degenerate
// spreads, many ignored anchors) are scanned linearly. Ordering, like mmdet's, is by the float32
// distance sqrt(dx*dx + dy*dy); equal distances go to the lower anchor index. The candidates' IoU mean
// and unbiased std are computed in double.
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
    if (!(std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]) && std::isfinite(p[3])))
      throw std::invalid_argument(std::string(what) + " contains NaN or infinite values");
    if (!(p[2] >= p[0] && p[3] >= p[1]))
      throw std::invalid_argument(std::string(what) + " has boxes with x2 < x1 or y2 < y1");
  }
}

// The k smallest (distance, index) keys seen so far, sorted.
struct TopK {
  std::vector<uint64_t> keys;
  std::vector<float> d2;
  int64_t k = 0, filled = 0;
  void reset(int64_t k_) {
    k = k_;
    filled = 0;
    keys.resize(static_cast<size_t>(k));
    d2.resize(static_cast<size_t>(k));
  }
  bool full() const { return filled == k; }
  void offer(float dist2, uint32_t index) {
    const uint64_t key = (uint64_t(float_key(std::sqrt(dist2))) << 32) | index;
    if (full() && key >= keys[k - 1]) return;
    int64_t pos = full() ? k - 1 : filled++;
    while (pos > 0 && keys[pos - 1] > key) {
      keys[pos] = keys[pos - 1];
      d2[pos] = d2[pos - 1];
      --pos;
    }
    keys[pos] = key;
    d2[pos] = dist2;
  }
};

// Anchor centres of one level bucketed into square cells (counting sort, indices ascending per cell).
struct LevelGrid {
  bool usable = false;
  double ox = 0, oy = 0, cell = 0, inv = 0;
  int64_t nx = 0, ny = 0;
  std::vector<int64_t> start;
  std::vector<uint32_t> items;

  int64_t cell_x(double x) const { return std::min(nx - 1, std::max<int64_t>(0, int64_t((x - ox) * inv))); }
  int64_t cell_y(double y) const { return std::min(ny - 1, std::max<int64_t>(0, int64_t((y - oy) * inv))); }

  void build(const float* cx, const float* cy, const uint8_t* ignored, int64_t begin, int64_t cnt, int64_t topk) {
    usable = false;
    int64_t nn = 0;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int64_t a = begin; a < begin + cnt; ++a) {
      if (ignored[a]) continue;
      ++nn;
      x0 = std::min<double>(x0, cx[a]);
      x1 = std::max<double>(x1, cx[a]);
      y0 = std::min<double>(y0, cy[a]);
      y1 = std::max<double>(y1, cy[a]);
    }
    // Too few anchors to gain anything, or too few selectable ones (ignored anchors may then be needed).
    if (nn < 256 || nn < topk) return;
    const double area = (x1 - x0) * (y1 - y0);
    cell = std::sqrt(area * 4.0 / static_cast<double>(nn));
    if (!(cell > 0) || !std::isfinite(cell)) return;
    const double fx = (x1 - x0) / cell + 1, fy = (y1 - y0) / cell + 1;
    if (fx * fy > 8.0 * nn + 64) return;
    ox = x0;
    oy = y0;
    inv = 1.0 / cell;
    nx = int64_t(fx);
    ny = int64_t(fy);
    start.assign(static_cast<size_t>(nx * ny + 1), 0);
    items.resize(static_cast<size_t>(nn));
    for (int64_t a = begin; a < begin + cnt; ++a)
      if (!ignored[a]) ++start[cell_y(cy[a]) * nx + cell_x(cx[a]) + 1];
    for (int64_t c = 0; c < nx * ny; ++c) start[c + 1] += start[c];
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t a = begin; a < begin + cnt; ++a)
      if (!ignored[a]) items[fill[cell_y(cy[a]) * nx + cell_x(cx[a])]++] = static_cast<uint32_t>(a);
    usable = true;
  }

  // Offers every anchor that can be among the k nearest to (gx, gy) to top.
  void search(const float* cx, const float* cy, float gx, float gy, TopK& top) const {
    const double fx = std::min(1e9, std::max(-1e9, std::floor((double(gx) - ox) * inv)));
    const double fy = std::min(1e9, std::max(-1e9, std::floor((double(gy) - oy) * inv)));
    const int64_t gcx = int64_t(fx), gcy = int64_t(fy);
    const int64_t r0 = std::max<int64_t>({0, -gcx, gcx - (nx - 1), -gcy, gcy - (ny - 1)});
    const int64_t rmax = std::max<int64_t>({std::abs(gcx), std::abs(gcx - (nx - 1)), std::abs(gcy), std::abs(gcy - (ny - 1))});
    auto visit = [&](int64_t x, int64_t y) {
      const int64_t c = y * nx + x;
      for (int64_t i = start[c]; i < start[c + 1]; ++i) {
        const uint32_t a = items[i];
        const float dx = cx[a] - gx, dy = cy[a] - gy;
        top.offer(dx * dx + dy * dy, a);
      }
    };
    for (int64_t r = r0; r <= rmax; ++r) {
      const int64_t ylo = std::max<int64_t>(0, gcy - r), yhi = std::min(ny - 1, gcy + r);
      const int64_t xlo = std::max<int64_t>(0, gcx - r), xhi = std::min(nx - 1, gcx + r);
      for (int64_t y = ylo; y <= yhi; ++y) {
        if (y == gcy - r || y == gcy + r) {
          for (int64_t x = xlo; x <= xhi; ++x) visit(x, y);
        } else {
          if (gcx - r >= 0 && gcx - r < nx) visit(gcx - r, y);
          if (r > 0 && gcx + r >= 0 && gcx + r < nx) visit(gcx + r, y);
        }
      }
      // Anchors in rings beyond r are at least r * cell away; one ring of margin absorbs rounding.
      if (top.full() && double(r - 1) * cell > std::sqrt(double(top.d2[top.k - 1])) * (1 + 1e-6)) break;
    }
  }
};

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
  check_boxes(gt, num_gt, "gt_boxes");
  check_boxes(ignore, num_ignore, "ignore");

  const size_t N = static_cast<size_t>(num_anchors);
  std::vector<float> acx(N), acy(N), aarea(N);
  for (size_t a = 0; a < N; ++a) {
    const float* p = anchors + 4 * a;
    acx[a] = centre(p[0], p[2]);
    acy[a] = centre(p[1], p[3]);
    aarea[a] = box_area(p);
  }
  // Anchors excluded by an ignore box; their penalty (+inf) makes their "distance" sort last.
  std::vector<uint8_t> ignored(N, 0);
  std::vector<float> penalty(N, 0.f);
  const float iof_thr = static_cast<float>(ignore_iof_thr);  // compared in float32, as mmdet does
  for (size_t a = 0; num_ignore > 0 && a < N; ++a) {
    for (int64_t k = 0; k < num_ignore; ++k) {
      if (overlap_iof(anchors + 4 * a, aarea[a], ignore + 4 * k) > iof_thr) {
        ignored[a] = 1;
        penalty[a] = std::numeric_limits<float>::infinity();
        break;
      }
    }
  }

  // Best claim per anchor, kept in the outputs: max_iou = highest IoU so far (-1: none), assigned =
  // face + 1. Faces run in order and only a higher IoU replaces a claim: equal IoUs keep the lower face.
  std::fill(max_iou, max_iou + N, -1.f);
  std::fill(assigned, assigned + N, int64_t(0));

  std::vector<LevelGrid> grids(static_cast<size_t>(num_levels));
  if (num_gt > 0) {
    int64_t start = 0;
    for (int64_t l = 0; l < num_levels; ++l) {
      grids[l].build(acx.data(), acy.data(), ignored.data(), start, level_sizes[l], topk);
      start += level_sizes[l];
    }
  }

  constexpr int64_t kBlock = 256;
  float d2buf[kBlock];
  TopK top;
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
      top.reset(std::min(topk, cnt));
      if (grids[l].usable) {
        grids[l].search(acx.data(), acy.data(), gcx, gcy, top);
      } else {
        // Linear scan in index order: an anchor not nearer (in squared distance) than the k-th has a
        // larger key, so most are rejected before the square root.
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
            if (top.full() && !(d2buf[i] <= worst_d2)) continue;
            top.offer(d2buf[i], static_cast<uint32_t>(start + b0 + i));
            if (top.full()) worst_d2 = top.d2[top.k - 1];
          }
        }
      }
      for (int64_t i = 0; i < top.filled; ++i) cand.push_back(static_cast<int64_t>(top.keys[i] & 0xffffffffu));
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
      if (cand_iou[c] > max_iou[a]) {
        max_iou[a] = cand_iou[c];
        assigned[a] = j + 1;
      }
    }
  }
  for (size_t a = 0; a < N; ++a) {
    if (assigned[a] == 0) {
      assigned[a] = ignored[a] ? -1 : 0;
      max_iou[a] = 0.f;
    }
  }
}

}  // namespace ops
}  // namespace pyddsar
