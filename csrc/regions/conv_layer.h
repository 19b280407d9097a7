// A one-layer ReLU CNN as Theorem 1 sees it: input h0 x w0 x d0, d1 filters of f1 x f2,
// one stride, no padding.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace pyddsar {

struct ConvLayer {
  int64_t h0, w0, d0;  // input height, width, depth
  int64_t f1, f2;      // filter height, width
  int64_t stride;
  int64_t d1;          // number of filters

  int64_t out_h() const { return (h0 - f1) / stride + 1; }
  int64_t out_w() const { return (w0 - f2) / stride + 1; }
  int64_t cells() const { return out_h() * out_w(); }
  int64_t window() const { return f1 * f2 * d0; }  // n0: inputs seen by one output cell

  ConvLayer transposed() const { return {w0, h0, d0, f2, f1, stride, d1}; }

  // Throws std::invalid_argument (ValueError in Python) naming the offending field.
  void validate() const {
    auto positive = [](int64_t v, const char* name) {
      if (v <= 0)
        throw std::invalid_argument(std::string(name) + " must be positive, got " + std::to_string(v));
    };
    positive(h0, "input height h0");
    positive(w0, "input width w0");
    positive(d0, "input depth d0");
    positive(f1, "kernel height f1");
    positive(f2, "kernel width f2");
    positive(stride, "stride");
    positive(d1, "filters d1");
    if (f1 > h0)
      throw std::invalid_argument("kernel height " + std::to_string(f1) + " is larger than the input height " +
                                  std::to_string(h0) + "; use a kernel of at most the input size");
    if (f2 > w0)
      throw std::invalid_argument("kernel width " + std::to_string(f2) + " is larger than the input width " +
                                  std::to_string(w0) + "; use a kernel of at most the input size");
    if (d1 > 100000)
      throw std::invalid_argument("filters d1 = " + std::to_string(d1) + " is beyond the supported 100000");
    if (h0 > 1000000 || w0 > 1000000 || d0 > 1000000)
      throw std::invalid_argument("input sizes above 1e6 are not supported");
  }
};

}  // namespace pyddsar
