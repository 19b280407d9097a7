// NMS on the GPU with the bitmask method: boxes arrive sorted by decreasing score; one kernel computes,
// for every box i and every 64-box column block, the bits of the later boxes it suppresses; a second
// kernel (one block) walks the boxes in order, keeping a box unless an earlier kept box removed it and
// OR-ing the kept boxes' rows into the removed set. Nothing is copied to the host.
#include "cuda_check.h"
#include "ops/box_math.h"
#include "ops/ops.h"
#include "ops_cuda.h"

namespace pyddsar {
namespace ops {

namespace {

constexpr int kBits = 64;
using u64 = unsigned long long;

__global__ void nms_mask_kernel(const float* boxes, const int64_t* idxs, int n, int words, float thr, u64* mask) {
  const int row_block = blockIdx.y, col_block = blockIdx.x;
  if (col_block < row_block) return;  // only boxes later in the order are ever suppressed
  const int row_size = min(n - row_block * kBits, kBits);
  const int col_size = min(n - col_block * kBits, kBits);
  __shared__ float cb[kBits * 4];
  __shared__ float ca[kBits];
  __shared__ int64_t cc[kBits];
  const int t = threadIdx.x;
  if (t < col_size) {
    const float* b = boxes + 4 * (col_block * kBits + t);
    for (int k = 0; k < 4; ++k) cb[4 * t + k] = b[k];
    ca[t] = box_area(cb + 4 * t);
    if (idxs) cc[t] = idxs[col_block * kBits + t];
  }
  __syncthreads();
  if (t >= row_size) return;
  const int i = row_block * kBits + t;
  float bi[4];
  for (int k = 0; k < 4; ++k) bi[k] = boxes[4 * i + k];
  const float ai = box_area(bi);
  const int64_t ci = idxs ? idxs[i] : 0;
  u64 bits = 0;
  for (int j = (row_block == col_block) ? t + 1 : 0; j < col_size; ++j) {
    if (idxs && cc[j] != ci) continue;
    if (nms_iou(bi, ai, cb + 4 * j, ca[j]) > thr) bits |= 1ULL << j;
  }
  mask[static_cast<int64_t>(i) * words + col_block] = bits;
}

__global__ void nms_gather_kernel(const u64* mask, int n, int words, u64* removed, int64_t* keep, int64_t* count) {
  __shared__ u64 diag[kBits];
  __shared__ u64 kept_bits;
  __shared__ int64_t num;
  const int t = threadIdx.x;
  for (int w = t; w < words; w += blockDim.x) removed[w] = 0;
  if (t == 0) num = 0;
  __syncthreads();
  for (int nb = 0; nb < words; ++nb) {
    const int base = nb * kBits;
    const int size = min(n - base, kBits);
    if (t < size) diag[t] = mask[static_cast<int64_t>(base + t) * words + nb];
    __syncthreads();
    if (t == 0) {
      u64 rem = removed[nb], kb = 0;
      for (int i = 0; i < size; ++i) {
        if (!((rem >> i) & 1ULL)) {
          kb |= 1ULL << i;
          keep[num++] = base + i;
          rem |= diag[i];
        }
      }
      kept_bits = kb;
    }
    __syncthreads();
    const u64 kb = kept_bits;
    for (int w = nb + 1 + t; w < words; w += blockDim.x) {
      u64 acc = removed[w];
      for (u64 bits = kb; bits; bits &= bits - 1) {
        const int i = __ffsll(static_cast<long long>(bits)) - 1;
        acc |= mask[static_cast<int64_t>(base + i) * words + w];
      }
      removed[w] = acc;
    }
    __syncthreads();
  }
  if (t == 0) *count = num;
}

}  // namespace

void nms_cuda(const float* sorted_boxes, const int64_t* sorted_idxs, int64_t n, double iou_threshold,
              uint64_t* workspace, int64_t* keep, int64_t* count, int device, uintptr_t stream) {
  require(n >= 0, "number of boxes must be non-negative");
  require(iou_threshold >= 0.0 && iou_threshold <= 1.0, "iou_threshold must be in [0, 1]");
  require(n <= int64_t(65535) * kBits, "CUDA NMS handles at most 4,194,240 boxes");
  cudaStream_t s = begin_launch(device, stream);
  if (n == 0) {
    cuda_check(cudaMemsetAsync(count, 0, sizeof(int64_t), s), "cudaMemsetAsync");
    return;
  }
  const int words = static_cast<int>((n + kBits - 1) / kBits);
  u64* mask = reinterpret_cast<u64*>(workspace);
  u64* removed = mask + n * words;
  nms_mask_kernel<<<dim3(words, words), kBits, 0, s>>>(sorted_boxes, sorted_idxs, static_cast<int>(n), words,
                                                        threshold_below(iou_threshold), mask);
  end_launch("nms mask kernel");
  nms_gather_kernel<<<1, 256, 0, s>>>(mask, static_cast<int>(n), words, removed, keep, count);
  end_launch("nms gather kernel");
}

}  // namespace ops
}  // namespace pyddsar
