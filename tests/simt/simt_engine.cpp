// tests/simt/simt_engine.cpp — the SIMT emulator's launch engine: launch configuration checks, running
// each block with its threads as fibers, __syncthreads, static and dynamic shared memory, and the
// report of a block that can make no progress (a barrier or warp collective some threads never reach).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simt_internal.h"

__thread SimtThread *simt_self;

// The linker's bounds of the section that holds every static __shared__ variable (see simt.h); weak,
// so that a program without any has null bounds.
extern "C" {
extern unsigned char __start_simt_shared __attribute__((weak));
extern unsigned char __stop_simt_shared __attribute__((weak));
}

namespace simt {
namespace {

thread_local Engine *tls_engine;

void vappend(char *buf, size_t cap, const char *fmt, va_list ap) {
    size_t len = strnlen(buf, cap);
    if (len + 1 < cap) vsnprintf(buf + len, cap - len, fmt, ap);
}

// Records the block's failure (the first reason wins) as "kernel 'k' failed in block (...) ...: <what>".
void vrecord_failure(Engine &e, const char *fmt, va_list ap) {
    if (e.failed) return;
    e.failed = true;
    snprintf(e.message, sizeof e.message, "simt: kernel '%s' failed in block (%u,%u,%u) (grid (%u,%u,%u), block (%u,%u,%u)): ",
             e.kernel, e.block_idx.x, e.block_idx.y, e.block_idx.z, e.grid.x, e.grid.y, e.grid.z, e.block.x,
             e.block.y, e.block.z);
    vappend(e.message, sizeof e.message, fmt, ap);
}

void record_failure(Engine &e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void record_failure(Engine &e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vrecord_failure(e, fmt, ap);
    va_end(ap);
}

struct SiteCount {
    const char *file;
    int line;
    unsigned count;
};

// Nothing can run: say who waits where. Called on the scheduler's stack.
void report_stuck_block(Engine &e) {
    SiteCount sites[8];
    unsigned nsites = 0, more_sites = 0, first_exited = e.nthreads;
    for (unsigned i = 0; i < e.nthreads; i++) {
        Fiber *f = e.fibers[i];
        if (f->state == State::Exited && first_exited == e.nthreads) first_exited = i;
        if (f->state != State::Barrier) continue;
        unsigned s = 0;
        while (s < nsites && !same_site(sites[s].file, sites[s].line, f->wait_file, f->wait_line)) s++;
        if (s == nsites) {
            if (nsites == sizeof sites / sizeof sites[0]) {
                more_sites++;
                continue;
            }
            sites[nsites++] = {f->wait_file, f->wait_line, 0};
        }
        sites[s].count++;
    }
    char what[kMessageBytes] = "";
    if (nsites == 1) {
        append(what, sizeof what, "__syncthreads at %s:%d reached by %u of %u threads", sites[0].file,
               sites[0].line, sites[0].count, e.nthreads);
    } else if (nsites > 1) {
        append(what, sizeof what, "threads wait at different __syncthreads:");
        for (unsigned s = 0; s < nsites; s++)
            append(what, sizeof what, "%s %s:%d (%u threads)", s ? "," : "", sites[s].file, sites[s].line,
                   sites[s].count);
        if (more_sites) append(what, sizeof what, " and %u threads at other sites", more_sites);
    }
    if (e.nexited) {
        const Fiber *f = e.fibers[first_exited];
        append(what, sizeof what, "%s%u threads exited (first: thread (%u,%u,%u))", what[0] ? "; " : "", e.nexited,
               f->view.thread_idx.x, f->view.thread_idx.y, f->view.thread_idx.z);
    }
    describe_warp_waits(e, what, sizeof what);
    record_failure(e, "no thread can proceed: %s", what);
}

void check_config(dim3 grid, dim3 block, size_t smem, const void *kernel, cudaStream_t stream,
                  cudaError_t *code, char *why, size_t cap) {
    unsigned long long nthreads = (unsigned long long)block.x * block.y * block.z;
    *code = cudaSuccess;
    // The codes of the first two cases are what the CUDA 13 runtime answers (tests/test_simt.cu's three
    // launches, seen on an H200, 2026-11-26).
    if (!grid.x || !grid.y || !grid.z || !block.x || !block.y || !block.z) {
        *code = cudaErrorInvalidValue;
        snprintf(why, cap, "grid (%u,%u,%u) or block (%u,%u,%u) has a zero dimension", grid.x, grid.y, grid.z,
                 block.x, block.y, block.z);
    } else if (nthreads > kMaxThreads || block.x > 1024 || block.y > 1024 || block.z > 64) {
        *code = cudaErrorInvalidValue;
        snprintf(why, cap, "block (%u,%u,%u) has %llu threads (at most 1024, with x, y <= 1024 and z <= 64)",
                 block.x, block.y, block.z, nthreads);
    } else if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
        *code = cudaErrorInvalidConfiguration;
        snprintf(why, cap, "grid (%u,%u,%u) is too large (x < 2^31, y and z <= 65535)", grid.x, grid.y, grid.z);
    } else if (smem > kSmemLimit) {
        *code = cudaErrorInvalidConfiguration;
        snprintf(why, cap, "%zu bytes of dynamic shared memory exceed the %zu a block can have", smem, kSmemLimit);
    } else if (kernel && smem > kStaticSmemLimit && (long long)smem > kernel_max_dynamic_smem(kernel)) {
        *code = cudaErrorInvalidValue;
        snprintf(why, cap,
                 "%zu bytes of dynamic shared memory need cudaFuncSetAttribute(kernel, "
                 "cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) first (the default limit is %zu)",
                 smem, kStaticSmemLimit);
    } else if (stream && !stream_is_valid(stream)) {
        *code = cudaErrorInvalidResourceHandle;
        snprintf(why, cap, "stream %p is not a live stream", (void *)stream);
    }
}

void report_launch_error(cudaError_t code, const char *message) {
    set_error(code, "%s", message);
    if (!launch_error_quiet()) fprintf(stderr, "%s\n", message);
}

bool run_block(Engine &e) {
    if (&__start_simt_shared != &__stop_simt_shared)
        memset(&__start_simt_shared, 0xff, (size_t)(&__stop_simt_shared - &__start_simt_shared));
    if (e.dyn_smem) memset(e.dyn_smem, 0xff, e.dyn_smem_bytes);
    e.nexited = 0;
    e.bar_count = 0;
    for (unsigned w = 0; w < e.nwarps; w++) {
        unsigned lanes = e.nthreads - w * 32 < 32 ? e.nthreads - w * 32 : 32;
        e.warps[w].exist = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
        e.warps[w].ngroups = 0;
    }
    for (unsigned i = 0; i < e.nthreads; i++) {
        Fiber *f = e.fibers[i];
        f->view.thread_idx = {i % e.block.x, (i / e.block.x) % e.block.y, i / (e.block.x * e.block.y)};
        f->view.block_idx = e.block_idx;
        f->view.block_dim = e.block;
        f->view.grid_dim = e.grid;
        f->state = State::Runnable;
    }
    for (;;) {
        bool ran = false;
        for (unsigned i = 0; i < e.nthreads; i++) {
            Fiber *f = e.fibers[i];
            if (f->state != State::Runnable) continue;
            ran = true;
            fiber_resume(e, f);
            if (e.failed) return false;
        }
        if (e.nexited == e.nthreads) return true;
        if (!ran && !resolve_activemask(e)) {
            report_stuck_block(e);
            return false;
        }
    }
}

}  // namespace

Engine &engine() {
    if (!tls_engine) tls_engine = new Engine();  // lives as long as the host thread
    return *tls_engine;
}

Engine *current_engine() { return tls_engine; }

bool same_site(const char *file_a, int line_a, const char *file_b, int line_b) {
    return line_a == line_b && (file_a == file_b || strcmp(file_a, file_b) == 0);
}

void append(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vappend(buf, cap, fmt, ap);
    va_end(ap);
}

Fiber *current_fiber(Engine &e, const char *what) {
    if (!e.current) {
        fprintf(stderr, "simt: %s called outside a kernel\n", what);
        abort();
    }
    return e.current;
}

void fail(Engine &e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vrecord_failure(e, fmt, ap);
    va_end(ap);
    fiber_yield(e, current_fiber(e, "fail"));
    __builtin_trap();  // unreachable: the scheduler never resumes a fiber of a failed block
}

bool is_shared_address(const Engine &e, const void *p, size_t bytes) {
    const unsigned char *c = static_cast<const unsigned char *>(p);
    if (&__start_simt_shared != &__stop_simt_shared && c >= &__start_simt_shared && c + bytes <= &__stop_simt_shared)
        return true;
    return e.dyn_smem && c >= e.dyn_smem && c + bytes <= e.dyn_smem + e.dyn_smem_bytes;
}

void fiber_main(Fiber *f) {
    for (;;) {
        Engine &e = engine();
        f->in_kernel = true;
        e.body(e.body_arg);
        f->in_kernel = false;
        f->state = State::Exited;
        e.nexited++;
        fiber_yield(e, f);  // resumed when the fiber runs a thread of a later block
    }
}

}  // namespace simt

using namespace simt;

void __syncthreads(const char *file, int line) {
    Engine &e = engine();
    Fiber *f = current_fiber(e, "__syncthreads");
    f->wait_file = file;
    f->wait_line = line;
    if (e.bar_count == 0) {
        e.bar_file = file;
        e.bar_line = line;
    }
    if (same_site(e.bar_file, e.bar_line, file, line) && ++e.bar_count == e.nthreads) {
        for (unsigned i = 0; i < e.nthreads; i++)
            if (e.fibers[i]->state == State::Barrier) e.fibers[i]->state = State::Runnable;
        e.bar_count = 0;
        return;
    }
    f->state = State::Barrier;
    fiber_yield(e, f);
}

void *simt_dynamic_smem() {
    Engine &e = engine();
    current_fiber(e, "DICE_DYNAMIC_SMEM");
    return e.dyn_smem;
}

void simt_launch_raw(const char *name, const void *kernel, dim3 grid, dim3 block, size_t smem_bytes,
                     cudaStream_t stream, void (*body)(void *), void *arg) {
    Engine &e = engine();
    char message[kMessageBytes];
    if (e.in_launch) {
        snprintf(message, sizeof message, "simt: kernel '%s' launched from inside kernel '%s' (not emulated)", name,
                 e.kernel);
        report_launch_error(cudaErrorLaunchFailure, message);
        return;
    }
    cudaError_t code;
    char why[512];
    check_config(grid, block, smem_bytes, kernel, stream, &code, why, sizeof why);
    if (code != cudaSuccess) {
        snprintf(message, sizeof message, "simt: kernel '%s' cannot be launched: %s", name, why);
        report_launch_error(code, message);
        return;
    }
    std::lock_guard<std::mutex> lock(launch_mutex());
    install_crash_reporting(e);
    unsigned nthreads = block.x * block.y * block.z;
    while (e.nfibers < nthreads) {
        Fiber *f = fiber_create(e.nfibers);
        if (!f) {
            snprintf(message, sizeof message, "simt: kernel '%s': cannot map the stack of fiber %u", name, e.nfibers);
            report_launch_error(cudaErrorMemoryAllocation, message);
            return;
        }
        e.fibers[e.nfibers++] = f;
    }
    void *smem = nullptr;
    if (smem_bytes && posix_memalign(&smem, 128, smem_bytes) != 0) {
        snprintf(message, sizeof message, "simt: kernel '%s': cannot allocate %zu bytes of shared memory", name,
                 smem_bytes);
        report_launch_error(cudaErrorMemoryAllocation, message);
        return;
    }
    e.in_launch = true;
    e.kernel = name;
    e.grid = grid;
    e.block = block;
    e.nthreads = nthreads;
    e.nwarps = (nthreads + 31) / 32;
    e.body = body;
    e.body_arg = arg;
    e.dyn_smem = static_cast<unsigned char *>(smem);
    e.dyn_smem_bytes = smem_bytes;
    e.failed = false;
    for (unsigned z = 0; z < grid.z && !e.failed; z++)
        for (unsigned y = 0; y < grid.y && !e.failed; y++)
            for (unsigned x = 0; x < grid.x && !e.failed; x++) {
                e.block_idx = {x, y, z};
                if (!run_block(e)) break;
            }
    free(smem);
    e.dyn_smem = nullptr;
    e.dyn_smem_bytes = 0;
    e.in_launch = false;
    if (e.failed) {
        for (unsigned i = 0; i < e.nfibers; i++)
            if (e.fibers[i]->in_kernel) fiber_reset(e.fibers[i]);
        report_launch_error(cudaErrorLaunchFailure, e.message);
    }
}
