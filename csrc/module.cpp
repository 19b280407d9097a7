// The pybind11 module: thin bindings only. C++ exceptions become Python exceptions
// (std::invalid_argument -> ValueError), so bad input never aborts the interpreter.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <tuple>

#include "arch/arch.h"
#include "arch/native_arch.h"
#include "regions/dp_estimate.h"
#include "regions/frontier_dp.h"
#include "regions/linear_regions.h"
#include "regions/weights.h"

#ifdef PYDDSAR_WITH_CUDA
#include "device_info.h"
#endif

namespace py = pybind11;
using namespace pyddsar;

void bind_ops(py::module_& m);    // csrc/ops/ops_bindings.cpp
void bind_score(py::module_& m);  // csrc/score/score_bindings.cpp
void bind_search(py::module_& m);  // csrc/search/search_bindings.cpp

namespace {

py::int_ to_python_int(const BigUInt& v) {
  const std::string hex = v.to_hex();
  PyObject* obj = PyLong_FromString(hex.c_str(), nullptr, 16);
  if (!obj) throw py::error_already_set();
  return py::reinterpret_steal<py::int_>(obj);
}

ConvLayer make_layer(int64_t h0, int64_t w0, int64_t d0, int64_t f1, int64_t f2, int64_t stride, int64_t d1) {
  ConvLayer layer{h0, w0, d0, f1, f2, stride, d1};
  layer.validate();
  return layer;
}

DpLimits make_limits(int64_t max_states, int64_t max_bytes = 0, double max_seconds = 0) {
  DpLimits limits;
  if (max_states > 0) limits.max_states = max_states;
  if (max_bytes > 0) limits.max_bytes = max_bytes;
  if (!(max_seconds >= 0) || !std::isfinite(max_seconds))
    throw std::invalid_argument("max_seconds must be a finite number >= 0 (0: the built-in limit)");
  if (max_seconds > 0) limits.max_seconds = max_seconds;
  // Ctrl-C: a quick look at Python's signals now and then (the count runs without the GIL)
  limits.poll = []() {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  };
  return limits;
}

}  // namespace

namespace {

void check_resolution(int64_t width, int64_t height) {
  if (width <= 0 || height <= 0 || width > kMaxResolution || height > kMaxResolution)
    throw std::invalid_argument("resolution must be positive and at most " + std::to_string(kMaxResolution) + ", got " +
                                std::to_string(width) + "x" +
                                std::to_string(height));
}

void bind_arch(py::module_& m) {
  m.attr("MAX_RESOLUTION") = kMaxResolution;
  py::class_<NativeArch>(m, "NativeArch")
      .def(py::init([](const std::vector<BlockTuple>& blocks) { return NativeArch{arch_from_tuples(blocks)}; }),
           py::arg("blocks"))
      .def(
          "flops",
          [](const NativeArch& n, int64_t width, int64_t height) {
            check_resolution(width, height);
            return arch_cost(n.arch, width, height).flops;
          },
          py::arg("width"), py::arg("height"))
      .def("params", [](const NativeArch& n) { return arch_cost(n.arch, 32, 32).params; })
      .def(
          "breakdown",
          [](const NativeArch& n, int64_t width, int64_t height) {
            check_resolution(width, height);
            std::vector<Cost> per_block;
            arch_cost(n.arch, width, height, &per_block);
            std::vector<std::pair<int64_t, int64_t>> out;
            for (const Cost& c : per_block) out.emplace_back(c.flops, c.params);
            return out;
          },
          py::arg("width"), py::arg("height"))
      .def(
          "convs",
          [](const NativeArch& n, int64_t width, int64_t height) {
            check_resolution(width, height);
            py::list out;
            for (const ConvOp& op : expand(n.arch, width, height))
              out.append(py::dict(py::arg("block") = op.block, py::arg("cin") = op.cin, py::arg("cout") = op.cout,
                                  py::arg("kernel") = op.kernel, py::arg("stride") = op.stride,
                                  py::arg("groups") = op.groups, py::arg("h_in") = op.h_in,
                                  py::arg("w_in") = op.w_in, py::arg("h_out") = op.h_out,
                                  py::arg("w_out") = op.w_out, py::arg("shortcut") = op.shortcut));
            return out;
          },
          py::arg("width"), py::arg("height"))
      .def(
          "flops_repeated",
          [](const NativeArch& n, int64_t width, int64_t height, int64_t repeats) {
            // For benchmarks: the native cost walk `repeats` times, no Python in between.
            check_resolution(width, height);
            int64_t acc = 0;
            py::gil_scoped_release release;
            for (int64_t i = 0; i < repeats; ++i) acc += arch_cost(n.arch, width, height).flops;
            return acc;
          },
          py::arg("width"), py::arg("height"), py::arg("repeats"));
  m.def("round8", &round8);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "pyddsar native core";

  m.def(
      "linear_regions",
      [](int64_t h0, int64_t w0, int64_t d0, int64_t f1, int64_t f2, int64_t stride, int64_t d1, int64_t max_states,
         int64_t max_bytes, double max_seconds) {
        ConvLayer layer = make_layer(h0, w0, d0, f1, f2, stride, d1);
        const DpLimits limits = make_limits(max_states, max_bytes, max_seconds);
        BigUInt n;
        {
          py::gil_scoped_release release;
          n = count_linear_regions(layer, limits);
        }
        return to_python_int(n);
      },
      py::arg("h0"), py::arg("w0"), py::arg("d0"), py::arg("f1"), py::arg("f2"), py::arg("stride"), py::arg("d1"),
      py::arg("max_states") = 0, py::arg("max_bytes") = 0, py::arg("max_seconds") = 0.0);

  m.def(
      "log_linear_regions",
      [](int64_t h0, int64_t w0, int64_t d0, int64_t f1, int64_t f2, int64_t stride, int64_t d1, int64_t max_states,
         double max_seconds) {
        ConvLayer layer = make_layer(h0, w0, d0, f1, f2, stride, d1);
        const DpLimits limits = make_limits(max_states, 0, max_seconds);
        py::gil_scoped_release release;
        return log_linear_regions(layer, limits);
      },
      py::arg("h0"), py::arg("w0"), py::arg("d0"), py::arg("f1"), py::arg("f2"), py::arg("stride"), py::arg("d1"),
      py::arg("max_states") = 0, py::arg("max_seconds") = 0.0);

  m.def(
      "frontier_dp_stats",
      [](int64_t h0, int64_t w0, int64_t d0, int64_t f1, int64_t f2, int64_t stride, int64_t d1, bool exact,
         int64_t max_states, int64_t max_bytes, double max_seconds) {
        // The cost of the frontier dynamic program on this layer as given (raster order along w):
        // (peak live states, transitions, peak bytes of the two state tables, widest row). For the tests of the
        // work estimate and for measuring it.
        ConvLayer layer = make_layer(h0, w0, d0, f1, f2, stride, d1);
        const DpLimits limits = make_limits(max_states, max_bytes, max_seconds);
        DpStats stats;
        py::gil_scoped_release release;
        if (exact)
          frontier_dp<ExactWeight>(layer, limits, &stats);
        else
          frontier_dp<LogWeight>(layer, limits, &stats);
        return std::make_tuple(stats.peak_states, stats.transitions, stats.peak_bytes, stats.peak_width);
      },
      py::arg("h0"), py::arg("w0"), py::arg("d0"), py::arg("f1"), py::arg("f2"), py::arg("stride"), py::arg("d1"),
      py::arg("exact") = true, py::arg("max_states") = 0, py::arg("max_bytes") = 0, py::arg("max_seconds") = 0.0);

  m.def(
      "estimate_frontier_dp",
      [](int64_t h0, int64_t w0, int64_t d0, int64_t f1, int64_t f2, int64_t stride, int64_t d1, bool exact) {
        // The up-front estimate of frontier_dp on this layer as given: (known, states, bytes,
        // seconds, widest strip measured).
        ConvLayer layer = make_layer(h0, w0, d0, f1, f2, stride, d1);
        py::gil_scoped_release release;
        const DpLimits limits = make_limits(0);
        const DpEstimate e = exact ? estimate_frontier_dp<ExactWeight>(layer, limits)
                                   : estimate_frontier_dp<LogWeight>(layer, limits);
        return std::make_tuple(e.known, e.states, e.bytes, e.seconds, e.strips);
      },
      py::arg("h0"), py::arg("w0"), py::arg("d0"), py::arg("f1"), py::arg("f2"), py::arg("stride"), py::arg("d1"),
      py::arg("exact") = true);

  m.def("built_with_cuda", []() {
#ifdef PYDDSAR_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
  m.def("cuda_versions", []() {
    int runtime = 0, driver = 0;
#ifdef PYDDSAR_WITH_CUDA
    cuda_versions(&runtime, &driver);
#endif
    return py::make_tuple(runtime, driver);
  });
  m.def("cuda_device_count", []() {
#ifdef PYDDSAR_WITH_CUDA
    return cuda_device_count();
#else
    return 0;
#endif
  });

  bind_arch(m);
  bind_ops(m);
  bind_score(m);
  bind_search(m);
}
