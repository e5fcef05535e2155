// tests/test_simt_errors.cu — the SIMT emulator's reports of kernels that a GPU would hang on or run
// with garbage (a barrier reached by part of a block, divergent barriers, a shuffle waiting for lanes
// that exited, mismatched masks or operations, tensor-core instructions in a partial warp, ldmatrix
// outside shared memory, a host pointer as kernel argument, reads of shared memory never written),
// static __shared__ in a template (refused at compile time), and of misuse of the runtime API; also
// simt_launch with a functor. Each checks that the message
// names the kernel and that the next launch works. On a GPU these are undefined behaviour, so they
// are CPU tests that only the emulated build runs (the GPU build compiles them as skips).
#include <vector>

#include "tests/test_simt_util.cuh"

#ifdef DICE_EMU
// Checks that the launch just made failed with a message containing every given substring.
#define CHECK_LAUNCH_FAILED(code, ...)                                                                     \
    do {                                                                                                   \
        cudaError_t launch_status_ = cudaGetLastError();                                                   \
        CHECK_MSG(launch_status_ == (code), "launch returned %s, want %s", cudaGetErrorName(launch_status_), \
                  cudaGetErrorName(code));                                                                 \
        const char *launch_parts_[] = {__VA_ARGS__};                                                       \
        for (const char *part : launch_parts_)                                                             \
            CHECK_MSG(strstr(simt_last_error_message(), part), "message '%s' lacks '%s'",                  \
                      simt_last_error_message(), part);                                                    \
    } while (0)

// out[i] = 1 for every thread; with limit < blockDim.x only some threads reach the barrier.
__global__ void partial_barrier_kernel(float *out, int limit) {
    if ((int)threadIdx.x < limit) __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f;
}

static int run_partial_barrier(float *out, int limit, DiceError *err) {
    DICE_LAUNCH(partial_barrier_kernel, 2, 64, 0, 0, out, limit);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

__global__ void divergent_barrier_kernel(float *out) {
    if (threadIdx.x % 2) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1.0f;
}

__global__ void shuffle_after_exit_kernel(float *out) {
    if (threadIdx.x >= 16) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (float)threadIdx.x, 1);
}

__global__ void mismatched_mask_kernel(unsigned *out) {
    unsigned mask = threadIdx.x < 16 ? 0xffffffffu : 0xffff0000u;
    out[threadIdx.x] = __ballot_sync(mask, 1);
}

__global__ void mismatched_vote_kernel(unsigned *out) {
    out[threadIdx.x] = threadIdx.x % 2 ? __ballot_sync(0xffffffffu, 1) : (unsigned)__any_sync(0xffffffffu, 1);
}

__global__ void partial_warp_mma_kernel(float *out) {
    const uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    dice_mma_m16n8k16_bf16(d, a, b, d);
    out[threadIdx.x] = d[0];
}

__global__ void ldmatrix_global_kernel(const uint16_t *global, uint32_t *out) {
    uint32_t r[1];
    dice_ldmatrix_x1(r, global + 8 * (threadIdx.x % 8));
    out[threadIdx.x] = r[0];
}

__global__ void copy_kernel(const float *x, float *y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i];
}

// Reads shared memory before writing it (static and dynamic), and shuffles from a lane outside the
// mask: all undefined values, which the emulator makes all-ones bits. out: (blocks, 3, 64).
__global__ void read_undefined_kernel(unsigned *out) {
    __shared__ unsigned s[64];
    DICE_DYNAMIC_SMEM(unsigned, d);
    unsigned t = threadIdx.x, *o = out + blockIdx.x * 3 * 64;
    o[t] = s[t];
    o[64 + t] = d[t];
    o[128 + t] = t % 32 < 16 ? __shfl_sync(0x0000ffffu, t, 20) : 0xffffffffu;
    __syncthreads();
    s[t] = 0;
    d[t] = 0;
}
#endif

DICE_TEST(simt_reports_partial_barrier) {
#ifndef DICE_EMU
    SKIP("emulator only");
#else
    simt_quiet_launch_errors(1);
    DevBuf<float> out;
    CUDA_CHECK(out.alloc(128));
    CHECK_FAILS_WITH(run_partial_barrier(out.p, 40, &tc->err), "kernel 'partial_barrier_kernel' failed in block (0,0,0)");
    CHECK(strstr(tc->err.msg, "cudaErrorLaunchFailure"));
    CHECK_MSG(strstr(tc->err.msg, "__syncthreads at tests/test_simt_errors.cu:") &&
                  strstr(tc->err.msg, "reached by 40 of 64 threads; 24 threads exited (first: thread (40,0,0))"),
              "%s", tc->err.msg);
    CHECK(cudaGetLastError() == cudaSuccess);  // reported once
    CHECK_OK(run_partial_barrier(out.p, 64, &tc->err));  // the emulator is usable again
    std::vector<float> host(128);
    CUDA_CHECK(out.download(host.data()));
    for (float v : host) CHECK(v == 1.0f);
#endif
}

DICE_TEST(simt_reports_divergent_barrier) {
#ifndef DICE_EMU
    SKIP("emulator only");
#else
    simt_quiet_launch_errors(1);
    DevBuf<float> out;
    CUDA_CHECK(out.alloc(64));
    DICE_LAUNCH(divergent_barrier_kernel, 1, 64, 0, 0, out.p);
    CHECK_LAUNCH_FAILED(cudaErrorLaunchFailure, "kernel 'divergent_barrier_kernel'",
                        "threads wait at different __syncthreads: tests/test_simt_errors.cu:", "(32 threads), tests/");
    LAUNCH_CHECKED(partial_barrier_kernel, 1, 64, 0, 0, out.p, 64);
#endif
}

DICE_TEST(simt_reports_warp_collective_errors) {
#ifndef DICE_EMU
    SKIP("emulator only");
#else
    simt_quiet_launch_errors(1);
    DevBuf<float> out;
    DevBuf<unsigned> bits;
    CUDA_CHECK(out.alloc(64));
    CUDA_CHECK(bits.alloc(64));
    DICE_LAUNCH(shuffle_after_exit_kernel, 1, 32, 0, 0, out.p);
    CHECK_LAUNCH_FAILED(cudaErrorLaunchFailure, "kernel 'shuffle_after_exit_kernel'", "16 threads exited",
                        "warp 0: __shfl_xor_sync at tests/test_simt_errors.cu:", "waits for lanes 0xffff0000, exited: 0xffff0000");
    DICE_LAUNCH(mismatched_mask_kernel, 1, 32, 0, 0, bits.p);
    CHECK_LAUNCH_FAILED(cudaErrorLaunchFailure, "kernel 'mismatched_mask_kernel'", "lane 16 calls __ballot_sync",
                        "with mask 0xffff0000 while lane 0 waits", "must pass the same mask");
    DICE_LAUNCH(mismatched_vote_kernel, 1, 32, 0, 0, bits.p);
    CHECK_LAUNCH_FAILED(cudaErrorLaunchFailure, "lane 1 calls __ballot_sync", "while lane 0 waits in __any_sync");
    DICE_LAUNCH(partial_warp_mma_kernel, 1, 48, 0, 0, out.p);
    CHECK_LAUNCH_FAILED(cudaErrorLaunchFailure, "warp 1: mma.sync at tests/test_simt_errors.cu:",
                        "needs all 32 lanes, but the block's last warp has lanes 0x0000ffff only");
    DevBuf<uint16_t> global;
    CUDA_CHECK(global.alloc(64));
    DICE_LAUNCH(ldmatrix_global_kernel, 1, 32, 0, 0, global.p, bits.p);
    CHECK_LAUNCH_FAILED(cudaErrorLaunchFailure, "ldmatrix at tests/test_simt_errors.cu:", "lane 0 gives row address",
                        "not 16 bytes of shared memory");
    LAUNCH_CHECKED(shuffle_after_exit_kernel, 1, 16, 0, 0, out.p);  // 16 threads: the mask names no exited lane
#endif
}

DICE_TEST(simt_reports_bad_launches) {
#ifndef DICE_EMU
    SKIP("emulator only");
#else
    simt_quiet_launch_errors(1);
    std::vector<float> host(64, 3.0f);
    DevBuf<float> x, y;
    CUDA_CHECK(x.upload(host.data(), 64));
    CUDA_CHECK(y.alloc(64));
    DICE_LAUNCH(copy_kernel, 1, 64, 0, 0, host.data(), y.p, 64);
    CHECK_LAUNCH_FAILED(cudaErrorLaunchFailure, "kernel 'copy_kernel' cannot be launched: argument 0 is the pointer",
                        "neither device memory");
    DICE_LAUNCH(copy_kernel, 1, 64, 300 * 1024, 0, x.p, y.p, 64);
    CHECK_LAUNCH_FAILED(cudaErrorInvalidConfiguration, "307200 bytes of dynamic shared memory exceed");
    DICE_LAUNCH(copy_kernel, 1, 64, 64 * 1024, 0, x.p, y.p, 64);
    CHECK_LAUNCH_FAILED(cudaErrorInvalidValue, "need cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize");
    CUDA_CHECK(cudaFuncSetAttribute(copy_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
    LAUNCH_CHECKED(copy_kernel, 1, 64, 64 * 1024, 0, x.p, y.p, 64);
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreate(&stream));
    CUDA_CHECK(cudaStreamDestroy(stream));
    DICE_LAUNCH(copy_kernel, 1, 64, 0, stream, x.p, y.p, 64);
    CHECK_LAUNCH_FAILED(cudaErrorInvalidResourceHandle, "is not a live stream");
    std::vector<float> got(64);
    CUDA_CHECK(y.download(got.data()));
    for (float v : got) CHECK(v == 3.0f);
    float *pinned = nullptr;  // pinned host memory is a valid kernel argument
    CUDA_CHECK(cudaMallocHost(&pinned, 64 * sizeof(float)));
    LAUNCH_CHECKED(copy_kernel, 1, 64, 0, 0, x.p, pinned, 64);
    CHECK(pinned[63] == 3.0f);
    CUDA_CHECK(cudaFreeHost(pinned));
#endif
}

DICE_TEST(simt_launch_functor) {
#ifndef DICE_EMU
    SKIP("emulator only");
#else
    DevBuf<int> out;
    CUDA_CHECK(out.alloc(6 * 10));
    int *p = out.p;
    simt_launch("linear_index_functor", dim3(2, 3), 10, 0, [p] {
        __syncthreads();
        p[(blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x] = (int)(blockIdx.y * 100 + blockIdx.x * 10 + threadIdx.x);
    });
    CUDA_CHECK(cudaGetLastError());
    std::vector<int> host(out.n);
    CUDA_CHECK(out.download(host.data()));
    for (int i = 0; i < 60; i++) CHECK_MSG(host[i] == i / 20 * 100 + i / 10 % 2 * 10 + i % 10, "out[%d] = %d", i, host[i]);
#endif
}

DICE_TEST(simt_undefined_values_are_poison) {
#ifndef DICE_EMU
    SKIP("emulator only");
#else
    DevBuf<unsigned> out;
    CUDA_CHECK(out.alloc(2 * 3 * 64));
    CUDA_CHECK(cudaMemset(out.p, 0, 2 * 3 * 64 * sizeof(unsigned)));
    LAUNCH_CHECKED(read_undefined_kernel, 2, 64, 64 * sizeof(unsigned), 0, out.p);
    std::vector<unsigned> host(out.n);
    CUDA_CHECK(out.download(host.data()));
    for (size_t i = 0; i < host.size(); i++)  // block 1 sees poison again, not block 0's zeros
        CHECK_MSG(host[i] == 0xffffffffu, "block %zu, %s, thread %zu: 0x%08x", i / 192,
                  i % 192 < 64 ? "static smem" : i % 192 < 128 ? "dynamic smem" : "shuffle", i % 64, host[i]);
#endif
}

#ifdef DICE_EMU
// __PRETTY_FUNCTION__ where g++ drops the section of a static (so a static __shared__ there would be neither
// poisoned per block nor shared memory to ldmatrix), and where it keeps it.
template <int N>
static const char *site_in_function_template() {
    return __PRETTY_FUNCTION__;
}
template <typename T>
struct SiteInClassTemplate {
    static const char *member() { return __PRETTY_FUNCTION__; }
};
template <int N>
static const char *site_in_lambda_in_template() {
    return [] { return __PRETTY_FUNCTION__; }();
}
static const char *site_in_plain_function() { return __PRETTY_FUNCTION__; }
#define SIMT_STRINGIFY_(...) #__VA_ARGS__
#define SIMT_EXPANSION_OF_(macro) SIMT_STRINGIFY_(macro)
#endif

// A templated kernel with a static __shared__ array must not compile in the emulated build: __shared__ asserts
// simt_static_shared_allowed(__PRETTY_FUNCTION__), which must refuse every template and lambda context.
DICE_TEST(simt_refuses_static_shared_in_templates) {
#ifndef DICE_EMU
    SKIP("emulator only");
#else
    CHECK(strstr(SIMT_EXPANSION_OF_(__shared__), "static_assert(simt_static_shared_allowed(__PRETTY_FUNCTION__)"));
    CHECK(simt_static_shared_allowed(site_in_plain_function()));
    CHECK(!simt_static_shared_allowed(site_in_function_template<3>()));
    CHECK(!simt_static_shared_allowed(SiteInClassTemplate<float>::member()));
    CHECK(!simt_static_shared_allowed(site_in_lambda_in_template<3>()));
    CHECK(!simt_static_shared_allowed([] { return __PRETTY_FUNCTION__; }()));
    CHECK(!simt_static_shared_allowed([](auto x) { return x ? __PRETTY_FUNCTION__ : ""; }(1)));
#endif
}

DICE_TEST(simt_runtime_api_checks) {
#ifndef DICE_EMU
    SKIP("emulator only");
#else
    unsigned char *d = nullptr;
    CUDA_CHECK(cudaMalloc(&d, 100));
    std::vector<unsigned char> h(200, 0);
    CUDA_CHECK(cudaMemcpy(h.data(), d, 100, cudaMemcpyDeviceToHost));
    for (int i = 0; i < 100; i++) CHECK_MSG(h[i] == 0xff, "cudaMalloc byte %d is 0x%02x, not poisoned", i, h[i]);
    CHECK(cudaMemcpy(h.data(), d, 101, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);  // past the end
    CHECK(strstr(simt_last_error_message(), "the source is not (all) within a cudaMalloc allocation"));
    CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    CHECK(cudaGetLastError() == cudaSuccess);
    CHECK(cudaMemcpy(h.data(), h.data() + 100, 10, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    CHECK(cudaMemcpy(d, d + 50, 10, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);  // source is device memory
    CHECK(strstr(cudaGetErrorString(cudaErrorInvalidValue), "invalid argument (simt: cudaMemcpy HostToDevice"));
    CUDA_CHECK(cudaMemcpy(d, d + 50, 10, cudaMemcpyDeviceToDevice));
    CHECK(cudaMemset(d + 90, 0, 20) == cudaErrorInvalidValue);
    CHECK(cudaFree(h.data()) == cudaErrorInvalidValue);
    CUDA_CHECK(cudaFree(d));
    CHECK(cudaFree(d) == cudaErrorInvalidValue);  // twice
    CHECK(strstr(simt_last_error_message(), "not a pointer returned by cudaMalloc (or already freed)"));
    CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice);
    CHECK(cudaStreamDestroy(reinterpret_cast<cudaStream_t>(h.data())) == cudaErrorInvalidResourceHandle);
    float *pinned = nullptr;
    CUDA_CHECK(cudaMallocHost(&pinned, 16 * sizeof(float)));
    CHECK(cudaFree(pinned) == cudaErrorInvalidValue);
    CUDA_CHECK(cudaFreeHost(pinned));
    cudaGetLastError();
#endif
}
