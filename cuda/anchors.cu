// Anchor generation on the GPU (SCRFD / mmdet layout, see csrc/ops/ops.h), one launch per level.
#include "cuda_check.h"
#include "ops/ops.h"
#include "ops_cuda.h"

namespace pyddsar {
namespace ops {

namespace {

constexpr int kMaxSizes = 16;
struct Sides {
  float v[kMaxSizes];
};

__global__ void anchors_kernel(int64_t h, int64_t w, int64_t stride, Sides sides, int num_sizes, bool centres_only,
                               float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= h * w * num_sizes) return;
  const int64_t loc = i / num_sizes;
  const int a = static_cast<int>(i % num_sizes);
  const float cx = static_cast<float>((loc % w) * stride);
  const float cy = static_cast<float>((loc / w) * stride);
  if (centres_only) {
    out[2 * i] = cx;
    out[2 * i + 1] = cy;
    return;
  }
  const float half = 0.5f * sides.v[a];
  out[4 * i] = cx - half;
  out[4 * i + 1] = cy - half;
  out[4 * i + 2] = cx + half;
  out[4 * i + 3] = cy + half;
}

}  // namespace

void anchors_cuda(const std::vector<int64_t>& heights, const std::vector<int64_t>& widths,
                  const std::vector<int64_t>& strides, const std::vector<float>& sizes, int64_t num_sizes,
                  bool centres_only, float* out, int device, uintptr_t stream) {
  const int64_t levels = static_cast<int64_t>(heights.size());
  require(widths.size() == heights.size() && strides.size() == heights.size(),
          "heights, widths and strides must have the same length");
  require(num_sizes >= 1 && num_sizes <= kMaxSizes, "anchors per location must be in [1, 16] on CUDA");
  if (!centres_only) require(static_cast<int64_t>(sizes.size()) == levels * num_sizes, "sizes must hold num_sizes sides per level");
  for (int64_t l = 0; l < levels; ++l) require(strides[l] > 0, "strides must be positive");
  anchor_count(heights.data(), widths.data(), levels, num_sizes);  // checks the sizes
  cudaStream_t s = begin_launch(device, stream);
  const int64_t per = centres_only ? 2 : 4;
  for (int64_t l = 0; l < levels; ++l) {
    const int64_t n = heights[l] * widths[l] * num_sizes;
    if (n == 0) continue;
    Sides sides{};
    if (!centres_only)
      for (int64_t a = 0; a < num_sizes; ++a) sides.v[a] = sizes[l * num_sizes + a];
    anchors_kernel<<<blocks_for(n, 256), 256, 0, s>>>(heights[l], widths[l], strides[l], sides,
                                                      static_cast<int>(num_sizes), centres_only, out);
    out += n * per;
  }
  end_launch("anchors kernel");
}

}  // namespace ops
}  // namespace pyddsar
