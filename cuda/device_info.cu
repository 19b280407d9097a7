// Which CUDA devices the statically linked runtime can see. Returns 0, never aborts, when the
// machine has no driver or no GPU, so the module imports everywhere.
#include <cuda_runtime.h>

#include "device_info.h"

namespace pyddsar {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error state
    return 0;
  }
  return n;
}

void cuda_versions(int* runtime, int* driver) {
  *runtime = CUDART_VERSION;  // the runtime linked into the module (static)
  *driver = 0;
  if (cudaDriverGetVersion(driver) != cudaSuccess) {  // 0: no driver installed
    cudaGetLastError();
    *driver = 0;
  }
}

}  // namespace pyddsar
