#pragma once

namespace pyddsar {
int cuda_device_count();
}
