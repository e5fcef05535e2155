// tests/test_simt.cu — the SIMT emulator (tests/simt) running kernels written the project's way:
// DICE_LAUNCH, static and dynamic shared memory with barriers, every warp shuffle against a host model
// of CUDA's documented semantics, votes with partial masks and partial warps, atomics, streams and
// events. These are DICE_CUDA_TESTs: `make test` runs them in the emulator, `make test-gpu` on a GPU.
// Tensor cores: test_simt_mma.cu; the emulator's failure reports: test_simt_errors.cu.
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <vector>

#include "tests/test_simt_util.cuh"

// ---------------------------------------------------------------- block reduction
// Sum of v over the first `lanes` lanes of the warp, in lane 0 (lanes may be fewer than 32 in the
// last warp of a block; the mask names exactly the lanes that exist).
static __device__ float warp_sum_lanes(float v, unsigned lanes) {
    unsigned mask = lanes >= 32 ? 0xffffffffu : (1u << lanes) - 1u, lane = threadIdx.x % 32;
    for (unsigned offset = 16; offset > 0; offset >>= 1) {
        float other = __shfl_down_sync(mask, v, offset);
        if (lane + offset < lanes) v += other;
    }
    return v;
}

// sums[b] = sum of x over the chunk of 4 * blockDim.x elements of block b (x: (n,), sums: (gridDim.x,)).
__global__ void block_sum_kernel(const float *x, float *sums, int n) {
    __shared__ float warp_sums[32];
    unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = (blockDim.x + 31) / 32;
    unsigned lanes = min(32u, blockDim.x - warp * 32);
    long base = (long)blockIdx.x * blockDim.x * 4;
    float v = 0.0f;
    for (int k = 0; k < 4; k++) {
        long i = base + (long)k * blockDim.x + threadIdx.x;
        if (i < n) v += x[i];
    }
    v = warp_sum_lanes(v, lanes);
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < nwarps ? warp_sums[lane] : 0.0f;
        v = warp_sum_lanes(v, lanes);
        if (lane == 0) sums[blockIdx.x] = v;
    }
}

DICE_CUDA_TEST(simt_block_reduction) {
    TestRng rng = {tc->seed};
    const int sizes[] = {1, 37, 1000, 4000 + rng.range(0, 999)};
    const unsigned blocks[] = {1, 20, 32, 40, 64, 96, 100, 256, 333, 1000, 1024};
    for (int n : sizes) {
        std::vector<float> x(n);
        for (float &v : x) v = rng.uniform(-1.0f, 1.0f);
        DevBuf<float> dx, dsums;
        CUDA_CHECK(dx.upload(x.data(), n));
        for (unsigned bs : blocks) {
            int grid = (int)((n + 4 * bs - 1) / (4 * bs));
            CUDA_CHECK(dsums.alloc(grid));
            LAUNCH_CHECKED(block_sum_kernel, grid, bs, 0, 0, dx.p, dsums.p, n);
            std::vector<float> sums(grid);
            CUDA_CHECK(dsums.download(sums.data()));
            for (int b = 0; b < grid; b++) {
                double want = 0, scale = 0;
                for (long i = (long)b * 4 * bs; i < std::min((long)n, (long)(b + 1) * 4 * bs); i++) {
                    want += x[i];
                    scale += fabs(x[i]);
                }
                CHECK_MSG(fabs(sums[b] - want) <= 1e-5 * scale + 1e-6, "n %d, block size %u, block %d: %.9g, want %.9g",
                          n, bs, b, sums[b], want);
            }
        }
    }
}

// ---------------------------------------------------------------- tiled transpose
#define TILE 32
// out (cols, rows) = in (rows, cols) transposed, through a padded static shared tile; block (32, 8).
__global__ void transpose_kernel(const float *in, float *out, int rows, int cols) {
    __shared__ float tile[TILE][TILE + 1];
    int c0 = blockIdx.x * TILE, r0 = blockIdx.y * TILE;
    for (int dy = threadIdx.y; dy < TILE; dy += blockDim.y) {
        int r = r0 + dy, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[dy][threadIdx.x] = in[(long)r * cols + c];
    }
    __syncthreads();
    for (int dy = threadIdx.y; dy < TILE; dy += blockDim.y) {
        int c = c0 + dy, r = r0 + threadIdx.x;
        if (c < cols && r < rows) out[(long)c * rows + r] = tile[threadIdx.x][dy];
    }
}

DICE_CUDA_TEST(simt_transpose_static_smem) {
    TestRng rng = {tc->seed};
    const int shapes[][2] = {{1, 1}, {31, 33}, {32, 32}, {100, 37}, {64, 1}, {257, 129}};
    for (const auto &s : shapes) {
        int rows = s[0], cols = s[1];
        std::vector<float> in((size_t)rows * cols), out(in.size());
        for (float &v : in) v = rng.uniform(-10.0f, 10.0f);
        DevBuf<float> din, dout;
        CUDA_CHECK(din.upload(in.data(), in.size()));
        CUDA_CHECK(dout.alloc(in.size()));
        dim3 grid((cols + TILE - 1) / TILE, (rows + TILE - 1) / TILE);
        LAUNCH_CHECKED(transpose_kernel, grid, dim3(TILE, 8), 0, 0, din.p, dout.p, rows, cols);
        CUDA_CHECK(dout.download(out.data()));
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                CHECK_MSG(out[(size_t)c * rows + r] == in[(size_t)r * cols + c], "%dx%d: out[%d][%d] = %g, want %g",
                          rows, cols, c, r, out[(size_t)c * rows + r], in[(size_t)r * cols + c]);
    }
}

// ---------------------------------------------------------------- dynamic shared memory
// y = inclusive prefix sums of x within each block of blockDim.x elements (Hillis-Steele scan in
// two halves of 2 * blockDim.x doubles of dynamic shared memory).
__global__ void block_scan_kernel(const double *x, double *y, int n) {
    DICE_DYNAMIC_SMEM(double, buf);
    unsigned t = threadIdx.x;
    long i = (long)blockIdx.x * blockDim.x + t;
    double *src = buf, *dst = buf + blockDim.x;
    src[t] = i < n ? x[i] : 0.0;
    __syncthreads();
    for (unsigned offset = 1; offset < blockDim.x; offset <<= 1) {
        dst[t] = src[t] + (t >= offset ? src[t - offset] : 0.0);
        __syncthreads();
        double *swap = src;
        src = dst;
        dst = swap;
    }
    if (i < n) y[i] = src[t];
}

// y = x reversed within each block of blockDim.x elements (the last block may be partial), through
// dynamic shared memory viewed as int (another type than above, in the same file).
__global__ void block_reverse_kernel(const int *x, int *y, int n) {
    DICE_DYNAMIC_SMEM(int, buf);
    long base = (long)blockIdx.x * blockDim.x;
    int count = (int)min((long)blockDim.x, n - base);
    if ((int)threadIdx.x < count) buf[threadIdx.x] = x[base + threadIdx.x];
    __syncthreads();
    if ((int)threadIdx.x < count) y[base + threadIdx.x] = buf[count - 1 - threadIdx.x];
}

DICE_CUDA_TEST(simt_dynamic_smem) {
    TestRng rng = {tc->seed};
    const unsigned blocks[] = {1, 33, 128, 500};
    const int sizes[] = {1, 77, 1000 + rng.range(0, 99)};
    for (int n : sizes) {
        std::vector<double> x(n), y(n);
        std::vector<int> xi(n), yi(n);
        for (int i = 0; i < n; i++) {
            x[i] = rng.range(-1000, 1000);  // integers: the sums are exact in any order
            xi[i] = rng.range(-100000, 100000);
        }
        DevBuf<double> dx, dy;
        DevBuf<int> dxi, dyi;
        CUDA_CHECK(dx.upload(x.data(), n));
        CUDA_CHECK(dxi.upload(xi.data(), n));
        for (unsigned bs : blocks) {
            int grid = (int)((n + bs - 1) / bs);
            CUDA_CHECK(dy.alloc(n));
            CUDA_CHECK(dyi.alloc(n));
            LAUNCH_CHECKED(block_scan_kernel, grid, bs, 2 * bs * sizeof(double), 0, dx.p, dy.p, n);
            LAUNCH_CHECKED(block_reverse_kernel, grid, bs, bs * sizeof(int), 0, dxi.p, dyi.p, n);
            CUDA_CHECK(dy.download(y.data()));
            CUDA_CHECK(dyi.download(yi.data()));
            double run = 0;
            for (int i = 0; i < n; i++) {
                run = (i % bs == 0 ? 0 : run) + x[i];
                CHECK_MSG(y[i] == run, "scan n %d block %u: y[%d] = %g, want %g", n, bs, i, y[i], run);
                int base = i / (int)bs * (int)bs, count = std::min((int)bs, n - base);
                CHECK_MSG(yi[i] == xi[base + count - 1 - (i - base)], "reverse n %d block %u: y[%d] = %d", n, bs, i,
                          yi[i]);
            }
        }
    }
}

// ---------------------------------------------------------------- shuffles
enum { MODE_IDX, MODE_UP, MODE_DOWN, MODE_XOR };

template <class T>
static __device__ T shfl_by_mode(int mode, T v, int arg, int width) {
    switch (mode) {
    case MODE_IDX: return __shfl_sync(0xffffffffu, v, arg, width);
    case MODE_UP: return __shfl_up_sync(0xffffffffu, v, (unsigned)arg, width);
    case MODE_DOWN: return __shfl_down_sync(0xffffffffu, v, (unsigned)arg, width);
    default: return __shfl_xor_sync(0xffffffffu, v, arg, width);
    }
}

// Every lane shuffles a float, a double, a long long and a bf16 pair (as raw bits) the same way.
__global__ void shfl_kernel(const float *f, const double *d, const long long *ll, const unsigned *bf, float *fo,
                            double *dout, long long *llo, unsigned *bfo, int mode, int arg, int width) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    fo[i] = shfl_by_mode(mode, f[i], arg, width);
    dout[i] = shfl_by_mode(mode, d[i], arg, width);
    llo[i] = shfl_by_mode(mode, ll[i], arg, width);
    __nv_bfloat162 b;
    memcpy(&b, &bf[i], sizeof b);
    b = shfl_by_mode(mode, b, arg, width);
    memcpy(&bfo[i], &b, sizeof b);
}

// The lane whose value `lane` receives, from the CUDA Programming Guide's description: lanes form
// segments of `width`; idx reads lane src_lane modulo width of the caller's segment; up / down read
// lane -/+ delta unless that leaves the segment, then the caller's own value; xor reads lane ^ mask,
// which may reach an earlier segment, but a later one gives the caller's own value.
static int shfl_source(int mode, int lane, int arg, int width) {
    int start = lane / width * width;
    switch (mode) {
    case MODE_IDX: return start + ((arg % width) + width) % width;
    case MODE_UP: return lane - arg >= start ? lane - arg : lane;
    case MODE_DOWN: return lane + arg < start + width ? lane + arg : lane;
    default: return (lane ^ arg) < start + width ? lane ^ arg : lane;
    }
}

DICE_CUDA_TEST(simt_shuffles) {
    const int n = 64;  // two warps
    std::vector<float> f(n), fo(n);
    std::vector<double> d(n), dout(n);
    std::vector<long long> ll(n), llo(n);
    std::vector<unsigned> bf(n), bfo(n);
    TestRng rng = {tc->seed};
    for (int i = 0; i < n; i++) {
        f[i] = rng.uniform(-100.0f, 100.0f);
        d[i] = (double)rng.next_u32() * 1e6 + i;  // uses the upper 32 bits
        ll[i] = ((long long)rng.next_u32() << 31) ^ i;
        bf[i] = dice_f32_to_bf16((float)i) | (uint32_t)dice_f32_to_bf16(-0.5f * i) << 16;
    }
    DevBuf<float> df, dfo;
    DevBuf<double> dd, ddo;
    DevBuf<long long> dll, dllo;
    DevBuf<unsigned> dbf, dbfo;
    CUDA_CHECK(df.upload(f.data(), n));
    CUDA_CHECK(dd.upload(d.data(), n));
    CUDA_CHECK(dll.upload(ll.data(), n));
    CUDA_CHECK(dbf.upload(bf.data(), n));
    CUDA_CHECK(dfo.alloc(n));
    CUDA_CHECK(ddo.alloc(n));
    CUDA_CHECK(dllo.alloc(n));
    CUDA_CHECK(dbfo.alloc(n));
    static const char *names[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync"};
    const std::vector<int> args[] = {{0, 3, 5, 13, 31, 40, -1}, {0, 1, 2, 3, 7, 16}, {0, 1, 2, 3, 7, 16},
                                     {1, 2, 4, 7, 8, 16, 31}};
    for (int mode = 0; mode < 4; mode++)
        for (int width : {8, 16, 32})
            for (int arg : args[mode]) {
                CUDA_CHECK(dfo.poison());
                CUDA_CHECK(ddo.poison());
                CUDA_CHECK(dllo.poison());
                CUDA_CHECK(dbfo.poison());
                LAUNCH_CHECKED(shfl_kernel, 1, n, 0, 0, df.p, dd.p, dll.p, dbf.p, dfo.p, ddo.p, dllo.p, dbfo.p, mode,
                               arg, width);
                CUDA_CHECK(dfo.download(fo.data()));
                CUDA_CHECK(ddo.download(dout.data()));
                CUDA_CHECK(dllo.download(llo.data()));
                CUDA_CHECK(dbfo.download(bfo.data()));
                for (int i = 0; i < n; i++) {
                    int src = i / 32 * 32 + shfl_source(mode, i % 32, arg, width);
                    CHECK_MSG(fo[i] == f[src] && dout[i] == d[src] && llo[i] == ll[src] && bfo[i] == bf[src],
                              "%s(arg %d, width %d): thread %d got float %g double %.17g long long %lld bf16x2 0x%08x, "
                              "want those of thread %d",
                              names[mode], arg, width, i, fo[i], dout[i], llo[i], bfo[i], src);
                }
            }
}

// Lanes 0..15 of each warp shuffle among themselves (mask 0x0000ffff, width 16); the others keep
// their value. With blockDim.x = 48 the second warp has just those 16 lanes.
__global__ void shfl_half_warp_kernel(const float *x, float *xor_out, float *down_out) {
    unsigned i = threadIdx.x, lane = i % 32;
    float v = x[i];
    xor_out[i] = v;
    down_out[i] = v;
    if (lane < 16) {
        xor_out[i] = __shfl_xor_sync(0x0000ffffu, v, 5, 16);
        down_out[i] = __shfl_down_sync(0x0000ffffu, v, 3, 16);
    }
}

DICE_CUDA_TEST(simt_shuffles_partial_mask) {
    TestRng rng = {tc->seed};
    for (int n : {48, 64}) {
        std::vector<float> x(n), xo(n), dn(n);
        for (float &v : x) v = rng.uniform(-1.0f, 1.0f);
        DevBuf<float> dx, dxo, ddn;
        CUDA_CHECK(dx.upload(x.data(), n));
        CUDA_CHECK(dxo.alloc(n));
        CUDA_CHECK(ddn.alloc(n));
        LAUNCH_CHECKED(shfl_half_warp_kernel, 1, n, 0, 0, dx.p, dxo.p, ddn.p);
        CUDA_CHECK(dxo.download(xo.data()));
        CUDA_CHECK(ddn.download(dn.data()));
        for (int i = 0; i < n; i++) {
            int lane = i % 32, base = i - lane;
            int want_xor = lane < 16 ? base + shfl_source(MODE_XOR, lane, 5, 16) : i;
            int want_down = lane < 16 ? base + shfl_source(MODE_DOWN, lane, 3, 16) : i;
            CHECK_MSG(xo[i] == x[want_xor], "block %d, thread %d: xor got %g, want %g", n, i, xo[i], x[want_xor]);
            CHECK_MSG(dn[i] == x[want_down], "block %d, thread %d: down got %g, want %g", n, i, dn[i], x[want_down]);
        }
    }
}

// ---------------------------------------------------------------- warp helpers of cuda_common.cuh
// Every lane gets its warp's sum and maximum of x; packed[i] = bf16 pair (x[i], -2 x[i]).
__global__ void warp_helpers_kernel(const float *x, float *sum, float *mx, uint32_t *packed) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    sum[i] = dice_warp_sum(x[i]);
    mx[i] = dice_warp_max(x[i]);
    packed[i] = dice_pack_bf16x2(x[i], -2.0f * x[i]);
}

DICE_CUDA_TEST(simt_warp_helpers) {
    const int n = 128;
    TestRng rng = {tc->seed};
    std::vector<float> x(n), sum(n), mx(n);
    std::vector<uint32_t> packed(n);
    for (float &v : x) v = rng.uniform(-3.0f, 3.0f);
    DevBuf<float> dx, dsum, dmx;
    DevBuf<uint32_t> dpacked;
    CUDA_CHECK(dx.upload(x.data(), n));
    CUDA_CHECK(dsum.alloc(n));
    CUDA_CHECK(dmx.alloc(n));
    CUDA_CHECK(dpacked.alloc(n));
    LAUNCH_CHECKED(warp_helpers_kernel, 2, 64, 0, 0, dx.p, dsum.p, dmx.p, dpacked.p);
    CUDA_CHECK(dsum.download(sum.data()));
    CUDA_CHECK(dmx.download(mx.data()));
    CUDA_CHECK(dpacked.download(packed.data()));
    for (int w = 0; w < n / 32; w++) {
        double want_sum = 0, scale = 0;
        float want_max = x[w * 32];
        for (int l = 0; l < 32; l++) {
            want_sum += x[w * 32 + l];
            scale += fabs(x[w * 32 + l]);
            want_max = std::max(want_max, x[w * 32 + l]);
        }
        for (int l = 0; l < 32; l++) {
            int i = w * 32 + l;
            CHECK_MSG(sum[i] == sum[w * 32] && fabs(sum[i] - want_sum) <= 1e-6 * scale, "warp %d lane %d: sum %.9g, want %.9g",
                      w, l, sum[i], want_sum);
            CHECK_MSG(mx[i] == want_max, "warp %d lane %d: max %g, want %g", w, l, mx[i], want_max);
            uint32_t want = dice_f32_to_bf16(x[i]) | (uint32_t)dice_f32_to_bf16(-2.0f * x[i]) << 16;
            CHECK_MSG(packed[i] == want, "thread %d: packed 0x%08x, want 0x%08x", i, packed[i], want);
        }
    }
}

// ---------------------------------------------------------------- votes
// Lanes named in mask_base (and present in the block) vote on pred; the others write sentinels.
__global__ void vote_kernel(const int *pred, unsigned mask_base, unsigned *ballot, int *any, int *all) {
    unsigned i = threadIdx.x, lane = i % 32, first = i - lane;
    unsigned exist = blockDim.x - first >= 32 ? 0xffffffffu : (1u << (blockDim.x - first)) - 1u;
    unsigned mask = mask_base & exist;
    if (mask >> lane & 1) {
        ballot[i] = __ballot_sync(mask, pred[i]);
        any[i] = __any_sync(mask, pred[i]);
        all[i] = __all_sync(mask, pred[i]);
        __syncwarp(mask);
    } else {
        ballot[i] = 0xdeadbeefu;
        any[i] = all[i] = -7;
    }
}

DICE_CUDA_TEST(simt_votes) {
    TestRng rng = {tc->seed};
    const unsigned masks[] = {0xffffffffu, 0x0000ffffu, 0xaaaaaaaau, 0x80000001u, rng.next_u32() | 1u};
    for (int n : {64, 48, 7})
        for (unsigned mask : masks)
            for (int kind = 0; kind < 3; kind++) {  // random predicates, all true, one true
                std::vector<int> pred(n);
                for (int i = 0; i < n; i++) pred[i] = kind == 0 ? (int)(rng.next_u32() % 3) : kind == 1 ? 5 : i % 32 == 5;
                std::vector<unsigned> ballot(n);
                std::vector<int> any(n), all(n);
                DevBuf<int> dpred, dany, dall;
                DevBuf<unsigned> dballot;
                CUDA_CHECK(dpred.upload(pred.data(), n));
                CUDA_CHECK(dballot.alloc(n));
                CUDA_CHECK(dany.alloc(n));
                CUDA_CHECK(dall.alloc(n));
                LAUNCH_CHECKED(vote_kernel, 1, n, 0, 0, dpred.p, mask, dballot.p, dany.p, dall.p);
                CUDA_CHECK(dballot.download(ballot.data()));
                CUDA_CHECK(dany.download(any.data()));
                CUDA_CHECK(dall.download(all.data()));
                for (int w = 0; w * 32 < n; w++) {
                    int lanes = std::min(32, n - w * 32);
                    unsigned exist = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u, m = mask & exist, want = 0;
                    for (int l = 0; l < lanes; l++)
                        if ((m >> l & 1) && pred[w * 32 + l]) want |= 1u << l;
                    for (int l = 0; l < lanes; l++) {
                        int i = w * 32 + l;
                        bool in = m >> l & 1;
                        CHECK_MSG(ballot[i] == (in ? want : 0xdeadbeefu), "block %d mask 0x%08x kind %d thread %d: "
                                  "ballot 0x%08x, want 0x%08x", n, mask, kind, i, ballot[i], in ? want : 0xdeadbeefu);
                        CHECK_MSG(any[i] == (in ? want != 0 : -7) && all[i] == (in ? want == m : -7),
                                  "block %d mask 0x%08x kind %d thread %d: any %d all %d", n, mask, kind, i, any[i], all[i]);
                    }
                }
            }
}

// Lanes where lane % 3 == 0 ask which lanes run with them.
__global__ void activemask_kernel(unsigned *out) {
    unsigned m = 0;
    if (threadIdx.x % 3 == 0) m = __activemask();
    out[threadIdx.x] = m;
}

DICE_CUDA_TEST(simt_activemask) {
    DevBuf<unsigned> dout;
    CUDA_CHECK(dout.alloc(32));
    LAUNCH_CHECKED(activemask_kernel, 1, 32, 0, 0, dout.p);
    unsigned out[32], branch = 0;
    CUDA_CHECK(dout.download(out));
    for (int l = 0; l < 32; l += 3) branch |= 1u << l;
    for (int l = 0; l < 32; l++) {
        if (l % 3) continue;
        // A GPU may split the branch further; it never adds lanes outside it and always names the caller.
        CHECK_MSG((out[l] >> l & 1) && !(out[l] & ~branch), "lane %d: __activemask() = 0x%08x", l, out[l]);
#ifdef DICE_EMU
        CHECK_MSG(out[l] == branch, "lane %d: __activemask() = 0x%08x, want 0x%08x", l, out[l], branch);
#endif
    }
}

// ---------------------------------------------------------------- atomics
struct AtomicCounters {
    int add_i[4], sub_i[4], max_i[4], min_i[4];
    unsigned add_u[4], max_u[4], min_u[4];
    float add_f[4];
    double add_d[4];
    unsigned long long add_ull[4];
    int exch_slot;
    unsigned cas_count;
};

// Thread i adds vals[i] (and functions of it) into counter i % 4 of each kind, swaps its index into
// one slot (keeping what it took out), and increments a counter by compare-and-swap.
__global__ void atomics_kernel(AtomicCounters *c, const int *vals, int *exch_old, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int v = vals[i], k = i % 4;
    unsigned h = (unsigned)v * 2654435761u;
    atomicAdd(&c->add_i[k], v);
    atomicSub(&c->sub_i[k], v);
    atomicMax(&c->max_i[k], v);
    atomicMin(&c->min_i[k], v);
    atomicAdd(&c->add_u[k], (unsigned)(v & 0xff));
    atomicMax(&c->max_u[k], h);
    atomicMin(&c->min_u[k], h);
    atomicAdd(&c->add_f[k], (float)v);
    atomicAdd(&c->add_d[k], v * 0.5);
    atomicAdd(&c->add_ull[k], (unsigned long long)(v & 0xffff) << 32);
    exch_old[i] = atomicExch(&c->exch_slot, i);
    unsigned old;
    do {
        old = *(volatile unsigned *)&c->cas_count;
    } while (atomicCAS(&c->cas_count, old, old + 1) != old);
}

DICE_CUDA_TEST(simt_atomics) {
    TestRng rng = {tc->seed};
    int n = 1000 + rng.range(0, 999);
    std::vector<int> vals(n), exch_old(n);
    for (int &v : vals) v = rng.range(-1000, 1000);
    AtomicCounters init, got, want;
    memset(&init, 0, sizeof init);
    for (int k = 0; k < 4; k++) {
        init.max_i[k] = -2147483647 - 1;
        init.min_i[k] = 2147483647;
        init.min_u[k] = 0xffffffffu;
    }
    init.exch_slot = -1;
    want = init;
    for (int i = 0; i < n; i++) {
        int v = vals[i], k = i % 4;
        unsigned h = (unsigned)v * 2654435761u;
        want.add_i[k] += v;
        want.sub_i[k] -= v;
        want.max_i[k] = std::max(want.max_i[k], v);
        want.min_i[k] = std::min(want.min_i[k], v);
        want.add_u[k] += (unsigned)(v & 0xff);
        want.max_u[k] = std::max(want.max_u[k], h);
        want.min_u[k] = std::min(want.min_u[k], h);
        want.add_f[k] += (float)v;  // integers below 2^24: exact in any order
        want.add_d[k] += v * 0.5;
        want.add_ull[k] += (unsigned long long)(v & 0xffff) << 32;
    }
    DevBuf<AtomicCounters> dc;
    DevBuf<int> dvals, dold;
    CUDA_CHECK(dc.upload(&init, 1));
    CUDA_CHECK(dvals.upload(vals.data(), n));
    CUDA_CHECK(dold.alloc(n));
    LAUNCH_CHECKED(atomics_kernel, (n + 255) / 256, 256, 0, 0, dc.p, dvals.p, dold.p, n);
    CUDA_CHECK(dc.download(&got));
    CUDA_CHECK(dold.download(exch_old.data()));
    for (int k = 0; k < 4; k++) {
        CHECK_MSG(got.add_i[k] == want.add_i[k] && got.sub_i[k] == want.sub_i[k], "int add/sub counter %d", k);
        CHECK_MSG(got.max_i[k] == want.max_i[k] && got.min_i[k] == want.min_i[k], "int max/min counter %d", k);
        CHECK_MSG(got.add_u[k] == want.add_u[k], "unsigned add counter %d", k);
        CHECK_MSG(got.max_u[k] == want.max_u[k] && got.min_u[k] == want.min_u[k], "unsigned max/min counter %d", k);
        CHECK_MSG(got.add_f[k] == want.add_f[k], "float add counter %d: %g, want %g", k, got.add_f[k], want.add_f[k]);
        CHECK_MSG(got.add_d[k] == want.add_d[k], "double add counter %d: %g, want %g", k, got.add_d[k], want.add_d[k]);
        CHECK_MSG(got.add_ull[k] == want.add_ull[k], "unsigned long long add counter %d", k);
    }
    CHECK_MSG(got.cas_count == (unsigned)n, "compare-and-swap counter %u, want %d", got.cas_count, n);
    // What the exchanges took out, plus what is left, is the initial -1 and every index once.
    exch_old.push_back(got.exch_slot);
    std::sort(exch_old.begin(), exch_old.end());
    for (int i = 0; i <= n; i++) CHECK_MSG(exch_old[i] == i - 1, "exchange: sorted value %d is %d", i, exch_old[i]);
}

// ---------------------------------------------------------------- streams, events, configuration errors
__global__ void scale_kernel(float *x, float s, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}

DICE_CUDA_TEST(simt_streams_events) {
    const int n = 1000;
    std::vector<float> x(n), y(n);
    for (int i = 0; i < n; i++) x[i] = (float)i;
    cudaStream_t stream;
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaStreamCreate(&stream));
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    DevBuf<float> dx;
    CUDA_CHECK(dx.alloc(n));
    CUDA_CHECK(cudaEventRecord(start, stream));
    CUDA_CHECK(cudaMemcpyAsync(dx.p, x.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
    DICE_LAUNCH(scale_kernel, (n + 127) / 128, 128, 0, stream, dx.p, 2.0f, n);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaMemsetAsync(dx.p + n / 2, 0, (n - n / 2) * sizeof(float), stream));
    CUDA_CHECK(cudaMemcpyAsync(y.data(), dx.p, n * sizeof(float), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaEventRecord(stop, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = -1;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    CHECK_MSG(ms >= 0, "elapsed %g ms", ms);
    for (int i = 0; i < n; i++) CHECK_MSG(y[i] == (i < n / 2 ? 2.0f * i : 0.0f), "y[%d] = %g", i, y[i]);
    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(stop));
    CUDA_CHECK(cudaStreamDestroy(stream));
    int count = 0, device = -1;
    CUDA_CHECK(cudaGetDeviceCount(&count));
    CUDA_CHECK(cudaGetDevice(&device));
    CHECK(count >= 1 && device == 0);
}

// Invalid launch configurations fail with the errors the CUDA 13 runtime gives (seen on an H200, 2026-11-26):
// cudaErrorInvalidValue for each of these (earlier runtimes said cudaErrorInvalidConfiguration).
DICE_CUDA_TEST(simt_launch_config_errors) {
#ifdef DICE_EMU
    simt_quiet_launch_errors(1);  // the failures below are expected
#endif
    DevBuf<float> dx;
    CUDA_CHECK(dx.alloc(16));
    CUDA_CHECK(cudaGetLastError());
    cudaError_t got[3], want[3] = {cudaErrorInvalidValue, cudaErrorInvalidValue, cudaErrorInvalidValue};
    DICE_LAUNCH(scale_kernel, 1, 1025, 0, 0, dx.p, 1.0f, 16);  // more than 1024 threads
    got[0] = cudaGetLastError();
    DICE_LAUNCH(scale_kernel, dim3(1, 0, 1), 32, 0, 0, dx.p, 1.0f, 16);  // a zero grid dimension
    got[1] = cudaGetLastError();
    DICE_LAUNCH(scale_kernel, 1, dim3(1, 1, 65), 0, 0, dx.p, 1.0f, 16);  // block z above 64
    got[2] = cudaGetLastError();
    CHECK_MSG(got[0] == want[0] && got[1] == want[1] && got[2] == want[2],
              "launch errors %s, %s, %s; expected %s, %s, %s", cudaGetErrorName(got[0]), cudaGetErrorName(got[1]),
              cudaGetErrorName(got[2]), cudaGetErrorName(want[0]), cudaGetErrorName(want[1]), cudaGetErrorName(want[2]));
    LAUNCH_CHECKED(scale_kernel, 1, 16, 0, 0, dx.p, 1.0f, 16);  // and the next good launch works
}
