// tests/test_simt_util.cuh — helpers for the CUDA tests in tests/test_simt*.cu (emulated by `make test`,
// on a GPU by `make test-gpu`): CUDA_CHECK and LAUNCH_CHECKED, which fail the test with the error's
// name and text; DevBuf, a device buffer that frees itself and starts poisoned; TestRng, a seeded
// generator for random inputs.
#pragma once
#include <stdint.h>

#include "kernels/cuda_common.cuh"
#include "nn/cuda_api.h"
#include "nn/dtype.h"
#include "tests/test.h"

#define CUDA_CHECK(call)                                                                          \
    do {                                                                                          \
        cudaError_t cuda_check_ = (call);                                                         \
        CHECK_MSG(cuda_check_ == cudaSuccess, "%s: %s: %s", #call, cudaGetErrorName(cuda_check_), \
                  cudaGetErrorString(cuda_check_));                                               \
    } while (0)

// DICE_LAUNCH(args...), then the launch and the kernel's completion must succeed.
#define LAUNCH_CHECKED(...)                      \
    do {                                         \
        DICE_LAUNCH(__VA_ARGS__);                \
        CUDA_CHECK(cudaGetLastError());          \
        CUDA_CHECK(cudaDeviceSynchronize());     \
    } while (0)

template <class T>
struct DevBuf {
    T *p = nullptr;
    size_t n = 0;
    DevBuf() = default;
    DevBuf(const DevBuf &) = delete;
    DevBuf &operator=(const DevBuf &) = delete;
    ~DevBuf() {
        if (p) cudaFree(p);
    }
    // count elements filled with 0xFF bytes (NaN as float, -1 as int), so skipped outputs show.
    cudaError_t alloc(size_t count) {
        if (p) cudaFree(p);
        p = nullptr;
        n = count;
        cudaError_t e = cudaMalloc(&p, count * sizeof(T));
        return e != cudaSuccess ? e : poison();
    }
    cudaError_t poison() { return cudaMemset(p, 0xff, n * sizeof(T)); }
    cudaError_t upload(const T *host, size_t count) {
        cudaError_t e = alloc(count);
        return e != cudaSuccess ? e : cudaMemcpy(p, host, count * sizeof(T), cudaMemcpyHostToDevice);
    }
    cudaError_t download(T *host) const { return cudaMemcpy(host, p, n * sizeof(T), cudaMemcpyDeviceToHost); }
};

// splitmix64, seeded from tc->seed.
struct TestRng {
    uint64_t state;
    uint32_t next_u32() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return (uint32_t)((z ^ (z >> 31)) >> 32);
    }
    float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() >> 8) * (1.0f / 16777216.0f); }
    int range(int lo, int hi) { return lo + (int)(next_u32() % (uint32_t)(hi - lo + 1)); }  // [lo, hi]
};
