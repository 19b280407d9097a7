// CPU detection kernels: raw float32 / int64 pointers to contiguous buffers, sizes as arguments.
// Outputs are allocated by the caller (pyddsar/ops.py allocates torch tensors). Each function checks
// its sizes and scalar arguments and throws std::invalid_argument (ValueError in Python) on bad input.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace pyddsar {
namespace ops {

// anchors.cpp ---------------------------------------------------------------------------------
// SCRFD / mmdet layout: level by level, row-major locations (y, x), the `num_sizes` square anchors of
// a location adjacent; centre (x * stride, y * stride), no half-cell offset. `sizes` holds
// num_levels * num_sizes anchor sides. out: N x 4 (x1, y1, x2, y2).
void anchors_cpu(const int64_t* heights, const int64_t* widths, const int64_t* strides, const float* sizes,
                 int64_t num_levels, int64_t num_sizes, float* out);
// The centres of the same anchors, N x 2.
void anchor_centers_cpu(const int64_t* heights, const int64_t* widths, const int64_t* strides, int64_t num_levels,
                        int64_t num_anchors, float* out);
int64_t anchor_count(const int64_t* heights, const int64_t* widths, int64_t num_levels, int64_t per_location);

// box_coder.cpp -------------------------------------------------------------------------------
// boxes = (px - l, py - t, px + r, py + b), clamped to [0, max_w] x [0, max_h] when clamp is set.
void distance2bbox_cpu(const float* points, const float* distances, int64_t n, bool clamp, float max_h, float max_w,
                       float* out);
// distances = (px - x1, py - y1, x2 - px, y2 - py), clamped to [0, max_dis - eps] when max_dis >= 0.
void bbox2distance_cpu(const float* points, const float* boxes, int64_t n, float max_dis, float eps, float* out);

// box_iou.cpp ---------------------------------------------------------------------------------
// out[i * m + j] = IoU(a_i, b_j) = inter / max(union, 1e-6).
void box_iou_cpu(const float* a, int64_t n, const float* b, int64_t m, float* out);

// nms.cpp -------------------------------------------------------------------------------------
// Greedy NMS in order of decreasing score (equal scores: lower index first). A box is removed when its
// IoU with a kept box exceeds iou_threshold; with idxs (batched NMS) only boxes of the same idx
// suppress each other. Writes the kept indices to keep (capacity n); returns how many.
int64_t nms_cpu(const float* boxes, const float* scores, const int64_t* idxs, int64_t n, double iou_threshold,
                int64_t* keep, int64_t max_keep = -1);

// atss_assign.cpp -----------------------------------------------------------------------------
// ATSS (mmdet's algorithm, SPEC section 4). anchors: N x 4, level_sizes: anchors per level (sum N),
// gt: M x 4, ignore: K x 4 (anchors whose IoF with an ignore box exceeds ignore_iof_thr are excluded
// from the candidates and marked -1 unless they become positive). Outputs: assigned (N, 0 negative,
// -1 ignored, j+1 face j) and max_iou (N, IoU with the assigned face, 0 elsewhere).
void atss_assign_cpu(const float* anchors, int64_t num_anchors, const int64_t* level_sizes, int64_t num_levels,
                     const float* gt, int64_t num_gt, const float* ignore, int64_t num_ignore, double ignore_iof_thr,
                     int64_t topk, int inside_mode, int64_t* assigned, float* max_iou);

// shared argument checks ----------------------------------------------------------------------
// (const char*: building a std::string on every call would cost more than the checks in hot loops.)
inline void require(bool ok, const char* message) {
  if (!ok) throw std::invalid_argument(message);
}

}  // namespace ops
}  // namespace pyddsar
