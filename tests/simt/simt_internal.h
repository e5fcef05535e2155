// tests/simt/simt_internal.h — the SIMT emulator's internal state, shared by its .cpp files (not by
// kernels): fibers, the per-host-thread engine that runs one launch at a time, warp collective
// bookkeeping, and the hooks between the engine and the runtime API.
#pragma once
#include <stdarg.h>

#include <mutex>

#include "simt.h"

#if defined(__SANITIZE_ADDRESS__)
#define SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIMT_ASAN 1
#endif
#endif

#if defined(__x86_64__) && !defined(SIMT_FIBER_UCONTEXT)
#define SIMT_FIBER_ASM 1  // hand-written context switch (simt_fiber.cpp); ucontext elsewhere
#else
#include <ucontext.h>
#endif

namespace simt {

constexpr unsigned kMaxThreads = 1024;  // per block
constexpr unsigned kMaxWarps = kMaxThreads / 32;
constexpr size_t kStaticSmemLimit = 48 * 1024;      // dynamic smem beyond this needs the func attribute
constexpr size_t kSmemLimit = 227 * 1024;           // per block, sm_90
constexpr size_t kMessageBytes = 2048;

enum class State : uint8_t {
    Runnable,    // may run (or is running)
    Barrier,     // waits in __syncthreads at wait_file:wait_line
    Warp,        // waits in a warp collective (arrival)
    ActiveMask,  // waits in __activemask at wait_file:wait_line
    Exited,      // returned from the kernel (or not started in this block yet)
};

enum class Op : uint8_t { Shfl, Ballot, Any, All, SyncWarp, Mma, Ldmatrix };

// What a lane brings to a warp collective, and where its result goes.
struct Arrival {
    Op op;
    unsigned mask;
    const char *file;
    int line;
    union {
        struct {
            SimtShflMode mode;
            int bytes, arg, width;
            uint64_t value;
        } shfl;
        int pred;
        struct {
            SimtMmaType type;
            const uint32_t *a, *b;
            const float *c;
            float *d;
        } mma;
        struct {
            int count, trans;
            const void *row;
            uint32_t *regs;
        } ldm;
    };
    uint64_t result;  // shuffles and votes
};

struct Fiber {
    SimtThread view;  // what threadIdx / blockIdx / blockDim / gridDim read
    unsigned warp, lane;  // thread index = 32 warp + lane
    State state;
    bool in_kernel;  // between the start of the kernel body and its end: the stack holds its frames
    const char *wait_file;
    int wait_line;
    Arrival arrival;
#ifdef SIMT_FIBER_ASM
    void *sp;  // saved stack pointer while switched out
#else
    ucontext_t ctx;
#endif
    char *stack;  // usable stack [stack, stack + stack_bytes), above a guard page
    size_t stack_bytes;
    void *asan_fake_stack;
};

// Lanes of one warp waiting in a collective with the same mask.
struct Group {
    unsigned need;     // lanes named by the mask that exist in the block
    unsigned arrived;
    Fiber *first;      // the first lane to arrive: its op and site define the group
};

struct Warp {
    unsigned exist;  // lanes present in the block
    unsigned ngroups;
    Group groups[32];
};

struct Engine {
    Fiber *fibers[kMaxThreads];
    unsigned nfibers;  // created so far (reused across blocks and launches)
#ifdef SIMT_FIBER_ASM
    void *main_sp;
#else
    ucontext_t main_ctx;
#endif
    const void *main_stack_bottom;  // for ASan's fiber annotations
    size_t main_stack_bytes;
    void *main_fake_stack;
    Fiber *current;  // the running fiber, null on the scheduler's stack
    bool in_launch;
    bool crash_reporting;  // install_crash_reporting ran on this host thread
    void *alt_stack;       // its signal stack, if it had none

    // the launch being run
    const char *kernel;
    dim3 grid, block;
    unsigned nthreads;
    void (*body)(void *);
    void *body_arg;
    unsigned char *dyn_smem;
    size_t dyn_smem_bytes;

    // the block being run
    uint3 block_idx;
    unsigned nwarps, nexited;
    Warp warps[kMaxWarps];
    const char *bar_file;  // the site counted by bar_count
    int bar_line;
    unsigned bar_count;
    bool failed;
    char message[kMessageBytes];
};

Engine &engine();          // this host thread's engine (created on first use)
Engine *current_engine();  // the same, or null if this host thread never launched

// simt_fiber.cpp
Fiber *fiber_create(unsigned index);      // null if its stack cannot be mapped
void fiber_reset(Fiber *f);               // forget an abandoned stack; the next resume starts afresh
void fiber_resume(Engine &e, Fiber *f);   // scheduler -> fiber; returns when the fiber yields
void fiber_yield(Engine &e, Fiber *f);    // fiber -> scheduler; returns when resumed
[[noreturn]] void fiber_main(Fiber *f);   // the fiber's life (simt_engine.cpp)
void install_crash_reporting(Engine &e);  // names the kernel thread on a crash or sanitizer report

// simt_engine.cpp
bool same_site(const char *file_a, int line_a, const char *file_b, int line_b);
Fiber *current_fiber(Engine &e, const char *what);  // the calling kernel thread; aborts outside a kernel
// Records why the block fails (the first reason wins) and abandons the calling fiber: never returns.
[[noreturn]] void fail(Engine &e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void append(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool is_shared_address(const Engine &e, const void *p, size_t bytes);  // static or dynamic smem

// simt_collectives.cpp
bool resolve_activemask(Engine &e);       // releases lanes waiting in __activemask; false if none
void describe_warp_waits(Engine &e, char *buf, size_t cap);  // for deadlock reports
const char *op_name(const Arrival &a);

// simt_runtime.cpp
void set_error(cudaError_t code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool launch_error_quiet();
int kernel_max_dynamic_smem(const void *kernel);  // the cudaFuncSetAttribute value, or 48 KiB
bool stream_is_valid(cudaStream_t stream);
std::mutex &launch_mutex();  // held by a launch: static shared memory is process-wide

}  // namespace simt
