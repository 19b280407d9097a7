// pybind11 bindings of the DDSAR scorer: thin wrappers. Every C++ exception becomes a Python
// exception (std::invalid_argument -> ValueError); batch calls score without the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "arch/native_arch.h"
#include "fs_probe.h"
#include "score.h"

namespace py = pybind11;
using namespace pyddsar;

namespace {

ScoreConfig make_config(int variant, double alpha, const std::vector<double>& lambdas, int64_t width, int64_t height,
                        bool literal, int grid, int depth, int filters) {
  if (variant != 0 && variant != 1) throw std::invalid_argument("variant must be 0 (paper) or 1 (damofd-release)");
  if (lambdas.size() != 5)
    throw std::invalid_argument("lambdas must hold 5 values, got " + std::to_string(lambdas.size()));
  ScoreConfig cfg;
  cfg.variant = static_cast<ScoreVariant>(variant);
  cfg.alpha = alpha;
  for (int i = 0; i < 5; ++i) cfg.lambdas[i] = lambdas[i];
  cfg.width = width;
  cfg.height = height;
  cfg.probe.literal = literal;
  cfg.probe.grid = grid;
  cfg.probe.depth = depth;
  cfg.probe.filters = filters;
  return cfg;
}

// Scores archs[i] for every i; an invalid one raises ValueError naming its index.
template <class Get>
std::vector<double> score_all(Scorer& scorer, size_t n, Get&& get) {
  std::vector<double> out(n);
  py::gil_scoped_release release;
  for (size_t i = 0; i < n; ++i) {
    try {
      out[i] = scorer(get(i));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("archs[" + std::to_string(i) + "]: " + e.what());
    }
  }
  return out;
}

py::list layers_to_python(const std::vector<StageLayer>& layers) {
  py::list out;
  for (const StageLayer& l : layers) out.append(py::make_tuple(l.h, l.w, l.d, l.kernel, l.stride));
  return out;
}

}  // namespace

void bind_score(py::module_& m) {
  // the limits Python validates against before calling in (one statement of each)
  m.attr("MAX_PROBE_GRID") = kMaxProbeGrid;
  m.attr("MAX_PROBE_DEPTH") = kMaxProbeDepth;
  m.attr("MAX_PROBE_FILTERS") = kMaxProbeFilters;
  m.attr("LAMBDA_SUM_TOLERANCE") = kLambdaSumTolerance;
  py::class_<Scorer>(m, "Scorer")
      .def(py::init([](int variant, double alpha, const std::vector<double>& lambdas, int64_t width, int64_t height,
                       bool literal, int grid, int depth, int filters) {
             const ScoreConfig cfg = make_config(variant, alpha, lambdas, width, height, literal, grid, depth, filters);
             py::gil_scoped_release release;  // preparing a large probe may take seconds
             return new Scorer(cfg);
           }),
           py::arg("variant"), py::arg("alpha"), py::arg("lambdas"), py::arg("width"), py::arg("height"),
           py::arg("literal") = false, py::arg("grid") = 3, py::arg("depth") = 1, py::arg("filters") = 7)
      .def("__call__", [](Scorer& s, const NativeArch& a) { return s(a.arch); }, py::arg("arch"))
      .def(
          "batch",
          [](Scorer& s, const std::vector<const NativeArch*>& archs) {
            for (size_t i = 0; i < archs.size(); ++i)
              if (!archs[i]) throw std::invalid_argument("archs[" + std::to_string(i) + "] is None");
            return score_all(s, archs.size(), [&](size_t i) -> const Arch& { return archs[i]->arch; });
          },
          py::arg("archs"), "scores of NativeArch handles, computed without the GIL")
      .def(
          "batch_tuples",
          [](Scorer& s, const std::vector<std::vector<BlockTuple>>& archs) {
            std::vector<Arch> parsed(archs.size());
            for (size_t i = 0; i < archs.size(); ++i) {
              try {
                parsed[i] = arch_from_tuples(archs[i]);
              } catch (const std::invalid_argument& e) {
                throw std::invalid_argument("archs[" + std::to_string(i) + "]: " + e.what());
              }
            }
            return score_all(s, parsed.size(), [&](size_t i) -> const Arch& { return parsed[i]; });
          },
          py::arg("archs"),
          "scores of architectures given as lists of block tuples (type, kernel, in, out, stride, bottleneck, "
          "layers, expansion), computed without the GIL")
      .def(
          "repeat",
          [](Scorer& s, const NativeArch& a, int64_t repeats) {
            // For benchmarks: the native score `repeats` times with no Python in between.
            if (repeats < 1) throw std::invalid_argument("repeats must be positive");
            py::gil_scoped_release release;
            double acc = 0;
            for (int64_t i = 0; i < repeats; ++i) acc += s(a.arch);
            return acc / double(repeats);
          },
          py::arg("arch"), py::arg("repeats"))
      .def(
          "report",
          [](Scorer& s, const NativeArch& a) {
            const std::vector<StageScore> stages = s.report(a.arch);
            py::list out;
            for (const StageScore& st : stages)
              out.append(py::dict(py::arg("layers") = layers_to_python(st.layers), py::arg("sae") = st.sae,
                                  py::arg("fs") = st.fs, py::arg("sar") = st.sar, py::arg("lambda") = st.lambda,
                                  py::arg("weighted") = st.weighted));
            return out;
          },
          py::arg("arch"))
      .def("fs_layer", &Scorer::fs_layer, py::arg("kernel"), py::arg("stride"), py::arg("input_depth"),
           "FS_l this scorer adds for one conv (kernel, stride, input depth)");
}
