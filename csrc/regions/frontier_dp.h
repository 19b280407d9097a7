// Exact sum over the integer points t of K (Theorem 1) of prod_c C(d1, t_c), by dynamic
// programming over the output cells in raster order.
//
// Why it works. K is the polymatroid of the coverage function f(J) = #union_{c in J} S_c, so
// (Hall) t is in K iff the cells can be matched to t_c distinct input coordinates each inside
// their windows. After a prefix P of cells is fixed, the future only sees P through the
// "deficiency" H_P(W) = max_{J subset P} [t(J) - #(U(J) \ W)], the least number of coordinates of W
// the past must occupy. Adding cell c with value t gives
//     H_{P+c}(W) = max(H_P(W), t - #(S_c \ W) + H_P(W u S_c)),
// c is admissible iff t <= #S_c - H_P(S_c), and the future only ever asks for W that are unions of
// future windows cut to the frontier (input positions seen by both past and future cells).
// So a DP state is the vector of H on that finite lattice; equal vectors merge. In 1-D the lattice
// is a chain and the state is the single overlap carry; in 2-D the frontier is about
// (f1 - s) input rows. Positions are weighted by d0 (all channels of a position share cells).
#pragma once

#include <cstdint>
#include <functional>

#include "conv_layer.h"

namespace pyddsar {

struct DpLimits {
  int64_t max_states = 20'000'000;   // live DP states at one step
  int64_t max_lattice = 1 << 15;     // unions of future windows on the frontier
  int64_t max_bytes = 2LL << 30;     // memory of both state tables: rows, weights and hash slots
  double max_seconds = 60;           // work: estimated up front, enforced while counting (0: none)
  // Called every few thousand transitions; throws to stop (the Python binding raises KeyboardInterrupt
  // there when Ctrl-C was pressed).
  std::function<void()> poll;
};

// What one run of the dynamic program cost: the most live states at one step, the transitions
// (state x value of t) over all steps, and the most memory held by the two state tables.
struct DpStats {
  int64_t peak_states = 0;
  double transitions = 0;
  double peak_bytes = 0;
  int64_t peak_width = 0;  // the widest state row (lattice sets of one frontier)
};

// The widest state row (lattice sets of one frontier) over the steps of the first `rows` cell rows,
// without running the DP (the frontiers repeat from row to row once they are full).
int64_t frontier_row_width(const ConvLayer& layer, int64_t rows, const DpLimits& limits);

// Counts for a layer with overlapping windows. Exact big integer or natural log. `stats`, when
// given, receives the run's cost.
template <class Weight>
typename Weight::T frontier_dp(const ConvLayer& layer, const DpLimits& limits, DpStats* stats = nullptr);

}  // namespace pyddsar
