// Stand-in for <cuda_runtime.h> in the CPU emulator: the host API and the device side.
#pragma once

#include <cuda_runtime_api.h>

#include "../simt.h"  // tests/cuda_emulator/simt.h
