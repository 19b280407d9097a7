// Error handling shared by the CUDA launchers.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace pyddsar {
namespace ops {

inline void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear a sticky launch error where possible
    throw std::runtime_error(std::string("pyddsar CUDA: ") + what + ": " + cudaGetErrorString(err));
  }
}

inline cudaStream_t begin_launch(int device, uintptr_t stream) {
  if (device < 0) throw std::invalid_argument("CUDA device index must be non-negative");
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  return reinterpret_cast<cudaStream_t>(stream);
}

inline void end_launch(const char* what) { cuda_check(cudaGetLastError(), what); }

inline unsigned int blocks_for(int64_t n, int threads) { return static_cast<unsigned int>((n + threads - 1) / threads); }

}  // namespace ops
}  // namespace pyddsar
