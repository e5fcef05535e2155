// tests/simt/cuda_runtime_emu.h — the subset of the CUDA runtime API that dice uses, for the emulated
// build (DICE_CUDA + DICE_EMU): "device" memory is host memory, streams and events are synchronous,
// and kernels launched with DICE_LAUNCH run in the SIMT emulator (simt.h). Usable from C11 and C++.
//
// Differences from the real runtime, all meant to catch bugs that would bite on a GPU:
//   - cudaMalloc / cudaMallocHost fill new memory with 0xFF bytes (NaN as float, -1 as int), so a
//     kernel that skips an output is caught;
//   - cudaMemcpy checks that each side of a HostToDevice / DeviceToHost / DeviceToDevice copy lies
//     inside (or outside) a cudaMalloc allocation as its kind says, and cudaFree rejects pointers
//     that cudaMalloc did not return;
//   - a kernel launch fails (cudaErrorLaunchFailure) when a pointer argument is neither device nor
//     pinned host memory, or on a barrier / warp-collective deadlock; the launch returns only after
//     the kernel ran, and cudaGetLastError() reports the failure right after the launch;
//   - the detail of the last failure is in simt_last_error_message(), and cudaGetErrorString() of that
//     error code appends it, so CUDA_TRY messages name the kernel, block and barrier.
// As in CUDA, the last error is per host thread and cudaGetLastError() resets it.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#define SIMT_DEFAULT(value) = value
#else
#define SIMT_DEFAULT(value)
#endif

// Same numeric values as the real runtime's.
typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorLaunchFailure = 719,
} cudaError_t;

typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
} cudaMemcpyKind;

typedef enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
} cudaFuncAttribute;

typedef struct SimtStream *cudaStream_t;  // opaque; NULL is the default stream
typedef struct SimtEvent *cudaEvent_t;    // opaque

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01

const char *cudaGetErrorName(cudaError_t error);
const char *cudaGetErrorString(cudaError_t error);
cudaError_t cudaGetLastError(void);      // returns and resets this thread's last error
cudaError_t cudaPeekAtLastError(void);   // returns it without resetting

cudaError_t cudaGetDeviceCount(int *count);  // always 1
cudaError_t cudaSetDevice(int device);       // only device 0
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaDeviceSynchronize(void);

cudaError_t cudaMalloc(void **ptr, size_t bytes);      // 256-byte aligned, filled with 0xFF
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMallocHost(void **ptr, size_t bytes);  // "pinned" host memory, filled with 0xFF
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream SIMT_DEFAULT(0));
cudaError_t cudaMemset(void *ptr, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t stream SIMT_DEFAULT(0));

cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);

cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream SIMT_DEFAULT(0));
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaEventDestroy(cudaEvent_t event);

// As on the GPU, a launch with more than 48 KiB of dynamic shared memory needs the kernel's
// cudaFuncAttributeMaxDynamicSharedMemorySize raised first (C++ code passes the kernel itself; see
// the overload in simt.h).
cudaError_t cudaFuncSetAttribute(const void *kernel, cudaFuncAttribute attr, int value);

// Emulator only: the text of this thread's last failure ("" if none yet); kept until the next one.
const char *simt_last_error_message(void);
// Emulator only: when quiet is non-zero, failed launches are not also printed to stderr (for tests
// that provoke failures on purpose). Returns the previous setting.
int simt_quiet_launch_errors(int quiet);

#ifdef __cplusplus
}  // extern "C"

// C++ conveniences of the real runtime: typed pointers for the allocation calls.
template <class T>
static inline cudaError_t cudaMalloc(T **ptr, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void **>(ptr), bytes);
}
template <class T>
static inline cudaError_t cudaMallocHost(T **ptr, size_t bytes) {
    return cudaMallocHost(reinterpret_cast<void **>(ptr), bytes);
}
#endif
#undef SIMT_DEFAULT
