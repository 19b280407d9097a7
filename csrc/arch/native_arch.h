// The Arch handle the Python layer holds (pyddsar.Arch._native), shared by the binding files.
// A distinct type for Python: a bare std::vector would be converted to a list by pybind11/stl.h.
#pragma once

#include <stdexcept>
#include <tuple>
#include <vector>

#include "arch.h"

namespace pyddsar {

using BlockTuple = std::tuple<int, int, int, int, int, int, int, int>;  // type kernel in out stride btn layers E

struct NativeArch {
  Arch arch;
};

// Throws std::invalid_argument (ValueError) naming the block when the tuples are not a valid Arch.
inline Arch arch_from_tuples(const std::vector<BlockTuple>& blocks) {
  Arch arch;
  arch.reserve(blocks.size());
  for (const auto& t : blocks) {
    Block b;
    const int type = std::get<0>(t);
    if (type < 0 || type > 3) throw std::invalid_argument("block type code must be 0..3");
    b.type = static_cast<BlockType>(type);
    std::tie(std::ignore, b.kernel, b.in, b.out, b.stride, b.bottleneck, b.layers, b.expansion) = t;
    arch.push_back(b);
  }
  validate(arch);
  return arch;
}

}  // namespace pyddsar
