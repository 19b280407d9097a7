// Box arithmetic shared by the CPU kernels (csrc/ops) and the CUDA kernels (cuda/).
//
// Every float operation is written so that host and device round identically: products and sums go
// through fmul/fadd, which on the device are the _rn intrinsics (nvcc would otherwise contract
// a*b+c into one fused multiply-add and round once instead of twice). The CPU build does not use
// -ffast-math, so the plain expressions round as IEEE float32 and as PyTorch's float32 ops do.
#pragma once

#include <cstdint>
#include <cmath>
#include <cstring>

#ifdef __CUDACC__
#define PYDDSAR_HD __host__ __device__ __forceinline__
#else
#define PYDDSAR_HD inline
#endif

namespace pyddsar {
namespace ops {

PYDDSAR_HD float fmul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

PYDDSAR_HD float fadd(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

PYDDSAR_HD float fsub(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

PYDDSAR_HD float fmax0(float a, float b) { return a > b ? a : b; }
PYDDSAR_HD float fmin0(float a, float b) { return a < b ? a : b; }

// Intersection area of boxes (ax1, ay1, ax2, ay2) and (bx1, by1, bx2, by2), 0 when they do not overlap.
PYDDSAR_HD float intersection(float ax1, float ay1, float ax2, float ay2, float bx1, float by1, float bx2, float by2) {
  const float w = fmax0(fsub(fmin0(ax2, bx2), fmax0(ax1, bx1)), 0.f);
  const float h = fmax0(fsub(fmin0(ay2, by2), fmax0(ay1, by1)), 0.f);
  return fmul(w, h);
}

PYDDSAR_HD float intersection(const float* a, const float* b) {
  return intersection(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]);
}

PYDDSAR_HD float box_area(const float* a) { return fmul(fsub(a[2], a[0]), fsub(a[3], a[1])); }

// IoU as NMS uses it (torchvision's formula): inter / (area_a + area_b - inter). Two empty boxes give
// 0/0 = NaN, which never exceeds a threshold, so degenerate boxes never suppress anything.
PYDDSAR_HD float nms_iou_of(float inter, float area_a, float area_b) { return inter / fsub(fadd(area_a, area_b), inter); }

PYDDSAR_HD float nms_iou(const float* a, float area_a, const float* b, float area_b) {
  return nms_iou_of(intersection(a, b), area_a, area_b);
}

// IoU as box_iou and ATSS use it (mmdet's bbox_overlaps): inter / max(area_a + area_b - inter, 1e-6).
PYDDSAR_HD float overlap_iou(const float* a, float area_a, const float* b, float area_b) {
  const float inter = intersection(a, b);
  return inter / fmax0(fsub(fadd(area_a, area_b), inter), 1e-6f);
}

// Intersection over the area of `a` (mmdet's 'iof'): inter / max(area_a, 1e-6).
PYDDSAR_HD float overlap_iof(const float* a, float area_a, const float* b) {
  return intersection(a, b) / fmax0(area_a, 1e-6f);
}

// Box centre as mmdet computes it: (x1 + x2) / 2 in float32.
PYDDSAR_HD float centre(float lo, float hi) { return fadd(lo, hi) * 0.5f; }

// Bits of a non-negative float, monotone in its value (+inf sorts after every finite value).
PYDDSAR_HD uint32_t float_key(float v) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(v);
#else
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
#endif
}

PYDDSAR_HD float key_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float v;
  std::memcpy(&v, &u, sizeof v);
  return v;
#endif
}

// The largest float t' with t' <= t: for a float x, x > t (compared in double) <=> x > t'.
// Lets float kernels reproduce torchvision's CPU comparison `float iou > double threshold`.
inline float threshold_below(double t) {
  float f = static_cast<float>(t);
  if (static_cast<double>(f) > t) {
    // step down one ulp (t >= 0 here, so the representation is monotone)
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    if (f > 0.f) --u;
    std::memcpy(&f, &u, sizeof f);
  }
  return f;
}

// ATSS inside tests (SPEC section 4).
enum InsideMode : int { kInsideScrfd = 0, kInsideMmdet = 1 };

// Is the anchor centre (cx, cy) inside the face box g under the given test?
PYDDSAR_HD bool centre_inside(float cx, float cy, const float* g, int mode) {
  const float l = fsub(cx, g[0]);
  const float t = fsub(cy, g[1]);
  const float r = fsub(g[2], cx);
  const float b = fsub(g[3], cy);
  const float m = fmin0(fmin0(l, t), fmin0(r, b));
  if (mode == kInsideMmdet) return m > 0.01f;
  const float wh = fmax0(fmul(fsub(g[2], g[0]), fsub(g[3], g[1])), 1e-4f);
  return m / sqrtf(wh) > 0.001f;
}

}  // namespace ops
}  // namespace pyddsar
