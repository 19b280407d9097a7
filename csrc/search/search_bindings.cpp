// pybind11 bindings of the native evolutionary search. The Python layer (pyddsar/search.py) drives
// `run` in chunks so it can show progress, write checkpoints and stop cleanly on Ctrl-C.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <memory>
#include <stdexcept>
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
  std::shared_ptr<std::atomic<bool>> busy = std::make_shared<std::atomic<bool>>(false);
};

// One thread at a time per Evolution: `run` releases the GIL, so a second Python thread could
// otherwise enter the same loop (or restore it) and corrupt its population.
class BusyGuard {
 public:
  explicit BusyGuard(const PyEvolution& e) : flag_(e.busy) {
    bool expected = false;
    if (!flag_->compare_exchange_strong(expected, true))
      throw std::runtime_error("this Evolution is running in another thread; use one Evolution per thread");
  }
  ~BusyGuard() { flag_->store(false); }
  BusyGuard(const BusyGuard&) = delete;
  BusyGuard& operator=(const BusyGuard&) = delete;

 private:
  std::shared_ptr<std::atomic<bool>> flag_;
};

// The Evolution of `e` for reading, refused while another thread runs it.
const Evolution& idle(const PyEvolution& e) {
  if (e.busy->load()) throw std::runtime_error("this Evolution is running in another thread; read it after run() returns");
  return *e.evo;
}

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
          "choices",
          [](const SearchSpace& s) {
            std::vector<std::tuple<int, int, int, int>> v;
            for (const BlockChoice& c : s.choices) v.emplace_back(static_cast<int>(c.type), c.kernel, c.expansion, c.weight);
            return v;
          },
          [](SearchSpace& s, const std::vector<std::tuple<int, int, int, int>>& v) {
            s.choices.clear();
            for (const auto& [type, kernel, expansion, weight] : v) {
              if (type < 0 || type > 3) throw std::invalid_argument("block type code must be 0..3");
              s.choices.push_back(BlockChoice{static_cast<BlockType>(type), kernel, expansion, weight});
            }
          })
      .def_readwrite("channel_factors", &SearchSpace::channel_factors)
      .def_readwrite("bottleneck_factors", &SearchSpace::bottleneck_factors)
      .def_readwrite("min_channels", &SearchSpace::min_channels)
      .def_readwrite("max_channels", &SearchSpace::max_channels)
      .def_readwrite("min_bottleneck", &SearchSpace::min_bottleneck)
      .def_readwrite("max_bottleneck", &SearchSpace::max_bottleneck)
      .def_readwrite("max_layer_step", &SearchSpace::max_layer_step)
      .def_readwrite("max_block_layers", &SearchSpace::max_block_layers)
      .def_readwrite("max_total_layers", &SearchSpace::max_total_layers)
      .def_readwrite("mutate_stem", &SearchSpace::mutate_stem)
      .def_readwrite("stem_min_channels", &SearchSpace::stem_min_channels)
      .def_readwrite("stem_max_channels", &SearchSpace::stem_max_channels)
      .def_readwrite("stem_max_layers", &SearchSpace::stem_max_layers)
      .def_readwrite("seed_children", &SearchSpace::seed_children)
      .def_readwrite("mutations", &SearchSpace::mutations)
      .def("validate", &SearchSpace::validate)
      .def("why_outside", [](const SearchSpace& s, const NativeArch& a) { return s.why_outside(a.arch); })
      .def(
          "mutate",
          [](const SearchSpace& s, const NativeArch& a, uint64_t seed, int64_t times, int count) {
            // For tests: `times` children of the parent from one random engine, `count` draws each.
            s.validate();
            if (count < 1) throw std::invalid_argument("count must be >= 1");
            Rng rng(seed);
            std::vector<std::vector<BlockTuple>> out;
            for (int64_t i = 0; i < times; ++i) out.push_back(arch_to_tuples(mutate(a.arch, s, rng, count)));
            return out;
          },
          py::arg("arch"), py::arg("seed"), py::arg("times"), py::arg("count") = 1)
      .def(
          "redraw",
          [](const SearchSpace& s, const NativeArch& a, int index, uint64_t seed, int64_t times) {
            // For tests: block `index` redrawn `times` times from one random engine (as block tuples).
            s.validate();
            if (index < 0 || index >= static_cast<int>(a.arch.size())) throw std::invalid_argument("index out of range");
            Rng rng(seed);
            std::vector<BlockTuple> out;
            for (int64_t i = 0; i < times; ++i) {
              Arch child = a.arch;
              redraw_block(child, index, s, rng);
              out.push_back(arch_to_tuples(child)[index]);
            }
            return out;
          },
          py::arg("arch"), py::arg("index"), py::arg("seed"), py::arg("times"));

  py::class_<Constraints>(m, "Constraints")
      .def(py::init<>())
      .def_readwrite("min_out", &Constraints::min_out)
      .def_readwrite("non_decreasing", &Constraints::non_decreasing)
      .def_readwrite("max_width_ratio", &Constraints::max_width_ratio)
      .def("validate", &Constraints::validate)
      .def("why_violated", [](const Constraints& c, const NativeArch& a) { return c.why_violated(a.arch); });

  m.def(
      "release_flops", [](const NativeArch& a, int64_t width, int64_t height) {
        if (width <= 0 || height <= 0) throw std::invalid_argument("resolution must be positive");
        return release_flops(a.arch, width, height);
      },
      py::arg("arch"), py::arg("width"), py::arg("height"));

  py::class_<LatencyTable, std::shared_ptr<LatencyTable>>(m, "LatencyTable")
      .def(py::init([](int64_t width, int64_t height) {
             if (width <= 0 || height <= 0) throw std::invalid_argument("latency table: resolution must be positive");
             auto t = std::make_shared<LatencyTable>();
             t->width = width;
             t->height = height;
             return t;
           }),
           py::arg("width"), py::arg("height"))
      .def(
          "add",
          [](LatencyTable& t, int op, int kernel, int stride, bool act, int64_t h, int64_t w, std::vector<int> cin,
             std::vector<int> cout, std::vector<double> ms) {
            t.add(LatencyKey{op, kernel, stride, act, h, w}, LatencyGrid{std::move(cin), std::move(cout), std::move(ms)});
          },
          py::arg("op"), py::arg("kernel"), py::arg("stride"), py::arg("act"), py::arg("h"), py::arg("w"),
          py::arg("cin"), py::arg("cout"), py::arg("ms"))
      .def("set_calibration", &LatencyTable::set_calibration, py::arg("scale"), py::arg("offset_ms"))
      .def("set_detector", &LatencyTable::set_detector, py::arg("levels"), py::arg("neck_channels"), py::arg("rest_ms"))
      .def_property_readonly("has_detector", &LatencyTable::has_detector)
      .def("__len__", &LatencyTable::size)
      .def(
          "lookup",
          [](const LatencyTable& t, int op, int kernel, int stride, bool act, int64_t h, int64_t w, int cin, int cout) {
            // (milliseconds, "") of one operation, interpolated as predict() does, or (nan, what is missing)
            std::string missing;
            const double ms = t.lookup(LatencyItem{LatencyKey{op, kernel, stride, act, h, w}, cin, cout}, &missing);
            return std::make_pair(ms, missing);
          },
          py::arg("op"), py::arg("kernel"), py::arg("stride"), py::arg("act"), py::arg("h"), py::arg("w"),
          py::arg("cin"), py::arg("cout"))
      .def(
          "predict",
          [](const LatencyTable& t, const NativeArch& a, bool detector) {
            // (milliseconds, "") or (nan, the first operation the table lacks)
            std::string missing;
            const double ms = t.predict(a.arch, detector, &missing);
            return std::make_pair(ms, missing);
          },
          py::arg("arch"), py::arg("detector") = false);

  m.def(
      "latency_items",
      [](const NativeArch& a, int64_t width, int64_t height) {
        // (op, kernel, stride, act, h, w, cin, cout) of every operation the latency table prices
        if (width <= 0 || height <= 0) throw std::invalid_argument("resolution must be positive");
        std::vector<std::tuple<int, int, int, bool, int64_t, int64_t, int, int>> out;
        for (const LatencyItem& it : latency_items(a.arch, width, height))
          out.emplace_back(it.key.op, it.key.kernel, it.key.stride, it.key.act, it.key.h, it.key.w, it.cin, it.cout);
        return out;
      },
      py::arg("arch"), py::arg("width"), py::arg("height"));

  py::class_<PyEvolution>(m, "Evolution")
      .def(py::init([](const SearchSpace& space, const Constraints& constraints, int64_t budget_flops,
                       int64_t budget_params, int64_t width, int64_t height, bool release_flops, int64_t population,
                       int64_t iterations, uint64_t seed, int64_t log_every, const NativeArch& seed_arch,
                       const py::object& score, std::shared_ptr<LatencyTable> latency, double budget_latency_ms,
                       bool latency_of_detector) {
             SearchConfig cfg;
             cfg.space = space;
             cfg.constraints = constraints;
             cfg.release_flops = release_flops;
             cfg.budget_flops = budget_flops;
             cfg.budget_params = budget_params;
             cfg.width = width;
             cfg.height = height;
             cfg.population = population;
             cfg.iterations = iterations;
             cfg.seed = seed;
             cfg.log_every = log_every;
             cfg.latency = std::move(latency);
             cfg.budget_latency_ms = budget_latency_ms;
             cfg.latency_of_detector = latency_of_detector;
             const bool native = py::isinstance<Scorer>(score);
             return PyEvolution{std::make_unique<Evolution>(cfg, seed_arch.arch, make_score_fn(score), !native), native};
           }),
           py::arg("space"), py::arg("constraints"), py::arg("budget_flops"), py::arg("budget_params"),
           py::arg("width"), py::arg("height"), py::arg("release_flops"), py::arg("population"), py::arg("iterations"), py::arg("seed"), py::arg("log_every"), py::arg("seed_arch"),
           py::arg("score"), py::arg("latency") = nullptr, py::arg("budget_latency_ms") = 0.0,
           py::arg("latency_of_detector") = false)
      .def(
          "run",
          [](PyEvolution& e, int64_t steps) {
            if (steps < 0) throw std::invalid_argument("steps must be >= 0");
            BusyGuard guard(e);
            py::gil_scoped_release release;  // a Python score_fn takes the GIL back per call
            return e.evo->run(steps);
          },
          py::arg("steps"))
      .def_property_readonly("done", [](const PyEvolution& e) { return idle(e).done(); })
      .def_property_readonly("iteration", [](const PyEvolution& e) { return idle(e).iteration(); })
      .def_property_readonly("native", [](const PyEvolution& e) { return e.native; })
      .def_property_readonly("has_members", [](const PyEvolution& e) { return idle(e).has_members(); })
      .def("best",
           [](const PyEvolution& e) -> py::object {
             if (!idle(e).has_members()) return py::none();
             const Member& b = e.evo->best();
             return py::make_tuple(arch_to_tuples(b.arch), b.score);
           })
      .def("mean_score", [](const PyEvolution& e) { return idle(e).mean_score(); })
      .def("population", [](const PyEvolution& e) { return population_to_python(idle(e)); })
      .def("history",
           [](const PyEvolution& e) {
             std::vector<std::tuple<int64_t, double, double>> out;
             for (const HistoryPoint& p : idle(e).history()) out.emplace_back(p.iteration, p.best, p.mean);
             return out;
           })
      .def("counters",
           [](const PyEvolution& e) {
             const SearchCounters& c = idle(e).counters();
             return py::dict(py::arg("accepted") = c.accepted, py::arg("over_budget") = c.over_budget,
                             py::arg("outside_space") = c.outside_space, py::arg("constrained") = c.constrained,
                             py::arg("unscorable") = c.unscorable, py::arg("untabled") = c.untabled);
           })
      .def("first_untabled", [](const PyEvolution& e) { return idle(e).counters().first_untabled; })
      .def("predicted_latency",
           [](const PyEvolution& e, const NativeArch& a) { return idle(e).predicted_latency(a.arch); })
      .def("rng_state", [](const PyEvolution& e) { return idle(e).rng_state(); })
      .def(
          "restore",
          [](PyEvolution& e, const std::vector<std::pair<std::vector<BlockTuple>, double>>& population,
             int64_t iteration, const std::vector<std::tuple<int64_t, double, double>>& history,
             const std::map<std::string, int64_t>& counters, const std::string& rng_state) {
            BusyGuard guard(e);
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
            c.constrained = get("constrained");
            c.unscorable = get("unscorable");
            c.untabled = get("untabled");
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
          for (size_t j = 0; j < i; ++j)
            if (evos[j] == evos[i])
              throw std::invalid_argument("evolutions[" + std::to_string(j) + "] and [" + std::to_string(i) +
                                          "] are the same Evolution; each thread needs its own");
        }
        std::vector<std::unique_ptr<BusyGuard>> guards;
        for (PyEvolution* e : evos) guards.push_back(std::make_unique<BusyGuard>(*e));
        std::vector<std::string> errors(evos.size());
        {
          py::gil_scoped_release release;
          std::vector<std::thread> threads;
          for (size_t i = 0; i < evos.size(); ++i)
            threads.emplace_back([&, i] {
              try {
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
