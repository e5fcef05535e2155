// kernels/cudnn_check.h — CUDNN_TRY: run a cuDNN call; on failure record "<call> failed: <cuDNN's message>
// [file:line]" in the DiceError and return -1 (nn/error.h). Real CUDA builds with cuDNN only.
#pragma once
#include <cudnn.h>

#include "nn/error.h"

#define CUDNN_TRY(err, call)                                                                                 \
    do {                                                                                                     \
        cudnnStatus_t cudnn_try_status_ = (call);                                                            \
        if (cudnn_try_status_ != CUDNN_STATUS_SUCCESS)                                                       \
            return dice_fail_at((err), __FILE__, __LINE__, "%s failed: %s", #call,                           \
                                cudnnGetErrorString(cudnn_try_status_));                                     \
    } while (0)
