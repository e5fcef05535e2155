// tests/simt/simt.h — the CUDA kernel language on the CPU: what the project's .cu files see in the
// emulated build (DICE_EMU; included by kernels/cuda_common.cuh, compiled as C++17 by g++).
//
// Model. A launch runs its blocks one after another on the calling host thread. A block's threads are
// cooperative fibers (simt_fiber.cpp): a thread runs until it reaches __syncthreads(), a warp
// collective (shuffle, vote, __syncwarp, __activemask, mma, ldmatrix) or its end, and only there does
// another thread run. So plain loads and stores need no emulation, and memory written before a
// barrier is seen by every thread after it, as CUDA guarantees; code that relies on more (warp-
// synchronous code without __syncwarp) is wrong on Volta and later GPUs too.
//   - __syncthreads() releases when every thread of the block has arrived at the same call site
//     (file:line). Threads that exited, or that wait at another __syncthreads, fail the launch with
//     a message naming the kernel, the block, the sites and how many threads reached each.
//   - A warp collective completes when every lane named in its mask that exists in the block (the
//     last warp of a block may be partial) has arrived with the same mask and the same operation.
//     Lanes that exited or wait elsewhere fail the launch the same way. A shuffle from a lane outside
//     the mask (undefined in CUDA) yields all-ones bits (NaN as float) so that a use shows.
//   - __activemask() returns the lanes of the warp that reach the same __activemask() call site
//     before the block runs out of other work: the emulated meaning of "converged".
//   - Static __shared__ variables live in one linker section that is filled with 0xFF before every
//     block; dynamic shared memory (DICE_DYNAMIC_SMEM) is a fresh 0xFF-filled buffer of the launch's
//     size for every block. So a kernel that reads shared memory it did not write reads NaN. Templates
//     and lambdas cannot declare static __shared__ variables (a compile-time error, see below).
//   - Atomics are real atomics; math intrinsics are the libm functions (fast-math variants exact).
//   - A thread never yields inside a loop of its own: a kernel that spins on a flag another thread of
//     its block, or another block, is to set (without a barrier in between) hangs here. CUDA does not
//     promise such kernels progress either.
// Launches are checked as a GPU would (configuration, 48 KiB dynamic shared memory opt-in) and more:
// a pointer argument must point into cudaMalloc or cudaMallocHost memory. Under AddressSanitizer,
// dynamic shared memory is its own heap block, so overruns are reported.
// Host code in .cu files cannot name local variables threadIdx, blockIdx, blockDim or gridDim here
// (they are macros reading the running fiber's context).
#pragma once
#ifndef __cplusplus
#error "simt.h is C++: the emulated build compiles .cu files as C++17"
#endif
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda_runtime_emu.h"
#include "nn/dtype.h"

// ---------------------------------------------------------------- qualifiers
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
// Block-scope statics in one section, so the emulator can poison all static shared memory at once (and
// ldmatrix can tell shared memory from global). g++ ignores the section attribute on the statics of template
// instantiations, and of lambdas in them (GCC bug 70435): such a variable would land in .bss, neither poisoned
// per block nor shared memory to ldmatrix, so the static_assert refuses __shared__ in a template or lambda.
#define __shared__                                                                                              \
    static_assert(simt_static_shared_allowed(__PRETTY_FUNCTION__),                                               \
                  "a static __shared__ variable in a template or lambda is not emulated (g++ ignores its "      \
                  "section attribute): use DICE_DYNAMIC_SMEM there (kernels/cuda_common.cuh)");                 \
    __attribute__((section("simt_shared"))) static
// Whether g++ honours the section of a static declared in the function whose __PRETTY_FUNCTION__ is `pretty`:
// not in a template instantiation (g++ appends "[with T = ...]") nor in a lambda ("<lambda").
constexpr bool simt_static_shared_allowed(const char *pretty) {
    for (const char *p = pretty; *p; p++) {
        if (p[0] == '[' && p[1] == 'w' && p[2] == 'i' && p[3] == 't' && p[4] == 'h' && p[5] == ' ') return false;
        if (p[0] == '<' && p[1] == 'l' && p[2] == 'a' && p[3] == 'm' && p[4] == 'b' && p[5] == 'd' && p[6] == 'a')
            return false;
    }
    return true;
}

// ---------------------------------------------------------------- built-in types and variables
struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct __align__(8) float2 { float x, y; };
struct __align__(16) float4 { float x, y, z, w; };
struct __align__(8) int2 { int x, y; };
struct __align__(16) int4 { int x, y, z, w; };
struct __align__(8) uint2 { unsigned int x, y; };
struct __align__(16) uint4 { unsigned int x, y, z, w; };
static inline float2 make_float2(float x, float y) { return {x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
static inline int2 make_int2(int x, int y) { return {x, y}; }
static inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
static inline uint2 make_uint2(unsigned int x, unsigned int y) { return {x, y}; }
static inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) {
    return {x, y, z, w};
}

// The running thread's coordinates; simt_self points at the current fiber's copy (null outside a
// kernel). This per-host-thread pointer is the emulator's one piece of global state kernels read.
struct SimtThread {
    uint3 thread_idx, block_idx;
    dim3 block_dim, grid_dim;
};
extern __thread SimtThread *simt_self;
#define threadIdx (simt_self->thread_idx)
#define blockIdx (simt_self->block_idx)
#define blockDim (simt_self->block_dim)
#define gridDim (simt_self->grid_dim)
static constexpr int warpSize = 32;

// ---------------------------------------------------------------- synchronisation (simt_engine.cpp)
// The default arguments record the call site, which tells barriers apart and names them in errors.
void __syncthreads(const char *file = __builtin_FILE(), int line = __builtin_LINE());
static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
void *simt_dynamic_smem();  // the block's dynamic shared memory (DICE_DYNAMIC_SMEM)

// ---------------------------------------------------------------- warp collectives (simt_collectives.cpp)
enum SimtShflMode { SIMT_SHFL_IDX, SIMT_SHFL_UP, SIMT_SHFL_DOWN, SIMT_SHFL_XOR };
uint64_t simt_shfl(SimtShflMode mode, unsigned mask, uint64_t bits, int bytes, int arg, int width,
                   const char *file, int line);
template <class T>
static inline T simt_shfl_typed(SimtShflMode mode, unsigned mask, T var, int arg, int width, const char *file,
                                int line) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8, "shuffles move types of at most 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &var, sizeof(T));
    bits = simt_shfl(mode, mask, bits, (int)sizeof(T), arg, width, file, line);
    T out;
    memcpy(&out, &bits, sizeof(T));
    return out;
}
template <class T>
static inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize,
                            const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return simt_shfl_typed(SIMT_SHFL_IDX, mask, var, src_lane, width, file, line);
}
template <class T>
static inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                               const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return simt_shfl_typed(SIMT_SHFL_UP, mask, var, (int)delta, width, file, line);
}
template <class T>
static inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                                 const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return simt_shfl_typed(SIMT_SHFL_DOWN, mask, var, (int)delta, width, file, line);
}
template <class T>
static inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                                const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return simt_shfl_typed(SIMT_SHFL_XOR, mask, var, lane_mask, width, file, line);
}
unsigned __ballot_sync(unsigned mask, int pred, const char *file = __builtin_FILE(), int line = __builtin_LINE());
int __any_sync(unsigned mask, int pred, const char *file = __builtin_FILE(), int line = __builtin_LINE());
int __all_sync(unsigned mask, int pred, const char *file = __builtin_FILE(), int line = __builtin_LINE());
void __syncwarp(unsigned mask = 0xffffffffu, const char *file = __builtin_FILE(), int line = __builtin_LINE());
unsigned __activemask(const char *file = __builtin_FILE(), int line = __builtin_LINE());

// Tensor-core emulation behind the wrappers of kernels/cuda_common.cuh (full warps only).
enum SimtMmaType { SIMT_MMA_BF16, SIMT_MMA_F16 };
// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32: d = a * b + c per the PTX fragment layout.
void simt_mma_m16n8k16(SimtMmaType type, float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4],
                       const char *file, int line);
// ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{.trans}.shared.b16: `count` 8x8 matrices, lane l giving row l % 8
// of matrix l / 8; lane l receives into regs[m] row l / 4, columns 2 (l % 4) and +1 of matrix m (of the
// transposed matrix when trans is set).
void simt_ldmatrix(int count, int trans, uint32_t *regs, const void *row, const char *file, int line);

// ---------------------------------------------------------------- atomics (real atomics, relaxed)
template <class T>
static inline T simt_atomic_update(T *address, T (*op)(T, T), T value) {
    T old = __atomic_load_n(address, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(address, &old, op(old, value), false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return old;
}
template <class T>
static inline T simt_atomic_update_fp(T *address, T value) {  // floating-point add by compare-and-swap
    T old, sum;
    __atomic_load(address, &old, __ATOMIC_RELAXED);
    do {
        sum = old + value;
    } while (!__atomic_compare_exchange(address, &old, &sum, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return old;
}
static inline int atomicAdd(int *a, int v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }
static inline unsigned atomicAdd(unsigned *a, unsigned v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }
static inline unsigned long long atomicAdd(unsigned long long *a, unsigned long long v) {
    return __atomic_fetch_add(a, v, __ATOMIC_RELAXED);
}
static inline float atomicAdd(float *a, float v) { return simt_atomic_update_fp(a, v); }
static inline double atomicAdd(double *a, double v) { return simt_atomic_update_fp(a, v); }
static inline int atomicSub(int *a, int v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }
static inline unsigned atomicSub(unsigned *a, unsigned v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }
static inline int atomicMax(int *a, int v) {
    return simt_atomic_update<int>(a, [](int x, int y) { return x > y ? x : y; }, v);
}
static inline unsigned atomicMax(unsigned *a, unsigned v) {
    return simt_atomic_update<unsigned>(a, [](unsigned x, unsigned y) { return x > y ? x : y; }, v);
}
static inline int atomicMin(int *a, int v) {
    return simt_atomic_update<int>(a, [](int x, int y) { return x < y ? x : y; }, v);
}
static inline unsigned atomicMin(unsigned *a, unsigned v) {
    return simt_atomic_update<unsigned>(a, [](unsigned x, unsigned y) { return x < y ? x : y; }, v);
}
static inline int atomicAnd(int *a, int v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }
static inline unsigned atomicAnd(unsigned *a, unsigned v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }
static inline int atomicOr(int *a, int v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }
static inline unsigned atomicOr(unsigned *a, unsigned v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }
static inline int atomicExch(int *a, int v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }
static inline unsigned atomicExch(unsigned *a, unsigned v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }
static inline unsigned long long atomicExch(unsigned long long *a, unsigned long long v) {
    return __atomic_exchange_n(a, v, __ATOMIC_RELAXED);
}
static inline float atomicExch(float *a, float v) {
    float old;
    __atomic_exchange(a, &v, &old, __ATOMIC_RELAXED);
    return old;
}
template <class T>
static inline T simt_atomic_cas(T *a, T compare, T value) {
    __atomic_compare_exchange_n(a, &compare, value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;  // the old value either way
}
static inline int atomicCAS(int *a, int c, int v) { return simt_atomic_cas(a, c, v); }
static inline unsigned atomicCAS(unsigned *a, unsigned c, unsigned v) { return simt_atomic_cas(a, c, v); }
static inline unsigned long long atomicCAS(unsigned long long *a, unsigned long long c, unsigned long long v) {
    return simt_atomic_cas(a, c, v);
}

// ---------------------------------------------------------------- math and bit intrinsics
// glibc declares (but does not export) __expf and friends, so these are macros, not functions.
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __log2f(x) log2f(x)
#define __powf(x, y) powf(x, y)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }  // NaN -> 0
static inline unsigned __float_as_uint(float x) { return dice_f32_bits(x); }
static inline float __uint_as_float(unsigned u) { return dice_bits_f32(u); }
static inline int __float_as_int(float x) { return (int)dice_f32_bits(x); }
static inline float __int_as_float(int i) { return dice_bits_f32((uint32_t)i); }
static inline long long __double_as_longlong(double x) {
    long long r;
    memcpy(&r, &x, sizeof r);
    return r;
}
static inline double __longlong_as_double(long long i) {
    double r;
    memcpy(&r, &i, sizeof r);
    return r;
}
// float -> int as the GPU's cvt does it: round as named, saturate, NaN -> 0.
static inline int simt_float_to_int_saturated(float r) {
    if (r != r) return 0;
    if (r >= 2147483648.0f) return 2147483647;
    if (r < -2147483648.0f) return (-2147483647 - 1);
    return (int)r;
}
static inline int __float2int_rn(float x) { return simt_float_to_int_saturated(nearbyintf(x)); }
static inline int __float2int_rz(float x) { return simt_float_to_int_saturated(truncf(x)); }
static inline int __float2int_rd(float x) { return simt_float_to_int_saturated(floorf(x)); }
static inline int __float2int_ru(float x) { return simt_float_to_int_saturated(ceilf(x)); }
static inline float __int2float_rn(int i) { return (float)i; }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
static inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; i++, x >>= 1) r = (r << 1) | (x & 1u);
    return r;
}
template <class T>
static inline T __ldg(const T *p) { return *p; }
#define SIMT_MINMAX(T)                                        \
    static inline T min(T a, T b) { return a < b ? a : b; } \
    static inline T max(T a, T b) { return a > b ? a : b; }
SIMT_MINMAX(int)
SIMT_MINMAX(unsigned int)
SIMT_MINMAX(long)
SIMT_MINMAX(unsigned long)
SIMT_MINMAX(long long)
SIMT_MINMAX(unsigned long long)
#undef SIMT_MINMAX
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }

// ---------------------------------------------------------------- 16-bit floats (cuda_bf16.h / cuda_fp16.h subset)
// Conversions round to nearest even (nn/dtype.h); __x holds the raw bits.
struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) : __x(dice_f32_to_bf16(f)) {}
    operator float() const { return dice_bf16_to_f32(__x); }
};
struct __align__(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
    __nv_bfloat162() = default;
    __nv_bfloat162(__nv_bfloat16 lo, __nv_bfloat16 hi) : x(lo), y(hi) {}
};
struct __half {
    unsigned short __x;
    __half() = default;
    __half(float f) : __x(dice_f32_to_f16(f)) {}
    operator float() const { return dice_f16_to_f32(__x); }
};
struct __align__(4) __half2 {
    __half x, y;
    __half2() = default;
    __half2(__half lo, __half hi) : x(lo), y(hi) {}
};
typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;
typedef __half half;
typedef __half2 half2;

static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
    __nv_bfloat16 h;
    h.__x = u;
    return h;
}
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
static inline __nv_bfloat16 __float2bfloat16(float f) { return __ushort_as_bfloat16(dice_f32_to_bf16(f)); }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
static inline float __bfloat162float(__nv_bfloat16 h) { return dice_bf16_to_f32(h.__x); }
static inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 lo, __nv_bfloat16 hi) { return {lo, hi}; }
static inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
    return {__float2bfloat16(lo), __float2bfloat16(hi)};
}
static inline __nv_bfloat162 __float22bfloat162_rn(float2 v) { return __floats2bfloat162_rn(v.x, v.y); }
static inline float2 __bfloat1622float2(__nv_bfloat162 v) { return {__bfloat162float(v.x), __bfloat162float(v.y)}; }
static inline float __low2float(__nv_bfloat162 v) { return __bfloat162float(v.x); }
static inline float __high2float(__nv_bfloat162 v) { return __bfloat162float(v.y); }

static inline __half __ushort_as_half(unsigned short u) {
    __half h;
    h.__x = u;
    return h;
}
static inline unsigned short __half_as_ushort(__half h) { return h.__x; }
static inline __half __float2half(float f) { return __ushort_as_half(dice_f32_to_f16(f)); }
static inline __half __float2half_rn(float f) { return __float2half(f); }
static inline float __half2float(__half h) { return dice_f16_to_f32(h.__x); }
static inline __half2 __halves2half2(__half lo, __half hi) { return {lo, hi}; }
static inline __half2 __floats2half2_rn(float lo, float hi) { return {__float2half(lo), __float2half(hi)}; }
static inline __half2 __float22half2_rn(float2 v) { return __floats2half2_rn(v.x, v.y); }
static inline float2 __half22float2(__half2 v) { return {__half2float(v.x), __half2float(v.y)}; }
static inline float __low2float(__half2 v) { return __half2float(v.x); }
static inline float __high2float(__half2 v) { return __half2float(v.y); }

// ---------------------------------------------------------------- launching (simt_engine.cpp)
// Runs body(arg) as every thread of every block. kernel identifies the kernel for
// cudaFuncSetAttribute (null for plain functors). Failures are reported through cudaGetLastError().
void simt_launch_raw(const char *name, const void *kernel, dim3 grid, dim3 block, size_t smem_bytes,
                     cudaStream_t stream, void (*body)(void *), void *arg);
// Checks that a kernel's pointer argument points into device or pinned host memory (or is null);
// otherwise records a launch failure naming the kernel and the argument, and returns -1.
int simt_check_pointer_arg(const char *kernel, int index, const void *ptr);

// Launch a functor as the kernel body: simt_launch("name", grid, block, smem, [&] { ... });
template <class F>
static inline void simt_launch(const char *name, dim3 grid, dim3 block, size_t smem_bytes, F body) {
    simt_launch_raw(name, nullptr, grid, block, smem_bytes, nullptr, [](void *f) { (*static_cast<F *>(f))(); },
                    &body);
}

template <class T>
static inline bool simt_pointer_arg_ok(const char *kernel, size_t index, const T &value) {
    if constexpr (std::is_pointer<T>::value && !std::is_function<std::remove_pointer_t<T>>::value)
        return simt_check_pointer_arg(kernel, (int)index, (const void *)value) == 0;
    else
        return true;
}
template <class Tuple, size_t... I>
static inline bool simt_pointer_args_ok(const char *kernel, const Tuple &args, std::index_sequence<I...>) {
    return (simt_pointer_arg_ok(kernel, I, std::get<I>(args)) && ...);
}

// What DICE_LAUNCH expands to: the arguments are converted to the kernel's parameter types once, as
// a launch does, then every thread calls the kernel with its own copy.
template <class... P, class... A>
static inline void simt_launch_kernel(const char *name, void (*kernel)(P...), dim3 grid, dim3 block,
                                      size_t smem_bytes, cudaStream_t stream, A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A), "DICE_LAUNCH: wrong number of kernel arguments");
    std::tuple<std::decay_t<P>...> params{std::forward<A>(args)...};
    if (!simt_pointer_args_ok(name, params, std::index_sequence_for<P...>{})) return;
    auto body = [&params, kernel] { std::apply(kernel, params); };
    simt_launch_raw(name, reinterpret_cast<const void *>(kernel), grid, block, smem_bytes, stream,
                    [](void *f) { (*static_cast<decltype(body) *>(f))(); }, &body);
}

// C++ form of cudaFuncSetAttribute taking the kernel itself, as in the real runtime.
template <class... P>
static inline cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute(reinterpret_cast<const void *>(kernel), attr, value);
}
