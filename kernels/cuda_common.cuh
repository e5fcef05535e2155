// kernels/cuda_common.cuh — included first by every .cu file: the CUDA headers (or, in the emulated
// build, the SIMT emulator that runs kernels on the CPU: tests/simt/simt.h), the one way kernels are
// launched, dynamic shared memory, and the helpers kernels share: grid-stride loops, f32 / bf16 element
// access, asynchronous copies (cp.async), tensor cores (mma.sync, ldmatrix), warp reductions.
//
// Launching. Every kernel is launched with DICE_LAUNCH and the launcher checks the launch at once:
//
//   DICE_LAUNCH(softmax_rows_kernel, dim3(rows), dim3(256), smem_bytes, stream, out, in, rows, cols);
//   CUDA_TRY(err, cudaGetLastError());             // nn/cuda_api.h: records the failure, returns -1
//
// On a GPU this is kernel<<<grid, block, smem_bytes, stream>>>(args...). In the emulated build
// (DICE_EMU) the kernel runs to completion inside DICE_LAUNCH and cudaGetLastError() reports a
// barrier or warp-collective deadlock, a bad configuration or a host pointer passed as argument, with
// a message naming the kernel and the block. A templated kernel goes in parentheses so that its commas
// survive the macro: DICE_LAUNCH((gemm_kernel<64, 4>), grid, block, 0, stream, ...).
//
// Shared memory. Static: `__shared__ float tile[32][33];` as usual, in a kernel or device function that is
// neither a template nor a lambda. Dynamic: declare it in the kernel with DICE_DYNAMIC_SMEM(float, smem);
// (a pointer to the launch's smem_bytes, 16-byte aligned; launches above 48 KiB need
// cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) first, on the GPU and in
// the emulator alike). Templated kernels use dynamic shared memory: the emulator keeps static __shared__
// variables in a linker section that it poisons before every block and that ldmatrix accepts, and g++
// ignores the section attribute inside templates (GCC bug 70435), so the emulated build refuses
// __shared__ there with a compile-time error naming this rule (tests/simt/simt.h).
//
// Element access. f32 and bf16 tensors are stored as float and as uint16_t holding bf16 bits;
// dice_load_f32 / dice_store_f32 read and write element i of either as a float (stores round to nearest
// even, nn/dtype.h), dice_load_vec / dice_store_vec V consecutive elements (one 16-byte access when V of
// them fill 16 bytes: the element address is then 16-byte aligned).
//
// Asynchronous copies (sm_80+). dice_cp_async16 copies 16 bytes global -> shared without holding up the
// thread (cp.async.cg); dice_cp_async16_zfill does the same when `valid`, else zero-fills the 16 bytes and
// reads nothing (src-size 0; src must still be a valid address, e.g. the tensor's base). Both addresses
// 16-byte aligned. dice_cp_async_commit() closes the group of this thread's copies issued since the last
// commit; dice_cp_async_wait<N>() waits until at most N of its committed groups are still in flight (follow
// it with __syncthreads() before other threads read the data). The emulator copies at once, which is one of
// the behaviours the hardware allows, so its commit and wait have nothing left to do.
//
// Tensor cores. dice_mma_m16n8k16_{bf16,f16} and dice_ldmatrix_* are mma.sync / ldmatrix, with the
// fragment layouts of the PTX ISA ("Matrix Fragments for mma.m16n8k16 with floating point type",
// "ldmatrix"); with g = lane / 4 and t = lane % 4 (low half of each register first):
//   a[r] = A[g + 8 (r & 1)][2t + 8 (r >> 1) + {0,1}]   A: 16x16, row-major (M x K)
//   b[r] = B[2t + 8 r + {0,1}][g]                       B: 16x8 (K x N)
//   c[i], d[i] = C[g + 8 (i >> 1)][2t + (i & 1)]        C, D: 16x8 fp32
// ldmatrix_xN: lane 8 m + r passes the address of row r of 8x8 matrix m (m < N; 16 bytes, 16-byte
// aligned, in shared memory); regs[m] gets row g, columns 2t and 2t + 1 of matrix m (.trans: of its
// transpose). All 32 lanes of the warp must call them together.
#pragma once
#include <stdint.h>
#include <string.h>

#include "nn/dtype.h"

#ifdef DICE_EMU
#include "simt/simt.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

#ifdef DICE_EMU
#define DICE_LAUNCH(kernel, grid, block, smem_bytes, stream, ...) \
    simt_launch_kernel(#kernel, kernel, grid, block, smem_bytes, stream, ##__VA_ARGS__)
#define DICE_DYNAMIC_SMEM(type, name) type *name = reinterpret_cast<type *>(simt_dynamic_smem())
// The emulated wrappers below also take their caller's file and line, for error messages.
#define DICE_CALLER_ , const char *caller_file = __builtin_FILE(), int caller_line = __builtin_LINE()
#else
#define DICE_LAUNCH(kernel, grid, block, smem_bytes, stream, ...) \
    kernel<<<grid, block, smem_bytes, stream>>>(__VA_ARGS__)
// One byte array for every kernel, so kernels of one file may view it as different types.
#define DICE_DYNAMIC_SMEM(type, name)                                  \
    extern __shared__ __align__(16) unsigned char dice_dynamic_smem_[]; \
    type *name = reinterpret_cast<type *>(dice_dynamic_smem_)
#define DICE_CALLER_
#define DICE_SMEM_ADDRESS_(p) static_cast<uint32_t>(__cvta_generic_to_shared(p))
#endif

// ---------------------------------------------------------------- grid-stride loops
// Blocks of `threads` threads for a grid-stride loop over `work` items: at least 1, at most 65536.
static inline int dice_grid_1d(int64_t work, int threads) {
    int64_t blocks = (work + threads - 1) / threads;
    return (int)(blocks < 1 ? 1 : blocks < 65536 ? blocks : 65536);
}
// for (i = this thread's first item; i < n; i += the grid's threads), i an int64_t.
#define DICE_GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// ---------------------------------------------------------------- element access (f32, bf16 bits)
static __device__ __forceinline__ float dice_load_f32(const float *p, int64_t i) { return p[i]; }
static __device__ __forceinline__ float dice_load_f32(const uint16_t *p, int64_t i) { return dice_bf16_to_f32(p[i]); }
static __device__ __forceinline__ void dice_store_f32(float *p, int64_t i, float v) { p[i] = v; }
static __device__ __forceinline__ void dice_store_f32(uint16_t *p, int64_t i, float v) { p[i] = dice_f32_to_bf16(v); }

// out[k] = p[i + k] as floats, k < V.
template <typename T, int V>
static __device__ __forceinline__ void dice_load_vec(float out[V], const T *p, int64_t i) {
    if constexpr (V * sizeof(T) == 16) {
        uint4 raw = *reinterpret_cast<const uint4 *>(p + i);
        T vals[V];
        memcpy(vals, &raw, sizeof raw);
#pragma unroll
        for (int k = 0; k < V; k++) out[k] = dice_load_f32(vals, k);
    } else {
#pragma unroll
        for (int k = 0; k < V; k++) out[k] = dice_load_f32(p, i + k);
    }
}
// p[i + k] = in[k], k < V.
template <typename T, int V>
static __device__ __forceinline__ void dice_store_vec(T *p, int64_t i, const float in[V]) {
    if constexpr (V * sizeof(T) == 16) {
        T vals[V];
#pragma unroll
        for (int k = 0; k < V; k++) dice_store_f32(vals, k, in[k]);
        uint4 raw;
        memcpy(&raw, vals, sizeof raw);
        *reinterpret_cast<uint4 *>(p + i) = raw;
    } else {
#pragma unroll
        for (int k = 0; k < V; k++) dice_store_f32(p, i + k, in[k]);
    }
}

// ---------------------------------------------------------------- asynchronous copies (cp.async)
static __device__ __forceinline__ void dice_cp_async16(void *smem, const void *src) {
#ifdef DICE_EMU
    memcpy(smem, src, 16);
#else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(DICE_SMEM_ADDRESS_(smem)), "l"(src) : "memory");
#endif
}
static __device__ __forceinline__ void dice_cp_async16_zfill(void *smem, const void *src, bool valid) {
#ifdef DICE_EMU
    if (valid)
        memcpy(smem, src, 16);
    else
        memset(smem, 0, 16);
#else
    unsigned src_bytes = valid ? 16u : 0u;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(DICE_SMEM_ADDRESS_(smem)), "l"(src),
                 "r"(src_bytes)
                 : "memory");
#endif
}
static __device__ __forceinline__ void dice_cp_async_commit() {
#ifndef DICE_EMU
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N>
static __device__ __forceinline__ void dice_cp_async_wait() {
#ifndef DICE_EMU
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// ---------------------------------------------------------------- tensor cores
// d = a * b + c for one 16x8x16 tile per warp, bf16 inputs, fp32 accumulation (d may be c).
static __device__ __forceinline__ void dice_mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                              const float c[4] DICE_CALLER_) {
#ifdef DICE_EMU
    simt_mma_m16n8k16(SIMT_MMA_BF16, d, a, b, c, caller_file, caller_line);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
                   "f"(c[2]), "f"(c[3]));
#endif
}

// The same with f16 inputs.
static __device__ __forceinline__ void dice_mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                             const float c[4] DICE_CALLER_) {
#ifdef DICE_EMU
    simt_mma_m16n8k16(SIMT_MMA_F16, d, a, b, c, caller_file, caller_line);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
                   "f"(c[2]), "f"(c[3]));
#endif
}

static __device__ __forceinline__ void dice_ldmatrix_x1(uint32_t regs[1], const void *row DICE_CALLER_) {
#ifdef DICE_EMU
    simt_ldmatrix(1, 0, regs, row, caller_file, caller_line);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n"
                 : "=r"(regs[0]) : "r"(DICE_SMEM_ADDRESS_(row)) : "memory");
#endif
}
static __device__ __forceinline__ void dice_ldmatrix_x2(uint32_t regs[2], const void *row DICE_CALLER_) {
#ifdef DICE_EMU
    simt_ldmatrix(2, 0, regs, row, caller_file, caller_line);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(regs[0]), "=r"(regs[1]) : "r"(DICE_SMEM_ADDRESS_(row)) : "memory");
#endif
}
static __device__ __forceinline__ void dice_ldmatrix_x4(uint32_t regs[4], const void *row DICE_CALLER_) {
#ifdef DICE_EMU
    simt_ldmatrix(4, 0, regs, row, caller_file, caller_line);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(regs[0]), "=r"(regs[1]), "=r"(regs[2]), "=r"(regs[3])
                 : "r"(DICE_SMEM_ADDRESS_(row)) : "memory");
#endif
}
static __device__ __forceinline__ void dice_ldmatrix_x1_trans(uint32_t regs[1], const void *row DICE_CALLER_) {
#ifdef DICE_EMU
    simt_ldmatrix(1, 1, regs, row, caller_file, caller_line);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                 : "=r"(regs[0]) : "r"(DICE_SMEM_ADDRESS_(row)) : "memory");
#endif
}
static __device__ __forceinline__ void dice_ldmatrix_x2_trans(uint32_t regs[2], const void *row DICE_CALLER_) {
#ifdef DICE_EMU
    simt_ldmatrix(2, 1, regs, row, caller_file, caller_line);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(regs[0]), "=r"(regs[1]) : "r"(DICE_SMEM_ADDRESS_(row)) : "memory");
#endif
}
static __device__ __forceinline__ void dice_ldmatrix_x4_trans(uint32_t regs[4], const void *row DICE_CALLER_) {
#ifdef DICE_EMU
    simt_ldmatrix(4, 1, regs, row, caller_file, caller_line);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(regs[0]), "=r"(regs[1]), "=r"(regs[2]), "=r"(regs[3])
                 : "r"(DICE_SMEM_ADDRESS_(row)) : "memory");
#endif
}

// ---------------------------------------------------------------- packing and warp reductions
// Two floats as a bf16x2 register (round to nearest even): lo in the low half, as fragments want.
static __device__ __forceinline__ uint32_t dice_pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

// Sum / maximum over the 32 lanes of a full warp; every lane gets the result.
static __device__ __forceinline__ float dice_warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}
static __device__ __forceinline__ float dice_warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}
