// Algorithm 1 of DamoFD as the release runs it (DDSAR/evolution_search.py main, SPEC section 3),
// natively: each iteration makes a child (from the seed while the population is small, else from a
// random member), drops it if it breaks the layer limits, the budget or a constraint, scores it,
// adds it and removes the lowest score once the population is over its size.
//
// The state (population, random engine, counters, history) is complete: `run` can be called in
// chunks (progress bars, Ctrl-C) and the state saved and restored without changing the result. An
// iteration whose score throws leaves no trace (the random engine is rewound), so a search stopped
// by an exception resumes exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../arch/arch.h"
#include "latency_table.h"
#include "random.h"
#include "search_space.h"

namespace pyddsar {

// Limits a user adds to a space; a child that breaks one is dropped (counted as `constrained`).
struct Constraints {
  std::vector<int> min_out;     // minimum out channels per block (stem, C2..C5); empty: none
  bool non_decreasing = false;  // out channels stem <= C2 <= C3 <= C4 <= C5
  double max_width_ratio = 0;   // out channels of C3..C5 at most this times the previous stage's; 0: none

  void validate() const;
  // Empty when `arch` keeps every constraint, else the first one it breaks.
  std::string why_violated(const Arch& arch) const;
};

struct SearchConfig {
  SearchSpace space;
  Constraints constraints;
  int64_t budget_flops = 0;   // MACs at width x height
  int64_t budget_params = 0;  // 0: no parameter budget
  int64_t width = 640, height = 480;
  bool release_flops = false; // count FLOPs for the budget as the release does (arch.h release_flops)
  int64_t population = 256;
  int64_t iterations = 96000;
  uint64_t seed = 0;
  int64_t log_every = 1000;   // a history point every this many iterations
  // Latency budget: a child whose predicted latency (latency_table.h) is over it is over budget; a
  // child the table cannot predict is dropped as `untabled`. 0 / null: no latency budget.
  std::shared_ptr<const LatencyTable> latency;
  double budget_latency_ms = 0;
  bool latency_of_detector = false;  // predict backbone + neck + head instead of the backbone

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

// What became of each iteration's child; the counts add up to the iterations run.
struct SearchCounters {
  int64_t accepted = 0, over_budget = 0, outside_space = 0, constrained = 0, unscorable = 0, untabled = 0;
  std::string first_untabled;  // the first operation the latency table lacked (for the message)
  int64_t total() const { return accepted + over_budget + outside_space + constrained + unscorable + untabled; }
};

class Evolution {
 public:
  using ScoreFn = std::function<double(const Arch&)>;

  // Throws std::invalid_argument if the config is bad or the seed lies outside the space. `score` may return a non-finite value or throw std::invalid_argument for
  // an unscorable child; any other exception stops `run` with the iteration undone and propagates.
  // `score_may_throw`: keep a copy of the random state per iteration to rewind (a Python score);
  // a native scorer only throws std::invalid_argument, which marks the child unscorable.
  Evolution(const SearchConfig& cfg, const Arch& seed_arch, ScoreFn score, bool score_may_throw = true);

  // Run up to `steps` more iterations (never past cfg.iterations); returns how many ran.
  int64_t run(int64_t steps);
  bool done() const { return iteration_ >= cfg_.iterations; }

  // Empty when `arch` may be a member (space, layer limits, budget, constraints), else why not.
  std::string why_unfit(const Arch& arch) const;
  bool has_members() const { return !population_.empty(); }
  // Predicted latency under the search's table; NaN without one or when the table lacks an operation.
  double predicted_latency(const Arch& arch) const;
  const Member& best() const;  // throws std::logic_error while the population is empty
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
  void step();  // one iteration
  // Predicted latency of `arch` (NaN with `*missing` set when the table lacks an operation).
  double predicted_ms(const Arch& arch, std::string* missing) const;
  // The one statement of what a member must satisfy, in the order the checks run. `why` (when
  // given) receives the reason in words, `missing` the operation a latency table lacks.
  enum class Fit { Ok, OutsideSpace, OverBudget, Untabled, Constrained };
  Fit fit(const Arch& arch, std::string* why, std::string* missing) const;

  SearchConfig cfg_;
  Arch seed_;
  ScoreFn score_;
  bool score_may_throw_;
  Rng rng_;
  std::vector<Member> population_;
  std::vector<HistoryPoint> history_;
  SearchCounters counters_;
  int64_t iteration_ = 0;
};

}  // namespace pyddsar
