#pragma once

namespace pyddsar {
int cuda_device_count();
// The CUDA runtime version the kernels were built with and the newest the installed driver supports
// (both as 1000 * major + 10 * minor; driver 0 when there is none). Never aborts.
void cuda_versions(int* runtime, int* driver);
}
