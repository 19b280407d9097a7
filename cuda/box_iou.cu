// Pairwise IoU on the GPU (mmdet's formula, csrc/ops/box_math.h): one thread per (i, j).
#include "cuda_check.h"
#include "ops/box_math.h"
#include "ops/ops.h"
#include "ops_cuda.h"

namespace pyddsar {
namespace ops {

namespace {

__global__ void box_iou_kernel(const float* a, int64_t n, const float* b, int64_t m, float* out) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * m) return;
  const int64_t i = idx / m, j = idx % m;
  const float* ai = a + 4 * i;
  const float* bj = b + 4 * j;
  out[idx] = overlap_iou(ai, box_area(ai), bj, box_area(bj));
}

}  // namespace

void box_iou_cuda(const float* a, int64_t n, const float* b, int64_t m, float* out, int device, uintptr_t stream) {
  require(n >= 0 && m >= 0, "box counts must be non-negative");
  if (n == 0 || m == 0) return;
  require(n * m / 256 < (int64_t(1) << 31), "box_iou: n * m is too large for one launch");
  cudaStream_t s = begin_launch(device, stream);
  box_iou_kernel<<<blocks_for(n * m, 256), 256, 0, s>>>(a, n, b, m, out);
  end_launch("box_iou kernel");
}

}  // namespace ops
}  // namespace pyddsar
