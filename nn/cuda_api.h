// nn/cuda_api.h — the one place host code gets the CUDA runtime from, and CUDA_TRY.
//
// Three builds share the same sources:
//   CPU only        (neither macro):           no CUDA device; the "cuda" device reports an error
//   CUDA            (DICE_CUDA):               the real CUDA runtime
//   emulated CUDA   (DICE_CUDA + DICE_EMU):    the SIMT emulator's runtime (tests/simt), so the
//                                              CUDA code paths run and are tested on the CPU
#pragma once
#include "error.h"

#if defined(DICE_CUDA) && defined(DICE_EMU)
#include "simt/cuda_runtime_emu.h"
#elif defined(DICE_CUDA)
#include <cuda_runtime.h>
#endif

#ifdef DICE_CUDA
// Run a CUDA runtime call; on failure record "<call> failed: <cuda error name>: <text>" and return -1.
#define CUDA_TRY(err, call)                                                              \
    do {                                                                                 \
        cudaError_t cuda_try_status_ = (call);                                           \
        if (cuda_try_status_ != cudaSuccess)                                             \
            return dice_fail_at((err), __FILE__, __LINE__, "%s failed: %s: %s", #call,   \
                                cudaGetErrorName(cuda_try_status_),                      \
                                cudaGetErrorString(cuda_try_status_));                   \
    } while (0)
#endif
