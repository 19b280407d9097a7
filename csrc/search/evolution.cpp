#include "evolution.h"

#include <stdexcept>
#include <utility>

namespace pyddsar {

void SearchConfig::validate() const {
  space.validate();
  if (budget_flops <= 0) throw std::invalid_argument("budget_flops must be positive");
  if (budget_params < 0) throw std::invalid_argument("budget_params must be >= 0 (0: none)");
  if (width <= 0 || height <= 0) throw std::invalid_argument("the budget resolution must be positive");
  if (population < 1) throw std::invalid_argument("population must be at least 1, got " + std::to_string(population));
  if (iterations < 0) throw std::invalid_argument("iterations must be >= 0, got " + std::to_string(iterations));
  if (log_every < 1) throw std::invalid_argument("log_every must be at least 1");
}

Evolution::Evolution(const SearchConfig& cfg, const Arch& seed_arch, ScoreFn score)
    : cfg_(cfg), seed_(seed_arch), score_(std::move(score)), rng_(cfg.seed) {
  cfg_.validate();
  validate(seed_);
  const std::string outside = cfg_.space.why_outside(seed_);
  if (!outside.empty()) throw std::invalid_argument("the seed architecture is outside the search space: " + outside);
  const Cost c = arch_cost(seed_, cfg_.width, cfg_.height);
  if (c.flops > cfg_.budget_flops)
    throw std::invalid_argument("the seed architecture has " + std::to_string(c.flops) + " FLOPs, over the budget " +
                                std::to_string(cfg_.budget_flops));
  if (cfg_.budget_params > 0 && c.params > cfg_.budget_params)
    throw std::invalid_argument("the seed architecture has " + std::to_string(c.params) +
                                " parameters, over the budget " + std::to_string(cfg_.budget_params));
}

bool Evolution::fits(const Arch& arch) const {
  if (total_layers(arch) > cfg_.space.max_total_layers) return false;
  const Cost c = arch_cost(arch, cfg_.width, cfg_.height);
  return c.flops <= cfg_.budget_flops && (cfg_.budget_params == 0 || c.params <= cfg_.budget_params);
}

void Evolution::add(Arch arch, double score) {
  population_.push_back(Member{std::move(arch), score});
  if (static_cast<int64_t>(population_.size()) > cfg_.population) {
    size_t worst = 0;  // the lowest score; the oldest among equals
    for (size_t i = 1; i < population_.size(); ++i)
      if (population_[i].score < population_[worst].score) worst = i;
    population_.erase(population_.begin() + static_cast<std::ptrdiff_t>(worst));
  }
}

void Evolution::initialise() {
  if (!population_.empty()) return;
  add(seed_, score_(seed_));
  // Mutations of the seed (and of what was found so far) until the population is full.
  const int64_t max_attempts = 1000 * cfg_.population + 10000;
  for (int64_t attempt = 0; static_cast<int64_t>(population_.size()) < cfg_.population; ++attempt) {
    if (attempt >= max_attempts)
      throw std::invalid_argument("could not find " + std::to_string(cfg_.population) +
                                  " architectures under the budget by mutating the seed; raise the budget or "
                                  "lower the population");
    const Arch& parent = population_[rng_.below(population_.size())].arch;
    Arch child = mutate(parent, cfg_.space, rng_);
    if (!fits(child)) continue;
    double s;
    try {
      s = score_(child);
    } catch (const std::invalid_argument&) {
      continue;
    }
    add(std::move(child), s);
  }
  log_point();
}

int64_t Evolution::run(int64_t steps) {
  if (population_.empty()) initialise();
  int64_t ran = 0;
  while (ran < steps && iteration_ < cfg_.iterations) {
    const Arch& parent = population_[rng_.below(population_.size())].arch;
    Arch child = mutate(parent, cfg_.space, rng_);
    ++iteration_;
    ++ran;
    if (total_layers(child) > cfg_.space.max_total_layers) {
      ++counters_.outside_space;
    } else if (!fits(child)) {
      ++counters_.over_budget;
    } else {
      bool scored = true;
      double s = 0;
      try {
        s = score_(child);
      } catch (const std::invalid_argument&) {
        scored = false;
      }
      if (scored) {
        ++counters_.accepted;
        add(std::move(child), s);
      } else {
        ++counters_.unscorable;
      }
    }
    if (iteration_ % cfg_.log_every == 0 || iteration_ == cfg_.iterations) log_point();
  }
  return ran;
}

void Evolution::log_point() {
  if (!history_.empty() && history_.back().iteration == iteration_) return;
  history_.push_back(HistoryPoint{iteration_, best().score, mean_score()});
}

const Member& Evolution::best() const {
  if (population_.empty()) throw std::logic_error("the population is empty; call initialise() first");
  size_t b = 0;  // the highest score; the oldest among equals
  for (size_t i = 1; i < population_.size(); ++i)
    if (population_[i].score > population_[b].score) b = i;
  return population_[b];
}

double Evolution::mean_score() const {
  double sum = 0;
  for (const Member& m : population_) sum += m.score;
  return population_.empty() ? 0.0 : sum / static_cast<double>(population_.size());
}

void Evolution::restore(std::vector<Member> population, int64_t iteration, std::vector<HistoryPoint> history,
                        const SearchCounters& counters, const std::string& rng_state) {
  if (population.empty() || static_cast<int64_t>(population.size()) > cfg_.population)
    throw std::invalid_argument("checkpoint population size " + std::to_string(population.size()) +
                                " does not fit the configured population " + std::to_string(cfg_.population));
  if (iteration < 0 || iteration > cfg_.iterations)
    throw std::invalid_argument("checkpoint iteration " + std::to_string(iteration) + " is outside 0.." +
                                std::to_string(cfg_.iterations));
  for (const Member& m : population) {
    validate(m.arch);
    if (!fits(m.arch)) throw std::invalid_argument("a checkpoint member breaks the budget or the space");
  }
  rng_.set_state(rng_state);
  population_ = std::move(population);
  iteration_ = iteration;
  history_ = std::move(history);
  counters_ = counters;
}

}  // namespace pyddsar
