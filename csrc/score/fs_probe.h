// Filter sensitivity (SPEC section 2, Eq. 6): FS_l is the number of linear regions of a one-layer
// ReLU CNN N'_l with layer l's kernel and stride on a small probe input.
//
// Default probe: an output grid of `grid` x `grid` cells (input side k + (grid - 1) * s), input
// depth `depth`, `filters` filters; FS_l = ln N (raw counts reach 2^63 and beyond). It separates
// kernel sizes and strides, which the paper's literal reading cannot.
// Literal probe: the paper's 1 x 1 input of depth d_{l-1}. A k x k kernel (same padding) on a
// 1 x 1 input sees one position only, so every kernel acts as a 1 x 1 window of d_{l-1} inputs and
// N = sum_{t <= min(d', d_{l-1})} C(d', t): FS_l is that raw count, 2^d' (128) for d_{l-1} >= d',
// independent of kernel and stride.
#pragma once

#include <cstdint>

#include "score.h"

namespace pyddsar {

// Probe limits: the exact enumerator's cost grows fast with the grid (grid 5, k 7 takes ~30 s).
constexpr int kMaxProbeGrid = 4;
constexpr int kMaxProbeDepth = 4;
constexpr int kMaxProbeFilters = 16;
constexpr int kMaxLiteralFilters = 64;

// Throws std::invalid_argument naming the field.
void validate_probe(const FsProbe& probe);

// ln N of the default-style probe for (kernel, stride); computed once per process per
// (kernel, stride, grid, depth, filters) and kept in a process-wide cache (thread-safe).
double probe_fs(int kernel, int stride, const FsProbe& probe);

// The literal probe's raw count for an input depth (see above).
double literal_fs(int64_t input_depth, int filters);

}  // namespace pyddsar
