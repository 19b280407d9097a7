// pybind11 bindings of the detection kernels: thin wrappers taking tensor addresses (uintptr_t from
// tensor.data_ptr()), sizes and, for CUDA, the device index and a cudaStream_t as an integer.
// pyddsar/ops.py allocates every output and validates tensors before calling these.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <vector>

#include "ops/ops.h"

#ifdef PYDDSAR_WITH_CUDA
#include "ops_cuda.h"
#endif

namespace py = pybind11;

namespace {

template <typename T>
T* ptr(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

void check_same_length(const std::vector<int64_t>& a, const std::vector<int64_t>& b, const char* what) {
  if (a.size() != b.size()) throw std::invalid_argument(std::string(what) + " must have the same length");
}

}  // namespace

void bind_ops(py::module_& m) {
  using namespace pyddsar::ops;

  m.def(
      "anchor_count",
      [](const std::vector<int64_t>& heights, const std::vector<int64_t>& widths, int64_t per_location) {
        check_same_length(heights, widths, "heights and widths");
        return anchor_count(heights.data(), widths.data(), static_cast<int64_t>(heights.size()), per_location);
      },
      py::arg("heights"), py::arg("widths"), py::arg("per_location"));
  m.def(
      "anchors_cpu",
      [](const std::vector<int64_t>& heights, const std::vector<int64_t>& widths, const std::vector<int64_t>& strides,
         const std::vector<float>& sizes, int64_t num_sizes, uintptr_t out) {
        check_same_length(heights, widths, "heights and widths");
        check_same_length(heights, strides, "heights and strides");
        if (num_sizes <= 0 || sizes.size() != heights.size() * static_cast<size_t>(num_sizes))
          throw std::invalid_argument("sizes must hold num_sizes anchor sides per level");
        anchors_cpu(heights.data(), widths.data(), strides.data(), sizes.data(), static_cast<int64_t>(heights.size()),
                    num_sizes, ptr<float>(out));
      },
      py::arg("heights"), py::arg("widths"), py::arg("strides"), py::arg("sizes"), py::arg("num_sizes"),
      py::arg("out"));
  m.def(
      "anchor_centers_cpu",
      [](const std::vector<int64_t>& heights, const std::vector<int64_t>& widths, const std::vector<int64_t>& strides,
         int64_t num_anchors, uintptr_t out) {
        check_same_length(heights, widths, "heights and widths");
        check_same_length(heights, strides, "heights and strides");
        anchor_centers_cpu(heights.data(), widths.data(), strides.data(), static_cast<int64_t>(heights.size()),
                           num_anchors, ptr<float>(out));
      },
      py::arg("heights"), py::arg("widths"), py::arg("strides"), py::arg("num_anchors"), py::arg("out"));
  m.def(
      "distance2bbox_cpu",
      [](uintptr_t points, uintptr_t distances, int64_t n, bool clamp, float max_h, float max_w, uintptr_t out) {
        py::gil_scoped_release release;
        distance2bbox_cpu(ptr<const float>(points), ptr<const float>(distances), n, clamp, max_h, max_w,
                          ptr<float>(out));
      },
      py::arg("points"), py::arg("distances"), py::arg("n"), py::arg("clamp"), py::arg("max_h"), py::arg("max_w"),
      py::arg("out"));
  m.def(
      "bbox2distance_cpu",
      [](uintptr_t points, uintptr_t boxes, int64_t n, float max_dis, float eps, uintptr_t out) {
        py::gil_scoped_release release;
        bbox2distance_cpu(ptr<const float>(points), ptr<const float>(boxes), n, max_dis, eps, ptr<float>(out));
      },
      py::arg("points"), py::arg("boxes"), py::arg("n"), py::arg("max_dis"), py::arg("eps"), py::arg("out"));
  m.def(
      "box_iou_cpu",
      [](uintptr_t a, int64_t n, uintptr_t b, int64_t mm, uintptr_t out) {
        py::gil_scoped_release release;
        box_iou_cpu(ptr<const float>(a), n, ptr<const float>(b), mm, ptr<float>(out));
      },
      py::arg("a"), py::arg("n"), py::arg("b"), py::arg("m"), py::arg("out"));
  m.def(
      "nms_cpu",
      [](uintptr_t boxes, uintptr_t scores, uintptr_t idxs, int64_t n, double iou_threshold, uintptr_t keep,
         int64_t max_keep) {
        py::gil_scoped_release release;
        return nms_cpu(ptr<const float>(boxes), ptr<const float>(scores), ptr<const int64_t>(idxs), n, iou_threshold,
                       ptr<int64_t>(keep), max_keep);
      },
      py::arg("boxes"), py::arg("scores"), py::arg("idxs"), py::arg("n"), py::arg("iou_threshold"), py::arg("keep"),
      py::arg("max_keep") = -1,
      "idxs = 0 for plain NMS; stops after max_keep kept boxes (-1: no limit); returns the number of kept "
      "indices written to keep");
  m.def(
      "atss_assign_cpu",
      [](uintptr_t anchors, int64_t num_anchors, const std::vector<int64_t>& level_sizes, uintptr_t gt, int64_t num_gt,
         uintptr_t ignore, int64_t num_ignore, double ignore_iof_thr, int64_t topk, int inside_mode,
         uintptr_t assigned, uintptr_t max_iou) {
        py::gil_scoped_release release;
        atss_assign_cpu(ptr<const float>(anchors), num_anchors, level_sizes.data(),
                        static_cast<int64_t>(level_sizes.size()), ptr<const float>(gt), num_gt,
                        ptr<const float>(ignore), num_ignore, ignore_iof_thr, topk, inside_mode,
                        ptr<int64_t>(assigned), ptr<float>(max_iou));
      },
      py::arg("anchors"), py::arg("num_anchors"), py::arg("level_sizes"), py::arg("gt"), py::arg("num_gt"),
      py::arg("ignore"), py::arg("num_ignore"), py::arg("ignore_iof_thr"), py::arg("topk"), py::arg("inside_mode"),
      py::arg("assigned"), py::arg("max_iou"));

#ifdef PYDDSAR_WITH_CUDA
  m.def(
      "anchors_cuda",
      [](const std::vector<int64_t>& heights, const std::vector<int64_t>& widths, const std::vector<int64_t>& strides,
         const std::vector<float>& sizes, int64_t num_sizes, uintptr_t out, int device, uintptr_t stream) {
        anchors_cuda(heights, widths, strides, sizes, num_sizes, false, ptr<float>(out), device, stream);
      },
      py::arg("heights"), py::arg("widths"), py::arg("strides"), py::arg("sizes"), py::arg("num_sizes"),
      py::arg("out"), py::arg("device"), py::arg("stream"));
  m.def(
      "anchor_centers_cuda",
      [](const std::vector<int64_t>& heights, const std::vector<int64_t>& widths, const std::vector<int64_t>& strides,
         int64_t num_anchors, uintptr_t out, int device, uintptr_t stream) {
        anchors_cuda(heights, widths, strides, {}, num_anchors, true, ptr<float>(out), device, stream);
      },
      py::arg("heights"), py::arg("widths"), py::arg("strides"), py::arg("num_anchors"), py::arg("out"),
      py::arg("device"), py::arg("stream"));
  m.def(
      "distance2bbox_cuda",
      [](uintptr_t points, uintptr_t distances, int64_t n, bool clamp, float max_h, float max_w, uintptr_t out,
         int device, uintptr_t stream) {
        distance2bbox_cuda(ptr<const float>(points), ptr<const float>(distances), n, clamp, max_h, max_w,
                           ptr<float>(out), device, stream);
      },
      py::arg("points"), py::arg("distances"), py::arg("n"), py::arg("clamp"), py::arg("max_h"), py::arg("max_w"),
      py::arg("out"), py::arg("device"), py::arg("stream"));
  m.def(
      "bbox2distance_cuda",
      [](uintptr_t points, uintptr_t boxes, int64_t n, float max_dis, float eps, uintptr_t out, int device,
         uintptr_t stream) {
        bbox2distance_cuda(ptr<const float>(points), ptr<const float>(boxes), n, max_dis, eps, ptr<float>(out),
                           device, stream);
      },
      py::arg("points"), py::arg("boxes"), py::arg("n"), py::arg("max_dis"), py::arg("eps"), py::arg("out"),
      py::arg("device"), py::arg("stream"));
  m.def(
      "box_iou_cuda",
      [](uintptr_t a, int64_t n, uintptr_t b, int64_t mm, uintptr_t out, int device, uintptr_t stream) {
        box_iou_cuda(ptr<const float>(a), n, ptr<const float>(b), mm, ptr<float>(out), device, stream);
      },
      py::arg("a"), py::arg("n"), py::arg("b"), py::arg("m"), py::arg("out"), py::arg("device"), py::arg("stream"));
  m.def(
      "nms_cuda",
      [](uintptr_t sorted_boxes, uintptr_t sorted_idxs, int64_t n, double iou_threshold, uintptr_t workspace,
         uintptr_t keep, uintptr_t count, int device, uintptr_t stream) {
        nms_cuda(ptr<const float>(sorted_boxes), ptr<const int64_t>(sorted_idxs), n, iou_threshold,
                 ptr<uint64_t>(workspace), ptr<int64_t>(keep), ptr<int64_t>(count), device, stream);
      },
      py::arg("sorted_boxes"), py::arg("sorted_idxs"), py::arg("n"), py::arg("iou_threshold"), py::arg("workspace"),
      py::arg("keep"), py::arg("count"), py::arg("device"), py::arg("stream"));
  m.def(
      "atss_assign_cuda",
      [](uintptr_t anchors, int64_t num_anchors, const std::vector<int64_t>& level_sizes, uintptr_t gt, int64_t num_gt,
         uintptr_t ignore, int64_t num_ignore, double ignore_iof_thr, int64_t topk, int inside_mode, uintptr_t flags,
         uintptr_t best, uintptr_t assigned, uintptr_t max_iou, int device, uintptr_t stream) {
        atss_assign_cuda(ptr<const float>(anchors), num_anchors, level_sizes, ptr<const float>(gt), num_gt,
                         ptr<const float>(ignore), num_ignore, ignore_iof_thr, topk, inside_mode, ptr<uint8_t>(flags),
                         ptr<uint64_t>(best), ptr<int64_t>(assigned), ptr<float>(max_iou), device, stream);
      },
      py::arg("anchors"), py::arg("num_anchors"), py::arg("level_sizes"), py::arg("gt"), py::arg("num_gt"),
      py::arg("ignore"), py::arg("num_ignore"), py::arg("ignore_iof_thr"), py::arg("topk"), py::arg("inside_mode"),
      py::arg("flags"), py::arg("best"), py::arg("assigned"), py::arg("max_iou"), py::arg("device"),
      py::arg("stream"));
#endif
}
