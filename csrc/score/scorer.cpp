#include <cmath>
#include <stdexcept>
#include <string>

#include "fs_probe.h"
#include "paper_walk.h"
#include "release_walk.h"
#include "score.h"

namespace pyddsar {
namespace {

constexpr int64_t kLnTableSize = 4096;  // ln q for q = floor(d / 3) < 4096 (channels up to 12287)

void validate_config(const ScoreConfig& cfg) {
  if (cfg.variant != ScoreVariant::Paper && cfg.variant != ScoreVariant::Release)
    throw std::invalid_argument("score variant must be Paper (0) or Release (1), got " +
                                std::to_string(static_cast<int>(cfg.variant)));
  if (!std::isfinite(cfg.alpha) || cfg.alpha < 0)
    throw std::invalid_argument("alpha must be a finite non-negative number, got " + std::to_string(cfg.alpha));
  double sum = 0;
  for (size_t i = 0; i < cfg.lambdas.size(); ++i) {
    const double l = cfg.lambdas[i];
    if (!std::isfinite(l) || l < 0)
      throw std::invalid_argument("lambda_" + std::to_string(i + 1) + " must be a finite non-negative number, got " +
                                  std::to_string(l));
    sum += l;
  }
  if (std::fabs(sum - 1.0) > kLambdaSumTolerance)
    throw std::invalid_argument("the five lambdas must sum to 1, they sum to " + std::to_string(sum));
  if (cfg.width < 1 || cfg.height < 1 || cfg.width > kMaxResolution || cfg.height > kMaxResolution)
    throw std::invalid_argument("scoring resolution must be between 1 and " + std::to_string(kMaxResolution) + " on each side, got " +
                                std::to_string(cfg.width) + "x" + std::to_string(cfg.height));
  validate_probe(cfg.probe);
}

int kernel_slot(int kernel) { return kernel < 0 ? 0 : (kernel > 7 ? 7 : kernel); }

}  // namespace

Scorer::Scorer(const ScoreConfig& cfg) : cfg_(cfg) {
  validate_config(cfg_);
  if (cfg_.variant != ScoreVariant::Paper) return;
  ln_quotient_.resize(kLnTableSize);
  ln_quotient_[0] = -HUGE_VAL;  // never read: q = 0 is rejected before the lookup
  for (int64_t q = 1; q < kLnTableSize; ++q) ln_quotient_[q] = std::log(double(q));
  if (cfg_.probe.literal) {
    literal_fs_.resize(cfg_.probe.filters + 1);
    for (int d = 0; d <= cfg_.probe.filters; ++d) literal_fs_[d] = literal_fs(d, cfg_.probe.filters);
  } else {
    for (int kernel : {1, 3, 5, 7})
      for (int stride : {1, 2}) probe_fs_[kernel][stride - 1] = probe_fs(kernel, stride, cfg_.probe);
  }
}

const ScoreConfig& Scorer::config() const { return cfg_; }

double Scorer::fs_layer(int kernel, int stride, int64_t input_depth) const {
  if ((kernel != 1 && kernel != 3 && kernel != 5 && kernel != 7) || (stride != 1 && stride != 2) || input_depth < 1)
    throw std::invalid_argument("fs_layer: kernel must be 1, 3, 5 or 7, stride 1 or 2, input depth positive");
  if (cfg_.variant == ScoreVariant::Release) return kernel;  // the release's FS: kernel sizes
  if (cfg_.probe.literal) return literal_fs_[input_depth < cfg_.probe.filters ? input_depth : cfg_.probe.filters];
  return probe_fs_[kernel][stride - 1];
}

namespace {

// Runs the variant's walk; the FS and ln lookups are tables filled by the constructor.
template <class Record>
StageSums stage_sums(const ScoreConfig& cfg, const std::array<std::array<double, 2>, 8>& probe_fs_table,
                     const std::vector<double>& literal_table, const std::vector<double>& ln_table, const Arch& arch,
                     Record&& record) {
  validate(arch);
  StageSums sums;
  if (cfg.variant == ScoreVariant::Release) {
    release_walk(arch, cfg.width, cfg.height, sums, record);
    return sums;
  }
  auto ln_of = [&](int64_t q) { return q < int64_t(ln_table.size()) ? ln_table[q] : std::log(double(q)); };
  if (cfg.probe.literal) {
    const int64_t filters = cfg.probe.filters;
    auto fs_of = [&](const ConvOp& op) { return literal_table[op.cin < filters ? op.cin : filters]; };
    paper_walk(arch, cfg.width, cfg.height, fs_of, ln_of, sums, record);
  } else {
    auto fs_of = [&](const ConvOp& op) { return probe_fs_table[kernel_slot(op.kernel)][op.stride == 1 ? 0 : 1]; };
    paper_walk(arch, cfg.width, cfg.height, fs_of, ln_of, sums, record);
  }
  return sums;
}

}  // namespace

double Scorer::operator()(const Arch& arch) {
  const StageSums sums = stage_sums(cfg_, probe_fs_, literal_fs_, ln_quotient_, arch, NoRecord());
  double total = 0;  // sum in stage order, like the release: ddsar = 0; ddsar += lambda_i * S_i
  for (int i = 0; i < 5; ++i) total += cfg_.lambdas[i] * (sums.sae[i] + cfg_.alpha * sums.fs[i]);
  return total;
}

std::vector<StageScore> Scorer::report(const Arch& arch) {
  std::vector<StageScore> stages(5);
  auto record = [&](int block, const StageLayer& layer) { stages[block].layers.push_back(layer); };
  const StageSums sums = stage_sums(cfg_, probe_fs_, literal_fs_, ln_quotient_, arch, record);
  for (int i = 0; i < 5; ++i) {
    StageScore& s = stages[i];
    s.sae = sums.sae[i];
    s.fs = sums.fs[i];
    s.sar = s.sae + cfg_.alpha * s.fs;
    s.lambda = cfg_.lambdas[i];
    s.weighted = s.lambda * s.sar;
  }
  return stages;
}

}  // namespace pyddsar
