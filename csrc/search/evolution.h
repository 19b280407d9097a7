// Algorithm 1 of DamoFD (SPEC section 3), natively: a population of scored architectures; each
// iteration mutates a random member, drops the child if it breaks the budget or the space, scores
// it, adds it and removes the lowest score once the population is over its size.
//
// The state (population, random engine, counters, history) is complete: `run` can be called in
// chunks (progress bars, Ctrl-C) and the state saved and restored without changing the result.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../arch/arch.h"
#include "random.h"
#include "search_space.h"

namespace pyddsar {

struct SearchConfig {
  SearchSpace space;
  int64_t budget_flops = 0;   // MACs at width x height
  int64_t budget_params = 0;  // 0: no parameter budget
  int64_t width = 640, height = 480;
  int64_t population = 256;
  int64_t iterations = 96000;
  uint64_t seed = 0;
  int64_t log_every = 1000;   // a history point every this many iterations

  void validate() const;
};

struct Member {
  Arch arch;
  double score;
};

struct HistoryPoint {
  int64_t iteration;
  double best, mean;
};

struct SearchCounters {
  int64_t accepted = 0, over_budget = 0, outside_space = 0, unscorable = 0;
};

class Evolution {
 public:
  using ScoreFn = std::function<double(const Arch&)>;

  // Throws std::invalid_argument if the config is bad or the seed is over budget / outside the space.
  Evolution(const SearchConfig& cfg, const Arch& seed_arch, ScoreFn score);

  // Fill the population with mutations of the seed under the budget (attempts are not iterations).
  void initialise();
  // Run up to `steps` more iterations (never past cfg.iterations); returns how many ran.
  int64_t run(int64_t steps);
  bool done() const { return iteration_ >= cfg_.iterations; }

  bool fits(const Arch& arch) const;  // budget and space
  const Member& best() const;
  double mean_score() const;

  int64_t iteration() const { return iteration_; }
  const std::vector<Member>& population() const { return population_; }
  const std::vector<HistoryPoint>& history() const { return history_; }
  const SearchCounters& counters() const { return counters_; }
  const SearchConfig& config() const { return cfg_; }

  // Checkpoints: everything `run` depends on.
  std::string rng_state() const { return rng_.state(); }
  void restore(std::vector<Member> population, int64_t iteration, std::vector<HistoryPoint> history,
               const SearchCounters& counters, const std::string& rng_state);

 private:
  void add(Arch arch, double score);
  void log_point();

  SearchConfig cfg_;
  Arch seed_;
  ScoreFn score_;
  Rng rng_;
  std::vector<Member> population_;
  std::vector<HistoryPoint> history_;
  SearchCounters counters_;
  int64_t iteration_ = 0;
};

}  // namespace pyddsar
