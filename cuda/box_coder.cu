// Box coding on the GPU (see csrc/ops/ops.h): one thread per point.
#include "cuda_check.h"
#include "ops/ops.h"
#include "ops_cuda.h"

namespace pyddsar {
namespace ops {

namespace {

__device__ __forceinline__ float clampf(float v, float lo, float hi) { return fminf(fmaxf(v, lo), hi); }

__global__ void distance2bbox_kernel(const float* points, const float* d, int64_t n, bool clamp, float max_h,
                                     float max_w, float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float px = points[2 * i], py = points[2 * i + 1];
  const float* di = d + 4 * i;
  float x1 = px - di[0], y1 = py - di[1], x2 = px + di[2], y2 = py + di[3];
  if (clamp) {
    x1 = clampf(x1, 0.f, max_w);
    x2 = clampf(x2, 0.f, max_w);
    y1 = clampf(y1, 0.f, max_h);
    y2 = clampf(y2, 0.f, max_h);
  }
  out[4 * i] = x1;
  out[4 * i + 1] = y1;
  out[4 * i + 2] = x2;
  out[4 * i + 3] = y2;
}

__global__ void bbox2distance_kernel(const float* points, const float* boxes, int64_t n, float max_dis, float eps,
                                     float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float px = points[2 * i], py = points[2 * i + 1];
  const float* b = boxes + 4 * i;
  const float d[4] = {px - b[0], py - b[1], b[2] - px, b[3] - py};
  const bool clamp = max_dis >= 0.f;
  for (int k = 0; k < 4; ++k) out[4 * i + k] = clamp ? clampf(d[k], 0.f, max_dis - eps) : d[k];
}

}  // namespace

void distance2bbox_cuda(const float* points, const float* distances, int64_t n, bool clamp, float max_h, float max_w,
                        float* out, int device, uintptr_t stream) {
  require(n >= 0, "number of points must be non-negative");
  if (n == 0) return;
  cudaStream_t s = begin_launch(device, stream);
  distance2bbox_kernel<<<blocks_for(n, 256), 256, 0, s>>>(points, distances, n, clamp, max_h, max_w, out);
  end_launch("distance2bbox kernel");
}

void bbox2distance_cuda(const float* points, const float* boxes, int64_t n, float max_dis, float eps, float* out,
                        int device, uintptr_t stream) {
  require(n >= 0, "number of points must be non-negative");
  if (n == 0) return;
  cudaStream_t s = begin_launch(device, stream);
  bbox2distance_kernel<<<blocks_for(n, 256), 256, 0, s>>>(points, boxes, n, max_dis, eps, out);
  end_launch("bbox2distance kernel");
}

}  // namespace ops
}  // namespace pyddsar
