// ATSS assignment on the GPU (see csrc/ops/ops.h and csrc/ops/atss_assign.cpp for the rules).
//
// 1. flags: anchors excluded by ignore boxes (one thread per anchor).
// 2. one block per face: for each level, the top-k anchors by (float32 centre distance, index) are
//    found by k block-wide minimum reductions over 64-bit keys, each taking the smallest key above the
//    previous one (keys are unique, so this yields the k smallest in order); then the candidates'
//    IoUs, their mean + unbiased std (double, summed in the CPU kernel's order), the inside test, and
//    an atomicMax per positive anchor on (IoU bits << 32 | ~face), so the highest IoU wins and equal
//    IoUs go to the lower face index.
// 3. decode the packed claims into (assigned, max_iou).
// Results are identical to the CPU kernel: both share box_math.h and round every operation the same.
#include "cuda_check.h"
#include "ops/box_math.h"
#include "ops/ops.h"
#include "ops_cuda.h"

namespace pyddsar {
namespace ops {

namespace {

constexpr int kMaxLevels = 16;
constexpr int kMaxTopk = 32;
constexpr int kThreads = 256;
using u64 = unsigned long long;

struct Levels {
  int64_t size[kMaxLevels];
};

__global__ void atss_flags_kernel(const float* anchors, int64_t n, const float* ignore, int64_t k, float thr,
                                  uint8_t* flags) {
  const int64_t a = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (a >= n) return;
  const float* p = anchors + 4 * a;
  const float area = box_area(p);
  uint8_t f = 0;
  for (int64_t i = 0; i < k && !f; ++i) f = overlap_iof(p, area, ignore + 4 * i) > thr;
  flags[a] = f;
}

__device__ u64 block_min(u64 v, u64* scratch) {
  for (int off = 16; off > 0; off >>= 1) {
    const u64 o = __shfl_down_sync(0xffffffffu, v, off);
    v = o < v ? o : v;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (kThreads / 32) ? scratch[lane] : ~0ULL;
    for (int off = 16; off > 0; off >>= 1) {
      const u64 o = __shfl_down_sync(0xffffffffu, v, off);
      v = o < v ? o : v;
    }
    if (lane == 0) scratch[32] = v;
  }
  __syncthreads();
  const u64 r = scratch[32];
  __syncthreads();
  return r;
}

__global__ void __launch_bounds__(kThreads) atss_gt_kernel(const float* anchors, Levels levels, int num_levels,
                                                           const float* gt, const uint8_t* flags, int topk, int mode,
                                                           u64* best) {
  __shared__ u64 scratch[33];
  __shared__ int cand[kMaxLevels * kMaxTopk];
  __shared__ float cand_iou[kMaxLevels * kMaxTopk];
  __shared__ double thr;
  const int64_t j = blockIdx.x;  // 64-bit offsets: 4 * index overflows int from 2^29 elements
  const float g[4] = {gt[4 * j], gt[4 * j + 1], gt[4 * j + 2], gt[4 * j + 3]};
  const float gcx = centre(g[0], g[2]), gcy = centre(g[1], g[3]);
  const float inf = __int_as_float(0x7f800000);
  int C = 0;
  int64_t start = 0;
  for (int l = 0; l < num_levels; ++l) {
    const int64_t cnt = levels.size[l];
    const int k = static_cast<int>(cnt < topk ? cnt : topk);
    u64 prev = 0;
    for (int r = 0; r < k; ++r) {
      u64 mine = ~0ULL;
      for (int64_t a = start + threadIdx.x; a < start + cnt; a += kThreads) {
        const float dx = fsub(centre(anchors[4 * a], anchors[4 * a + 2]), gcx);
        const float dy = fsub(centre(anchors[4 * a + 1], anchors[4 * a + 3]), gcy);
        const float d2 = flags[a] ? inf : fadd(fmul(dx, dx), fmul(dy, dy));
        const u64 key = (static_cast<u64>(float_key(sqrtf(d2))) << 32) | static_cast<uint32_t>(a);
        if ((r == 0 || key > prev) && key < mine) mine = key;
      }
      prev = block_min(mine, scratch);
      if (threadIdx.x == 0) cand[C + r] = static_cast<int>(prev & 0xffffffffULL);
    }
    C += k;
    start += cnt;
  }
  __syncthreads();
  if (C == 0) return;
  const float garea = box_area(g);
  for (int c = threadIdx.x; c < C; c += kThreads) {
    const float* p = anchors + 4 * static_cast<int64_t>(cand[c]);
    cand_iou[c] = overlap_iou(p, box_area(p), g, garea);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double sum = 0.0;
    for (int c = 0; c < C; ++c) sum = __dadd_rn(sum, static_cast<double>(cand_iou[c]));
    const double mean = sum / static_cast<double>(C);
    double ss = 0.0;
    for (int c = 0; c < C; ++c) {
      const double d = __dsub_rn(static_cast<double>(cand_iou[c]), mean);
      ss = __dadd_rn(ss, __dmul_rn(d, d));
    }
    thr = __dadd_rn(mean, sqrt(ss / static_cast<double>(C - 1)));
  }
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += kThreads) {
    const int64_t a = cand[c];
    if (!(static_cast<double>(cand_iou[c]) >= thr)) continue;
    const float cx = centre(anchors[4 * a], anchors[4 * a + 2]);
    const float cy = centre(anchors[4 * a + 1], anchors[4 * a + 3]);
    if (!centre_inside(cx, cy, g, mode)) continue;
    const u64 packed = (static_cast<u64>(float_key(cand_iou[c])) << 32) | (0xffffffffULL - static_cast<u64>(j));
    atomicMax(best + a, packed);
  }
}

__global__ void atss_finalize_kernel(const u64* best, const uint8_t* flags, int64_t n, int64_t* assigned,
                                     float* max_iou) {
  const int64_t a = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (a >= n) return;
  const u64 p = best[a];
  if (p) {
    assigned[a] = static_cast<int64_t>(0xffffffffULL - (p & 0xffffffffULL)) + 1;
    max_iou[a] = key_float(static_cast<uint32_t>(p >> 32));
  } else {
    assigned[a] = flags[a] ? -1 : 0;
    max_iou[a] = 0.f;
  }
}

}  // namespace

void atss_assign_cuda(const float* anchors, int64_t num_anchors, const std::vector<int64_t>& level_sizes,
                      const float* gt, int64_t num_gt, const float* ignore, int64_t num_ignore, double ignore_iof_thr,
                      int64_t topk, int inside_mode, uint8_t* flags, uint64_t* best, int64_t* assigned, float* max_iou,
                      int device, uintptr_t stream) {
  require(num_anchors >= 0 && num_anchors < (int64_t(1) << 31), "number of anchors must be in [0, 2^31)");
  require(num_gt >= 0 && num_gt < (int64_t(1) << 31) && num_ignore >= 0, "box counts must be non-negative");
  require(!level_sizes.empty() && level_sizes.size() <= kMaxLevels, "CUDA ATSS takes 1 to 16 levels");
  require(topk >= 1 && topk <= kMaxTopk, "topk must be in [1, 32]");
  require(inside_mode == kInsideScrfd || inside_mode == kInsideMmdet, "inside must be 'scrfd' or 'mmdet'");
  Levels levels{};
  int64_t total = 0;
  for (size_t l = 0; l < level_sizes.size(); ++l) {
    require(level_sizes[l] >= 0, "anchors per level must be non-negative");
    levels.size[l] = level_sizes[l];
    total += level_sizes[l];
  }
  require(total == num_anchors, "anchors per level must sum to the number of anchors");
  if (num_anchors == 0) return;
  cudaStream_t s = begin_launch(device, stream);
  const unsigned int blocks = blocks_for(num_anchors, kThreads);
  if (num_ignore > 0) {
    atss_flags_kernel<<<blocks, kThreads, 0, s>>>(anchors, num_anchors, ignore, num_ignore,
                                                 static_cast<float>(ignore_iof_thr), flags);
    end_launch("atss flags kernel");
  } else {
    cuda_check(cudaMemsetAsync(flags, 0, static_cast<size_t>(num_anchors), s), "cudaMemsetAsync");
  }
  cuda_check(cudaMemsetAsync(best, 0, static_cast<size_t>(num_anchors) * sizeof(uint64_t), s), "cudaMemsetAsync");
  if (num_gt > 0) {
    atss_gt_kernel<<<static_cast<unsigned int>(num_gt), kThreads, 0, s>>>(
        anchors, levels, static_cast<int>(level_sizes.size()), gt, flags, static_cast<int>(topk), inside_mode,
        reinterpret_cast<u64*>(best));
    end_launch("atss kernel");
  }
  atss_finalize_kernel<<<blocks, kThreads, 0, s>>>(reinterpret_cast<const u64*>(best), flags, num_anchors, assigned,
                                                  max_iou);
  end_launch("atss finalize kernel");
}

}  // namespace ops
}  // namespace pyddsar
