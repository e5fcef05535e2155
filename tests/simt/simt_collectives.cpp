// tests/simt/simt_collectives.cpp — warp collectives of the SIMT emulator: shuffles, votes,
// __syncwarp, __activemask, and the tensor-core instructions behind kernels/cuda_common.cuh
// (mma.sync m16n8k16 and ldmatrix), each computed from the documented semantics once every lane
// named in the mask has arrived (PTX ISA: shfl.sync, vote.sync, "Matrix Fragments for mma.m16n8k16
// with floating point type", ldmatrix).
#include <stdio.h>
#include <string.h>

#include "simt_internal.h"

namespace simt {
namespace {

Fiber *lane_fiber(Engine &e, unsigned warp, unsigned lane) { return e.fibers[warp * 32 + lane]; }

bool same_op(const Arrival &a, const Arrival &b) {
    if (a.op != b.op) return false;
    switch (a.op) {
    case Op::Shfl: return a.shfl.mode == b.shfl.mode && a.shfl.width == b.shfl.width && a.shfl.bytes == b.shfl.bytes;
    case Op::Mma: return a.mma.type == b.mma.type;
    case Op::Ldmatrix: return a.ldm.count == b.ldm.count && a.ldm.trans == b.ldm.trans;
    default: return true;
    }
}

uint64_t poison_bits(int bytes) { return bytes >= 8 ? ~0ull : (1ull << (8 * bytes)) - 1; }

// shfl.sync: lanes in segments of `width`; up/down/xor outside the caller's segment (xor: only above
// it) read the caller's own value; a source lane outside the mask gives undefined (poison) bits.
void resolve_shfl(Engine &e, unsigned warp, unsigned need) {
    for (unsigned lane = 0; lane < 32; lane++) {
        if (!(need >> lane & 1)) continue;
        Arrival &a = lane_fiber(e, warp, lane)->arrival;
        unsigned width = (unsigned)a.shfl.width, lo = lane & ~(width - 1), hi = lo + width - 1;
        unsigned b = (unsigned)a.shfl.arg & 31u, src = lane;
        switch (a.shfl.mode) {
        case SIMT_SHFL_IDX: src = lo | (b & (width - 1)); break;
        case SIMT_SHFL_UP: src = lane >= lo + b ? lane - b : lane; break;
        case SIMT_SHFL_DOWN: src = lane + b <= hi ? lane + b : lane; break;
        case SIMT_SHFL_XOR: src = (lane ^ b) <= hi ? lane ^ b : lane; break;
        }
        a.result = (need >> src & 1) ? lane_fiber(e, warp, src)->arrival.shfl.value : poison_bits(a.shfl.bytes);
    }
}

void resolve_vote(Engine &e, unsigned warp, unsigned need, Op op) {
    unsigned ballot = 0;
    for (unsigned lane = 0; lane < 32; lane++)
        if ((need >> lane & 1) && lane_fiber(e, warp, lane)->arrival.pred) ballot |= 1u << lane;
    uint64_t result = op == Op::Ballot ? ballot : op == Op::Any ? ballot != 0 : ballot == need;
    for (unsigned lane = 0; lane < 32; lane++)
        if (need >> lane & 1) lane_fiber(e, warp, lane)->arrival.result = result;
}

// mma.m16n8k16.row.col with f32 accumulation. With g = lane / 4 and t = lane % 4, lane holds
//   A (16x16, row-major): a[r] = A[g + 8 (r & 1)][2t + 8 (r >> 1) + {0, 1}] (low half first)
//   B (16x8, k x n):      b[r] = B[2t + 8 r + {0, 1}][g]
//   C, D (16x8):          c[i] = C[g + 8 (i >> 1)][2t + (i & 1)]
// Products of 16-bit floats are exact in fp32; the sum runs over k in order, in fp32.
void resolve_mma(Engine &e, unsigned warp) {
    float A[16][16], B[16][8], C[16][8];
    float (*unpack)(uint16_t) = lane_fiber(e, warp, 0)->arrival.mma.type == SIMT_MMA_BF16 ? dice_bf16_to_f32
                                                                                         : dice_f16_to_f32;
    for (unsigned lane = 0; lane < 32; lane++) {
        const Arrival &a = lane_fiber(e, warp, lane)->arrival;
        unsigned g = lane >> 2, t = lane & 3;
        for (unsigned r = 0; r < 4; r++) {
            unsigned row = g + 8 * (r & 1), col = 2 * t + 8 * (r >> 1);
            A[row][col] = unpack((uint16_t)(a.mma.a[r] & 0xffffu));
            A[row][col + 1] = unpack((uint16_t)(a.mma.a[r] >> 16));
        }
        for (unsigned r = 0; r < 2; r++) {
            B[2 * t + 8 * r][g] = unpack((uint16_t)(a.mma.b[r] & 0xffffu));
            B[2 * t + 8 * r + 1][g] = unpack((uint16_t)(a.mma.b[r] >> 16));
        }
        for (unsigned i = 0; i < 4; i++) C[g + 8 * (i >> 1)][2 * t + (i & 1)] = a.mma.c[i];
    }
    for (unsigned m = 0; m < 16; m++)
        for (unsigned n = 0; n < 8; n++) {
            float acc = C[m][n];
            for (unsigned k = 0; k < 16; k++) acc += A[m][k] * B[k][n];
            C[m][n] = acc;
        }
    for (unsigned lane = 0; lane < 32; lane++) {
        const Arrival &a = lane_fiber(e, warp, lane)->arrival;
        unsigned g = lane >> 2, t = lane & 3;
        for (unsigned i = 0; i < 4; i++) a.mma.d[i] = C[g + 8 * (i >> 1)][2 * t + (i & 1)];
    }
}

// ldmatrix .m8n8 .b16: lane 8 m + r gives the address of row r of matrix m (16 bytes, 16-byte
// aligned, in shared memory); lane l receives row l / 4, columns 2 (l % 4) and +1 of each matrix, or
// with .trans the same elements of the transposed matrix.
void resolve_ldmatrix(Engine &e, unsigned warp) {
    const Arrival &first = lane_fiber(e, warp, 0)->arrival;
    int count = first.ldm.count, trans = first.ldm.trans;
    uint16_t M[4][8][8];
    for (int m = 0; m < count; m++)
        for (unsigned r = 0; r < 8; r++) {
            const Fiber *f = lane_fiber(e, warp, 8 * (unsigned)m + r);
            const void *row = f->arrival.ldm.row;
            if ((uintptr_t)row % 16 != 0 || !is_shared_address(e, row, 16))
                fail(e, "warp %u: ldmatrix at %s:%d: lane %u gives row address %p, which is not %s", warp,
                     f->arrival.file, f->arrival.line, f->lane, row,
                     (uintptr_t)row % 16 ? "16-byte aligned" : "16 bytes of shared memory");
            memcpy(M[m][r], row, 16);
        }
    for (unsigned lane = 0; lane < 32; lane++) {
        const Arrival &a = lane_fiber(e, warp, lane)->arrival;
        unsigned g = lane >> 2, t = lane & 3;
        for (int m = 0; m < count; m++) {
            uint16_t lo = trans ? M[m][2 * t][g] : M[m][g][2 * t];
            uint16_t hi = trans ? M[m][2 * t + 1][g] : M[m][g][2 * t + 1];
            a.ldm.regs[m] = (uint32_t)lo | (uint32_t)hi << 16;
        }
    }
}

void resolve(Engine &e, unsigned warp, const Group &g) {
    Op op = g.first->arrival.op;
    switch (op) {
    case Op::Shfl: resolve_shfl(e, warp, g.need); break;
    case Op::Ballot:
    case Op::Any:
    case Op::All: resolve_vote(e, warp, g.need, op); break;
    case Op::SyncWarp: break;
    case Op::Mma: resolve_mma(e, warp); break;
    case Op::Ldmatrix: resolve_ldmatrix(e, warp); break;
    }
}

// The calling lane (f->arrival filled in) enters a warp collective; returns once it completed.
void arrive(Engine &e, Fiber *f) {
    Warp &w = e.warps[f->warp];
    const Arrival &a = f->arrival;
    unsigned me = 1u << f->lane;
    if (!(a.mask & me))
        fail(e, "warp %u lane %u: %s at %s:%d with mask 0x%08x, which does not name the calling lane", f->warp,
             f->lane, op_name(a), a.file, a.line, a.mask);
    unsigned need = a.mask & w.exist;
    Group *g = nullptr;
    for (unsigned i = 0; i < w.ngroups; i++) {
        Group &o = w.groups[i];
        if (o.need == need) {
            g = &o;
            continue;
        }
        if ((o.need & me) || (o.arrived & need)) {
            const Fiber *other = (o.need & me) ? o.first : lane_fiber(e, f->warp, (unsigned)__builtin_ctz(o.arrived & need));
            fail(e, "warp %u: lane %u calls %s at %s:%d with mask 0x%08x while lane %u waits in %s at %s:%d with mask "
                 "0x%08x (the lanes of a collective must pass the same mask)",
                 f->warp, f->lane, op_name(a), a.file, a.line, a.mask, other->lane, op_name(other->arrival),
                 other->arrival.file, other->arrival.line, other->arrival.mask);
        }
    }
    if (!g) {
        g = &w.groups[w.ngroups++];
        g->need = need;
        g->arrived = 0;
        g->first = f;
    } else if (!same_op(g->first->arrival, a)) {
        const Arrival &o = g->first->arrival;
        fail(e, "warp %u: lane %u calls %s at %s:%d while lane %u waits in %s at %s:%d (mask 0x%08x)%s", f->warp,
             f->lane, op_name(a), a.file, a.line, g->first->lane, op_name(o), o.file, o.line, a.mask,
             a.op == Op::Shfl && o.op == Op::Shfl ? " with a different width or size" : "");
    }
    g->arrived |= me;
    if (g->arrived != need) {
        f->state = State::Warp;
        fiber_yield(e, f);
        return;
    }
    resolve(e, f->warp, *g);
    for (unsigned lane = 0; lane < 32; lane++)
        if (need >> lane & 1) lane_fiber(e, f->warp, lane)->state = State::Runnable;
    *g = w.groups[--w.ngroups];
}

Fiber *begin(Engine &e, Op op, unsigned mask, const char *file, int line, const char *what) {
    Fiber *f = current_fiber(e, what);
    f->arrival.op = op;
    f->arrival.mask = mask;
    f->arrival.file = file;
    f->arrival.line = line;
    return f;
}

void require_full_warp(Engine &e, Fiber *f, const char *what, const char *file, int line) {
    unsigned exist = e.warps[f->warp].exist;
    if (exist != 0xffffffffu)
        fail(e, "warp %u: %s at %s:%d needs all 32 lanes, but the block's last warp has lanes 0x%08x only", f->warp,
             what, file, line, exist);
}

}  // namespace

const char *op_name(const Arrival &a) {
    switch (a.op) {
    case Op::Shfl:
        switch (a.shfl.mode) {
        case SIMT_SHFL_IDX: return "__shfl_sync";
        case SIMT_SHFL_UP: return "__shfl_up_sync";
        case SIMT_SHFL_DOWN: return "__shfl_down_sync";
        case SIMT_SHFL_XOR: return "__shfl_xor_sync";
        }
        break;
    case Op::Ballot: return "__ballot_sync";
    case Op::Any: return "__any_sync";
    case Op::All: return "__all_sync";
    case Op::SyncWarp: return "__syncwarp";
    case Op::Mma: return "mma.sync";
    case Op::Ldmatrix: return "ldmatrix";
    }
    return "a warp collective";
}

bool resolve_activemask(Engine &e) {
    bool released = false;
    for (unsigned i = 0; i < e.nthreads; i++) {
        Fiber *f = e.fibers[i];
        if (f->state != State::ActiveMask) continue;
        unsigned mask = 0;
        for (unsigned lane = 0; lane < 32 && f->warp * 32 + lane < e.nthreads; lane++) {
            const Fiber *o = lane_fiber(e, f->warp, lane);
            if (o->state == State::ActiveMask && same_site(o->wait_file, o->wait_line, f->wait_file, f->wait_line))
                mask |= 1u << lane;
        }
        f->arrival.result = mask;
        released = true;
    }
    if (released)
        for (unsigned i = 0; i < e.nthreads; i++)
            if (e.fibers[i]->state == State::ActiveMask) e.fibers[i]->state = State::Runnable;
    return released;
}

void describe_warp_waits(Engine &e, char *buf, size_t cap) {
    for (unsigned w = 0; w < e.nwarps; w++)
        for (unsigned i = 0; i < e.warps[w].ngroups; i++) {
            const Group &g = e.warps[w].groups[i];
            const Arrival &a = g.first->arrival;
            unsigned missing = g.need & ~g.arrived, exited = 0, barrier = 0, other = 0;
            for (unsigned lane = 0; lane < 32; lane++) {
                if (!(missing >> lane & 1)) continue;
                State s = lane_fiber(e, w, lane)->state;
                (s == State::Exited ? exited : s == State::Barrier ? barrier : other) |= 1u << lane;
            }
            append(buf, cap, "%swarp %u: %s at %s:%d (mask 0x%08x) waits for lanes 0x%08x", buf[0] ? "; " : "", w,
                   op_name(a), a.file, a.line, a.mask, missing);
            if (exited) append(buf, cap, ", exited: 0x%08x", exited);
            if (barrier) append(buf, cap, ", at __syncthreads: 0x%08x", barrier);
            if (other) append(buf, cap, ", in another warp collective: 0x%08x", other);
        }
}

}  // namespace simt

using namespace simt;

uint64_t simt_shfl(SimtShflMode mode, unsigned mask, uint64_t bits, int bytes, int arg, int width, const char *file,
                   int line) {
    Engine &e = engine();
    Fiber *f = begin(e, Op::Shfl, mask, file, line, "a warp shuffle");
    f->arrival.shfl.mode = mode;
    f->arrival.shfl.bytes = bytes;
    f->arrival.shfl.arg = arg;
    f->arrival.shfl.width = width;
    f->arrival.shfl.value = bits;
    if (width < 1 || width > 32 || (width & (width - 1)))
        fail(e, "warp %u lane %u: %s at %s:%d with width %d (must be a power of two from 1 to 32)", f->warp, f->lane,
             op_name(f->arrival), file, line, width);
    arrive(e, f);
    return f->arrival.result;
}

static unsigned vote(Op op, unsigned mask, int pred, const char *file, int line) {
    Engine &e = engine();
    Fiber *f = begin(e, op, mask, file, line, "a warp vote");
    f->arrival.pred = pred != 0;
    arrive(e, f);
    return (unsigned)f->arrival.result;
}

unsigned __ballot_sync(unsigned mask, int pred, const char *file, int line) {
    return vote(Op::Ballot, mask, pred, file, line);
}
int __any_sync(unsigned mask, int pred, const char *file, int line) { return (int)vote(Op::Any, mask, pred, file, line); }
int __all_sync(unsigned mask, int pred, const char *file, int line) { return (int)vote(Op::All, mask, pred, file, line); }

void __syncwarp(unsigned mask, const char *file, int line) {
    Engine &e = engine();
    arrive(e, begin(e, Op::SyncWarp, mask, file, line, "__syncwarp"));
}

unsigned __activemask(const char *file, int line) {
    Engine &e = engine();
    Fiber *f = current_fiber(e, "__activemask");
    f->wait_file = file;
    f->wait_line = line;
    f->state = State::ActiveMask;
    fiber_yield(e, f);
    return (unsigned)f->arrival.result;
}

void simt_mma_m16n8k16(SimtMmaType type, float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4],
                       const char *file, int line) {
    Engine &e = engine();
    Fiber *f = begin(e, Op::Mma, 0xffffffffu, file, line, "mma.sync");
    f->arrival.mma.type = type;
    f->arrival.mma.a = a;
    f->arrival.mma.b = b;
    f->arrival.mma.c = c;
    f->arrival.mma.d = d;
    require_full_warp(e, f, "mma.sync", file, line);
    arrive(e, f);
}

void simt_ldmatrix(int count, int trans, uint32_t *regs, const void *row, const char *file, int line) {
    Engine &e = engine();
    Fiber *f = begin(e, Op::Ldmatrix, 0xffffffffu, file, line, "ldmatrix");
    f->arrival.ldm.count = count;
    f->arrival.ldm.trans = trans;
    f->arrival.ldm.row = row;
    f->arrival.ldm.regs = regs;
    require_full_warp(e, f, "ldmatrix", file, line);
    arrive(e, f);
}
