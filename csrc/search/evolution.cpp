#include "evolution.h"

#include <cmath>
#include <stdexcept>
#include <utility>

namespace pyddsar {

void Constraints::validate() const {
  if (!min_out.empty() && min_out.size() != 5)
    throw std::invalid_argument("min_out needs 5 values (stem, C2..C5), got " + std::to_string(min_out.size()));
  for (int c : min_out)
    if (c < 0 || c > 8192) throw std::invalid_argument("min_out values must be in 0..8192");
  if (!(max_width_ratio == 0 || (max_width_ratio >= 1 && max_width_ratio <= 1024)))
    throw std::invalid_argument("max_width_ratio must be 0 (none) or in 1..1024");
}

std::string Constraints::why_violated(const Arch& arch) const {
  for (size_t i = 0; i < min_out.size() && i < arch.size(); ++i)
    if (arch[i].out < min_out[i])
      return "block " + std::to_string(i) + " has " + std::to_string(arch[i].out) + " out channels, below the minimum " +
             std::to_string(min_out[i]);
  if (non_decreasing)
    for (size_t i = 1; i < arch.size(); ++i)
      if (arch[i].out < arch[i - 1].out)
        return "block " + std::to_string(i) + " has " + std::to_string(arch[i].out) + " out channels, fewer than block " +
               std::to_string(i - 1) + "'s " + std::to_string(arch[i - 1].out) + " (widths must not decrease)";
  if (max_width_ratio > 0)
    for (size_t i = 2; i < arch.size(); ++i)
      if (arch[i].out > max_width_ratio * arch[i - 1].out)
        return "block " + std::to_string(i) + " has " + std::to_string(arch[i].out) + " out channels, more than " +
               std::to_string(max_width_ratio) + " times block " + std::to_string(i - 1) + "'s " +
               std::to_string(arch[i - 1].out);
  return "";
}

void SearchConfig::validate() const {
  space.validate();
  constraints.validate();
  if (budget_flops <= 0) throw std::invalid_argument("budget_flops must be positive");
  if (budget_params < 0) throw std::invalid_argument("budget_params must be >= 0 (0: none)");
  if (width <= 0 || height <= 0) throw std::invalid_argument("the budget resolution must be positive");
  if (population < 1) throw std::invalid_argument("population must be at least 1, got " + std::to_string(population));
  if (iterations < 0) throw std::invalid_argument("iterations must be >= 0, got " + std::to_string(iterations));
  if (log_every < 1) throw std::invalid_argument("log_every must be at least 1");
  if (!(budget_latency_ms >= 0 && std::isfinite(budget_latency_ms)))
    throw std::invalid_argument("budget_latency_ms must be >= 0 milliseconds (0: none)");
  if (budget_latency_ms > 0 && !latency) throw std::invalid_argument("a latency budget needs a latency table");
  if (latency_of_detector && latency && !latency->has_detector())
    throw std::invalid_argument("this latency table has no neck and head: predict the backbone only");
}

Evolution::Evolution(const SearchConfig& cfg, const Arch& seed_arch, ScoreFn score, bool score_may_throw)
    : cfg_(cfg), seed_(seed_arch), score_(std::move(score)), score_may_throw_(score_may_throw), rng_(cfg.seed) {
  cfg_.validate();
  validate(seed_);
  // Only the seed's children become members, so the seed may break the budget (two of the
  // release's initial structures do), but it must lie in the space.
  const std::string why = cfg_.space.why_outside(seed_);
  if (!why.empty()) throw std::invalid_argument("the seed architecture is outside the search space: " + why);
}

Evolution::Fit Evolution::fit(const Arch& arch, std::string* why, std::string* missing) const {
  std::string outside = cfg_.space.why_outside(arch);
  if (!outside.empty()) {
    if (why) *why = std::move(outside);
    return Fit::OutsideSpace;  // layer limits (the only way a mutation leaves its space)
  }
  const Cost c = arch_cost(arch, cfg_.width, cfg_.height);
  const double flops = cfg_.release_flops ? release_flops(arch, cfg_.width, cfg_.height) : double(c.flops);
  if (flops > double(cfg_.budget_flops)) {
    if (why)
      *why = "it has " + std::to_string(int64_t(std::ceil(flops))) + " FLOPs, over the budget " + std::to_string(cfg_.budget_flops);
    return Fit::OverBudget;
  }
  if (cfg_.budget_params > 0 && c.params > cfg_.budget_params) {
    if (why) *why = "it has " + std::to_string(c.params) + " parameters, over the budget " + std::to_string(cfg_.budget_params);
    return Fit::OverBudget;
  }
  if (cfg_.budget_latency_ms > 0) {
    std::string lacks;
    const double ms = predicted_ms(arch, (why || missing) ? &lacks : nullptr);
    if (std::isnan(ms)) {
      if (why) *why = "the latency table lacks " + lacks;
      if (missing) *missing = std::move(lacks);
      return Fit::Untabled;
    }
    if (ms > cfg_.budget_latency_ms) {
      if (why)
        *why = "its predicted latency " + std::to_string(ms) + " ms is over the budget " + std::to_string(cfg_.budget_latency_ms) + " ms";
      return Fit::OverBudget;
    }
  }
  std::string violated = cfg_.constraints.why_violated(arch);
  if (!violated.empty()) {
    if (why) *why = std::move(violated);
    return Fit::Constrained;
  }
  return Fit::Ok;
}

std::string Evolution::why_unfit(const Arch& arch) const {
  std::string why;
  fit(arch, &why, nullptr);
  return why;
}

double Evolution::predicted_ms(const Arch& arch, std::string* missing) const {
  return cfg_.latency->predict(arch, cfg_.latency_of_detector, missing);
}

double Evolution::predicted_latency(const Arch& arch) const {
  if (!cfg_.latency) return NAN;
  return predicted_ms(arch, nullptr);
}

void Evolution::add(Arch arch, double score) {
  population_.push_back(Member{std::move(arch), score});
  if (static_cast<int64_t>(population_.size()) > cfg_.population) {
    size_t worst = 0;  // the lowest score; the oldest among equals (the release's list.index(min))
    for (size_t i = 1; i < population_.size(); ++i)
      if (population_[i].score < population_[worst].score) worst = i;
    population_.erase(population_.begin() + static_cast<std::ptrdiff_t>(worst));
  }
}

void Evolution::step() {
  const SearchSpace& s = cfg_.space;
  const bool from_seed = static_cast<int64_t>(population_.size()) <= s.seed_children || population_.empty();
  Arch child = from_seed ? mutate(seed_, s, rng_, 1)
                         : mutate(population_[rng_.below(population_.size())].arch, s, rng_, s.mutations);
  std::string missing;
  switch (fit(child, nullptr, counters_.first_untabled.empty() ? &missing : nullptr)) {
    case Fit::Ok:
      break;
    case Fit::OutsideSpace:
      ++counters_.outside_space;
      return;
    case Fit::OverBudget:
      ++counters_.over_budget;
      return;
    case Fit::Untabled:
      ++counters_.untabled;
      if (counters_.first_untabled.empty()) counters_.first_untabled = missing;
      return;
    case Fit::Constrained:
      ++counters_.constrained;
      return;
  }
  double score;
  try {
    score = score_(child);
  } catch (const std::invalid_argument&) {
    score = NAN;  // the scorer refuses this network
  }
  if (!std::isfinite(score)) {
    ++counters_.unscorable;
    return;
  }
  ++counters_.accepted;
  add(std::move(child), score);
}

int64_t Evolution::run(int64_t steps) {
  int64_t ran = 0;
  while (ran < steps && iteration_ < cfg_.iterations) {
    if (score_may_throw_) {
      const Rng before = rng_;  // ~2.5 kB; rewinds an iteration whose score throws
      try {
        step();
      } catch (...) {
        rng_ = before;
        throw;
      }
    } else {
      step();
    }
    ++iteration_;
    ++ran;
    if (iteration_ % cfg_.log_every == 0 || iteration_ == cfg_.iterations) log_point();
  }
  return ran;
}

void Evolution::log_point() {
  if (population_.empty() || (!history_.empty() && history_.back().iteration == iteration_)) return;
  history_.push_back(HistoryPoint{iteration_, best().score, mean_score()});
}

const Member& Evolution::best() const {
  if (population_.empty()) throw std::logic_error("the population is still empty (no child was accepted yet)");
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
  if (static_cast<int64_t>(population.size()) > cfg_.population)
    throw std::invalid_argument("checkpoint population size " + std::to_string(population.size()) +
                                " does not fit the configured population " + std::to_string(cfg_.population));
  if (iteration < 0 || iteration > cfg_.iterations)
    throw std::invalid_argument("checkpoint iteration " + std::to_string(iteration) + " is outside 0.." +
                                std::to_string(cfg_.iterations));
  for (const Member& m : population) {
    validate(m.arch);
    const std::string why = why_unfit(m.arch);
    if (!why.empty()) throw std::invalid_argument("a checkpoint member cannot be in this search: " + why);
    if (!std::isfinite(m.score)) throw std::invalid_argument("a checkpoint member has a non-finite score");
  }
  const int64_t counted = counters.total();
  if (counted != iteration)
    throw std::invalid_argument("checkpoint counters add up to " + std::to_string(counted) + ", not the iteration " +
                                std::to_string(iteration));
  rng_.set_state(rng_state);
  population_ = std::move(population);
  iteration_ = iteration;
  history_ = std::move(history);
  counters_ = counters;
}

}  // namespace pyddsar
