#include "frontier_dp.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "weights.h"

namespace pyddsar {
namespace {

using Mask = unsigned __int128;  // a subset of the current frontier (local bit indices)
constexpr int kMaxFrontier = 128;

int popcount(Mask m) {
  return __builtin_popcountll(static_cast<uint64_t>(m)) + __builtin_popcountll(static_cast<uint64_t>(m >> 64));
}

struct MaskHash {
  size_t operator()(Mask m) const {
    uint64_t lo = static_cast<uint64_t>(m), hi = static_cast<uint64_t>(m >> 64);
    return std::hash<uint64_t>()(lo * 0x9E3779B97F4A7C15ull ^ (hi + 0x632BE59BD9B4E019ull));
  }
};

// Geometry of the raster order: which cells cover which input positions.
struct Grid {
  int64_t h1, w1, f1, f2, s, w0;

  int64_t cells() const { return h1 * w1; }
  // Input positions (y * w0 + x) of cell c's window.
  std::vector<int64_t> window(int64_t c) const {
    int64_t i = c / w1, j = c % w1;
    std::vector<int64_t> out;
    out.reserve(f1 * f2);
    for (int64_t a = 0; a < f1; ++a)
      for (int64_t b = 0; b < f2; ++b) out.push_back((i * s + a) * w0 + (j * s + b));
    return out;
  }
  static int64_t ceil_div_nonneg(int64_t a, int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; }
  // Range of cell rows (or columns) whose windows contain input row y (or column x).
  static void cover(int64_t y, int64_t f, int64_t s, int64_t n, int64_t& lo, int64_t& hi) {
    lo = ceil_div_nonneg(y - f + 1, s);
    hi = std::min(y / s, n - 1);
  }
  // Last cell (raster index) covering a position: the frontier keeps it until then.
  int64_t last_cell(int64_t p) const {
    int64_t y = p / w0, x = p % w0, ilo, ihi, jlo, jhi;
    cover(y, f1, s, h1, ilo, ihi);
    cover(x, f2, s, w1, jlo, jhi);
    return ihi * w1 + jhi;
  }
  // Cells (any index) covering a position.
  std::vector<int64_t> covering(int64_t p) const {
    int64_t y = p / w0, x = p % w0, ilo, ihi, jlo, jhi;
    cover(y, f1, s, h1, ilo, ihi);
    cover(x, f2, s, w1, jlo, jhi);
    std::vector<int64_t> out;
    for (int64_t i = ilo; i <= ihi; ++i)
      for (int64_t j = jlo; j <= jhi; ++j) out.push_back(i * w1 + j);
    return out;
  }
};

// The lattice of one step: frontier positions and all unions of future windows cut to them.
struct Lattice {
  std::vector<int64_t> frontier;  // sorted input positions
  std::vector<Mask> sets;         // sets[0] is the empty set
  std::unordered_map<Mask, int32_t, MaskHash> index;

  Mask mask_of(const std::vector<int64_t>& positions) const {
    Mask m = 0;
    for (int64_t p : positions) {
      auto it = std::lower_bound(frontier.begin(), frontier.end(), p);
      if (it != frontier.end() && *it == p) m |= Mask(1) << (it - frontier.begin());
    }
    return m;
  }
  int32_t find(Mask m) const {
    auto it = index.find(m);
    if (it == index.end()) throw std::logic_error("pyddsar internal error: lattice set missing");
    return it->second;
  }
};

Lattice build_lattice(const Grid& g, int64_t step, std::vector<int64_t> frontier, const DpLimits& limits) {
  Lattice L;
  L.frontier = std::move(frontier);
  if (static_cast<int64_t>(L.frontier.size()) > kMaxFrontier)
    throw std::invalid_argument("the overlap frontier of this layer has " + std::to_string(L.frontier.size()) +
                                " input positions (at most " + std::to_string(kMaxFrontier) +
                                " can be counted exactly); use a smaller input or a larger stride");
  std::vector<Mask> generators;
  std::vector<int64_t> future;
  for (int64_t p : L.frontier)
    for (int64_t c : g.covering(p))
      if (c >= step) future.push_back(c);
  std::sort(future.begin(), future.end());
  future.erase(std::unique(future.begin(), future.end()), future.end());
  for (int64_t c : future) generators.push_back(L.mask_of(g.window(c)));
  std::sort(generators.begin(), generators.end());
  generators.erase(std::unique(generators.begin(), generators.end()), generators.end());

  L.sets.push_back(0);
  L.index.emplace(Mask(0), 0);
  for (Mask gen : generators) {
    size_t n = L.sets.size();
    for (size_t i = 0; i < n; ++i) {
      Mask u = L.sets[i] | gen;
      if (L.index.emplace(u, static_cast<int32_t>(L.sets.size())).second) {
        L.sets.push_back(u);
        if (static_cast<int64_t>(L.sets.size()) > limits.max_lattice)
          throw std::invalid_argument("this layer's overlap structure is too large to count exactly (more than " +
                                      std::to_string(limits.max_lattice) +
                                      " window unions on the frontier); use a smaller input grid");
      }
    }
  }
  return L;
}

// States of one step: rows of H values (one per lattice set), merged by an open-addressing table.
template <class Weight>
class StateTable {
 public:
  explicit StateTable(size_t width) : width_(width) { slots_.assign(1024, -1); }
  size_t size() const { return weights_.size(); }
  const uint16_t* row(size_t i) const { return rows_.data() + i * width_; }
  const typename Weight::T& weight(size_t i) const { return weights_[i]; }

  void add(const uint16_t* r, const typename Weight::T& w) {
    if ((weights_.size() + 1) * 2 > slots_.size()) rehash();
    size_t mask = slots_.size() - 1, h = hash(r) & mask;
    while (slots_[h] >= 0) {
      if (std::memcmp(row(slots_[h]), r, width_ * sizeof(uint16_t)) == 0) {
        auto& acc = weights_[slots_[h]];
        weight_bytes_ -= Weight::bytes(acc);
        Weight::add(acc, w);
        weight_bytes_ += Weight::bytes(acc);
        return;
      }
      h = (h + 1) & mask;
    }
    slots_[h] = static_cast<int64_t>(weights_.size());
    rows_.insert(rows_.end(), r, r + width_);
    weights_.push_back(w);
    weight_bytes_ += Weight::bytes(w);
  }
  // Memory held: rows (as allocated), weights (their digits too) and the hash slots.
  double bytes() const {
    return double(rows_.capacity()) * sizeof(uint16_t) + double(weight_bytes_) + double(slots_.size()) * sizeof(int64_t);
  }

 private:
  size_t hash(const uint16_t* r) const {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < width_; ++i) h = (h ^ r[i]) * 1099511628211ull;
    return static_cast<size_t>(h ^ (h >> 29));
  }
  void rehash() {
    slots_.assign(slots_.size() * 2, -1);
    size_t mask = slots_.size() - 1;
    for (size_t i = 0; i < weights_.size(); ++i) {
      size_t h = hash(row(i)) & mask;
      while (slots_[h] >= 0) h = (h + 1) & mask;
      slots_[h] = static_cast<int64_t>(i);
    }
  }
  size_t width_;
  std::vector<uint16_t> rows_;
  std::vector<typename Weight::T> weights_;
  std::vector<int64_t> slots_;
  size_t weight_bytes_ = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// F_{k+1}: the positions of F_k or of cell k's window that a later cell still covers (sorted).
std::vector<int64_t> next_frontier(const Grid& g, const std::vector<int64_t>& frontier, int64_t k,
                                   const std::vector<int64_t>& window) {
  std::vector<int64_t> next;
  for (int64_t p : frontier)
    if (g.last_cell(p) > k) next.push_back(p);
  for (int64_t p : window)
    if (g.last_cell(p) > k) next.push_back(p);
  std::sort(next.begin(), next.end());
  next.erase(std::unique(next.begin(), next.end()), next.end());
  return next;
}

}  // namespace

int64_t frontier_row_width(const ConvLayer& layer, int64_t rows, const DpLimits& limits) {
  const Grid g{layer.out_h(), layer.out_w(), layer.f1, layer.f2, layer.stride, layer.w0};
  const int64_t steps = std::min(g.cells(), rows * g.w1);
  std::vector<int64_t> frontier;
  int64_t widest = 1;
  for (int64_t k = 0; k < steps; ++k) {
    frontier = next_frontier(g, frontier, k, g.window(k));
    widest = std::max<int64_t>(widest, static_cast<int64_t>(build_lattice(g, k + 1, frontier, limits).sets.size()));
  }
  return widest;
}

template <class Weight>
typename Weight::T frontier_dp(const ConvLayer& layer, const DpLimits& limits, DpStats* stats) {
  const Grid g{layer.out_h(), layer.out_w(), layer.f1, layer.f2, layer.stride, layer.w0};
  const int64_t d0 = layer.d0, n = g.cells();
  if (d0 * kMaxFrontier > 60000)
    throw std::invalid_argument("input depth d0 = " + std::to_string(d0) + " is too large for exact counting");

  // t of a cell never exceeds the inputs it sees (t_max below)
  const auto binom = Weight::binomials(layer.d1, d0 * layer.f1 * layer.f2);

  // Walk the frontiers once without states, so a layer too wide to count is refused at once
  // instead of after minutes of DP work.
  {
    std::vector<int64_t> f;
    for (int64_t k = 0; k < n; ++k) {
      std::vector<int64_t> next = next_frontier(g, f, k, g.window(k));
      if (static_cast<int64_t>(next.size()) > kMaxFrontier)
        throw std::invalid_argument("the overlap frontier of this layer reaches " + std::to_string(next.size()) +
                                    " input positions (at most " + std::to_string(kMaxFrontier) +
                                    " can be counted exactly); use a smaller input or a larger stride");
      f = std::move(next);
    }
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<int64_t> frontier;  // F_0 is empty
  Lattice cur = build_lattice(g, 0, frontier, limits);
  StateTable<Weight> states(cur.sets.size());
  {
    std::vector<uint16_t> zero(cur.sets.size(), 0);
    states.add(zero.data(), Weight::one());
  }

  for (int64_t k = 0; k < n; ++k) {
    const std::vector<int64_t> win = g.window(k);
    Lattice nxt = build_lattice(g, k + 1, next_frontier(g, cur.frontier, k, win), limits);

    // Transition tables: for each W' of the next lattice, where H_P(W') and H_P(W' u S_c) live
    // in the current lattice, and the cost #(S_c \ W').
    const Mask win_cur = cur.mask_of(win), win_nxt = nxt.mask_of(win);
    std::vector<int> bit_to_cur(nxt.frontier.size(), -1);
    for (size_t b = 0; b < nxt.frontier.size(); ++b) {
      auto it = std::lower_bound(cur.frontier.begin(), cur.frontier.end(), nxt.frontier[b]);
      if (it != cur.frontier.end() && *it == nxt.frontier[b]) bit_to_cur[b] = static_cast<int>(it - cur.frontier.begin());
    }
    const size_t width = nxt.sets.size();
    std::vector<int32_t> idx_a(width), idx_b(width);
    std::vector<int32_t> cost(width);
    for (size_t j = 0; j < width; ++j) {
      Mask w = nxt.sets[j], in_cur = 0;
      for (size_t b = 0; b < nxt.frontier.size(); ++b)
        if (((w >> b) & 1) && bit_to_cur[b] >= 0) in_cur |= Mask(1) << bit_to_cur[b];
      idx_a[j] = cur.find(in_cur);
      idx_b[j] = cur.find(in_cur | win_cur);
      cost[j] = static_cast<int32_t>(d0 * (static_cast<int64_t>(win.size()) - popcount(w & win_nxt)));
    }
    const int32_t idx_s = cur.find(win_cur);
    const int64_t cap_s = d0 * static_cast<int64_t>(win.size());

    auto refuse_memory = [&](double needed) {
      throw std::invalid_argument("exact counting of this layer needs more than " +
                                  std::to_string(limits.max_bytes >> 20) + " MiB (" +
                                  std::to_string(int64_t(needed) >> 20) + " MiB already at output cell " +
                                  std::to_string(k + 1) + " of " + std::to_string(n) +
                                  "); use log_linear_regions on a smaller grid or the lower bound");
    };
    // the next table holds at least one row per current state
    const double rows_next = static_cast<double>(states.size()) * static_cast<double>(width) * sizeof(uint16_t);
    if (states.bytes() + rows_next > static_cast<double>(limits.max_bytes)) refuse_memory(states.bytes() + rows_next);
    StateTable<Weight> next_states(width);
    std::vector<uint16_t> row(width);
    int64_t since_poll = 0;
    for (size_t si = 0; si < states.size(); ++si) {
      if ((since_poll += width) > (1 << 16)) {
        since_poll = 0;
        if (limits.poll) limits.poll();
        if (limits.max_seconds > 0 && seconds_since(start) > limits.max_seconds)
          throw std::invalid_argument("exact counting of this layer ran past its limit of " +
                                      std::to_string(int64_t(limits.max_seconds)) + " s at output cell " +
                                      std::to_string(k + 1) + " of " + std::to_string(n) +
                                      "; use the lower bound (linear_regions_lower_bound) or a smaller grid");
      }
      const uint16_t* h = states.row(si);
      const int64_t t_max = std::min<int64_t>(layer.d1, cap_s - h[idx_s]);
      if (stats) stats->transitions += static_cast<double>(t_max + 1);
      for (int64_t t = 0; t <= t_max; ++t) {
        for (size_t j = 0; j < width; ++j) {
          int32_t v = static_cast<int32_t>(t) - cost[j] + h[idx_b[j]];
          int32_t a = h[idx_a[j]];
          row[j] = static_cast<uint16_t>(v > a ? v : a);
        }
        next_states.add(row.data(), Weight::mul(states.weight(si), binom[t]));
      }
      if (states.bytes() + next_states.bytes() > static_cast<double>(limits.max_bytes))
        refuse_memory(states.bytes() + next_states.bytes());
      if (static_cast<int64_t>(next_states.size()) > limits.max_states)
        throw std::invalid_argument("exact counting of this layer needs more than " +
                                    std::to_string(limits.max_states) +
                                    " dynamic-programming states; the grid is too large (use log_linear_regions on a "
                                    "smaller grid, or the lower bound)");
    }
    if (stats) {
      stats->peak_states = std::max<int64_t>(stats->peak_states, static_cast<int64_t>(next_states.size()));
      stats->peak_bytes = std::max(stats->peak_bytes, states.bytes() + next_states.bytes());
      stats->peak_width = std::max<int64_t>(stats->peak_width, static_cast<int64_t>(width));
    }
    states = std::move(next_states);
    cur = std::move(nxt);
  }
  // The last frontier is empty: one state remains.
  return states.size() ? states.weight(0) : Weight::zero();
}

template BigUInt frontier_dp<ExactWeight>(const ConvLayer&, const DpLimits&, DpStats*);
template double frontier_dp<LogWeight>(const ConvLayer&, const DpLimits&, DpStats*);

}  // namespace pyddsar
