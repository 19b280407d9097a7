// pybind11 bindings of the native evolutionary search. The Python layer (pyddsar/search.py) drives
// `run` in chunks so it can show progress, write checkpoints and stop cleanly on Ctrl-C.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <map>
#include <thread>
#include <vector>

#include "arch/native_arch.h"
#include "evolution.h"
#include "score/score.h"

namespace py = pybind11;
using namespace pyddsar;

namespace {

std::vector<BlockTuple> arch_to_tuples(const Arch& arch) {
  std::vector<BlockTuple> out;
  for (const Block& b : arch)
    out.emplace_back(static_cast<int>(b.type), b.kernel, b.in, b.out, b.stride, b.bottleneck, b.layers, b.expansion);
  return out;
}

// A native Scorer (each Evolution owns a copy: scorers are not thread-safe), or any Python
// callable taking a list of block tuples and returning a float (the slower path: it takes the GIL).
Evolution::ScoreFn make_score_fn(const py::object& score) {
  if (py::isinstance<Scorer>(score)) {
    auto scorer = std::make_shared<Scorer>(score.cast<const Scorer&>());
    return [scorer](const Arch& a) { return (*scorer)(a); };
  }
  if (!PyCallable_Check(score.ptr())) throw std::invalid_argument("score must be a native Scorer or a callable");
  auto fn = std::make_shared<py::object>(score);
  return [fn](const Arch& a) {
    py::gil_scoped_acquire gil;
    py::object r = (*fn)(arch_to_tuples(a));
    try {
      return r.cast<double>();
    } catch (const py::cast_error&) {
      throw py::type_error("score_fn must return a float");
    }
  };
}

struct PyEvolution {
  std::unique_ptr<Evolution> evo;
  bool native;  // scoring needs no GIL: may run on its own thread
};

py::list population_to_python(const Evolution& e) {
  py::list out;
  for (const Member& m : e.population()) out.append(py::make_tuple(arch_to_tuples(m.arch), m.score));
  return out;
}

}  // namespace

void bind_search(py::module_& m) {
  py::class_<SearchSpace>(m, "SearchSpace")
      .def(py::init<>())
      .def_property(
          "types",
          [](const SearchSpace& s) {
            std::vector<int> v;
            for (BlockType t : s.types) v.push_back(static_cast<int>(t));
            return v;
          },
          [](SearchSpace& s, const std::vector<int>& v) {
            s.types.clear();
            for (int t : v) {
              if (t < 0 || t > 3) throw std::invalid_argument("block type code must be 0..3");
              s.types.push_back(static_cast<BlockType>(t));
            }
          })
      .def_readwrite("kernels", &SearchSpace::kernels)
      .def_readwrite("expansions", &SearchSpace::expansions)
      .def_readwrite("min_channels", &SearchSpace::min_channels)
      .def_readwrite("max_channels", &SearchSpace::max_channels)
      .def_readwrite("min_bottleneck", &SearchSpace::min_bottleneck)
      .def_readwrite("max_bottleneck", &SearchSpace::max_bottleneck)
      .def_readwrite("max_block_layers", &SearchSpace::max_block_layers)
      .def_readwrite("max_total_layers", &SearchSpace::max_total_layers)
      .def_readwrite("mutate_stem", &SearchSpace::mutate_stem)
      .def_readwrite("stem_min_channels", &SearchSpace::stem_min_channels)
      .def_readwrite("stem_max_channels", &SearchSpace::stem_max_channels)
      .def_readwrite("stem_max_layers", &SearchSpace::stem_max_layers)
      .def_readwrite("channel_factors", &SearchSpace::channel_factors)
      .def_readwrite("max_layer_step", &SearchSpace::max_layer_step)
      .def("validate", &SearchSpace::validate)
      .def("why_outside", [](const SearchSpace& s, const NativeArch& a) { return s.why_outside(a.arch); })
      .def(
          "mutate",
          [](const SearchSpace& s, const NativeArch& a, uint64_t seed, int64_t times) {
            // For tests: `times` successive mutations from one random engine, each of the parent.
            s.validate();
            Rng rng(seed);
            std::vector<std::vector<BlockTuple>> out;
            for (int64_t i = 0; i < times; ++i) out.push_back(arch_to_tuples(mutate(a.arch, s, rng)));
            return out;
          },
          py::arg("arch"), py::arg("seed"), py::arg("times"));

  py::class_<PyEvolution>(m, "Evolution")
      .def(py::init([](const SearchSpace& space, int64_t budget_flops, int64_t budget_params, int64_t width,
                       int64_t height, int64_t population, int64_t iterations, uint64_t seed, int64_t log_every,
                       const NativeArch& seed_arch, const py::object& score) {
             SearchConfig cfg;
             cfg.space = space;
             cfg.budget_flops = budget_flops;
             cfg.budget_params = budget_params;
             cfg.width = width;
             cfg.height = height;
             cfg.population = population;
             cfg.iterations = iterations;
             cfg.seed = seed;
             cfg.log_every = log_every;
             const bool native = py::isinstance<Scorer>(score);
             return PyEvolution{std::make_unique<Evolution>(cfg, seed_arch.arch, make_score_fn(score)), native};
           }),
           py::arg("space"), py::arg("budget_flops"), py::arg("budget_params"), py::arg("width"), py::arg("height"),
           py::arg("population"), py::arg("iterations"), py::arg("seed"), py::arg("log_every"), py::arg("seed_arch"),
           py::arg("score"))
      .def(
          "run",
          [](PyEvolution& e, int64_t steps) {
            if (steps < 0) throw std::invalid_argument("steps must be >= 0");
            py::gil_scoped_release release;  // a Python score_fn takes the GIL back per call
            e.evo->initialise();
            return e.evo->run(steps);
          },
          py::arg("steps"))
      .def_property_readonly("done", [](const PyEvolution& e) { return e.evo->done(); })
      .def_property_readonly("iteration", [](const PyEvolution& e) { return e.evo->iteration(); })
      .def_property_readonly("native", [](const PyEvolution& e) { return e.native; })
      .def("best",
           [](const PyEvolution& e) {
             const Member& b = e.evo->best();
             return py::make_tuple(arch_to_tuples(b.arch), b.score);
           })
      .def("mean_score", [](const PyEvolution& e) { return e.evo->mean_score(); })
      .def("population", [](const PyEvolution& e) { return population_to_python(*e.evo); })
      .def("history",
           [](const PyEvolution& e) {
             std::vector<std::tuple<int64_t, double, double>> out;
             for (const HistoryPoint& p : e.evo->history()) out.emplace_back(p.iteration, p.best, p.mean);
             return out;
           })
      .def("counters",
           [](const PyEvolution& e) {
             const SearchCounters& c = e.evo->counters();
             return py::dict(py::arg("accepted") = c.accepted, py::arg("over_budget") = c.over_budget,
                             py::arg("outside_space") = c.outside_space, py::arg("unscorable") = c.unscorable);
           })
      .def("rng_state", [](const PyEvolution& e) { return e.evo->rng_state(); })
      .def(
          "restore",
          [](PyEvolution& e, const std::vector<std::pair<std::vector<BlockTuple>, double>>& population,
             int64_t iteration, const std::vector<std::tuple<int64_t, double, double>>& history,
             const std::map<std::string, int64_t>& counters, const std::string& rng_state) {
            std::vector<Member> members;
            for (size_t i = 0; i < population.size(); ++i) {
              try {
                members.push_back(Member{arch_from_tuples(population[i].first), population[i].second});
              } catch (const std::invalid_argument& err) {
                throw std::invalid_argument("checkpoint population[" + std::to_string(i) + "]: " + err.what());
              }
            }
            std::vector<HistoryPoint> hist;
            for (const auto& h : history) hist.push_back(HistoryPoint{std::get<0>(h), std::get<1>(h), std::get<2>(h)});
            SearchCounters c;
            auto get = [&](const char* k) {
              auto it = counters.find(k);
              if (it == counters.end()) throw std::invalid_argument(std::string("checkpoint counters lack ") + k);
              return it->second;
            };
            c.accepted = get("accepted");
            c.over_budget = get("over_budget");
            c.outside_space = get("outside_space");
            c.unscorable = get("unscorable");
            e.evo->restore(std::move(members), iteration, std::move(hist), c, rng_state);
          },
          py::arg("population"), py::arg("iteration"), py::arg("history"), py::arg("counters"), py::arg("rng_state"));

  m.def(
      "run_parallel",
      [](std::vector<PyEvolution*> evos, int64_t steps) {
        // Independent searches (different seeds) on their own threads; native scorers only.
        for (size_t i = 0; i < evos.size(); ++i) {
          if (!evos[i]) throw std::invalid_argument("evolutions[" + std::to_string(i) + "] is None");
          if (!evos[i]->native) throw std::invalid_argument("run_parallel needs native scorers (no Python score_fn)");
        }
        std::vector<std::string> errors(evos.size());
        {
          py::gil_scoped_release release;
          std::vector<std::thread> threads;
          for (size_t i = 0; i < evos.size(); ++i)
            threads.emplace_back([&, i] {
              try {
                evos[i]->evo->initialise();
                evos[i]->evo->run(steps);
              } catch (const std::exception& err) {
                errors[i] = err.what();
              }
            });
          for (auto& t : threads) t.join();
        }
        for (const std::string& err : errors)
          if (!err.empty()) throw std::invalid_argument(err);
      },
      py::arg("evolutions"), py::arg("steps"));
}
