// CUDA launchers of the detection kernels: raw device pointers, sizes, the device index and a
// cudaStream_t passed as an integer (torch.cuda.current_stream().cuda_stream). The module links its
// own static CUDA runtime, whose current device is not torch's, so every launcher selects `device`
// first. Outputs and workspaces are allocated by the caller (pyddsar/ops.py, torch's allocator).
// Bad sizes or arguments throw std::invalid_argument; CUDA errors throw std::runtime_error.
#pragma once

#include <cstdint>
#include <vector>

namespace pyddsar {
namespace ops {

void anchors_cuda(const std::vector<int64_t>& heights, const std::vector<int64_t>& widths,
                  const std::vector<int64_t>& strides, const std::vector<float>& sizes, int64_t num_sizes,
                  bool centres_only, float* out, int device, uintptr_t stream);

void distance2bbox_cuda(const float* points, const float* distances, int64_t n, bool clamp, float max_h, float max_w,
                        float* out, int device, uintptr_t stream);
void bbox2distance_cuda(const float* points, const float* boxes, int64_t n, float max_dis, float eps, float* out,
                        int device, uintptr_t stream);

void box_iou_cuda(const float* a, int64_t n, const float* b, int64_t m, float* out, int device, uintptr_t stream);

// boxes sorted by decreasing score (and their idxs, or nullptr); workspace: n * words + words uint64
// with words = ceil(n / 64). Writes the kept positions (into the sorted order) to keep and their
// number to *count (device memory).
void nms_cuda(const float* sorted_boxes, const int64_t* sorted_idxs, int64_t n, double iou_threshold,
              uint64_t* workspace, int64_t* keep, int64_t* count, int device, uintptr_t stream);

// Workspaces: flags (N bytes), best (N uint64).
void atss_assign_cuda(const float* anchors, int64_t num_anchors, const std::vector<int64_t>& level_sizes,
                      const float* gt, int64_t num_gt, const float* ignore, int64_t num_ignore, double ignore_iof_thr,
                      int64_t topk, int inside_mode, uint8_t* flags, uint64_t* best, int64_t* assigned, float* max_iou,
                      int device, uintptr_t stream);

}  // namespace ops
}  // namespace pyddsar
