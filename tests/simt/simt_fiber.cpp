// tests/simt/simt_fiber.cpp — fibers for the SIMT emulator: stacks, the context switch between the
// scheduler and a kernel thread, AddressSanitizer's fiber annotations, and crash reporting that
// names the kernel thread that faulted.
//
// On x86-64 the switch is a few lines of assembly (callee-saved registers and the stack pointer):
// threads switch at every barrier and warp collective, and swapcontext's signal-mask system call
// makes it about seven times slower. Other targets use ucontext (build with -DSIMT_FIBER_UCONTEXT to
// use it on x86-64 as well).
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mutex>

#include "simt_internal.h"

#ifdef SIMT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

extern "C" __attribute__((visibility("hidden"), used, noreturn)) void simt_fiber_entry(simt::Fiber *f) {
#ifdef SIMT_ASAN
    simt::Engine &e = simt::engine();
    __sanitizer_finish_switch_fiber(nullptr, &e.main_stack_bottom, &e.main_stack_bytes);
#endif
    simt::fiber_main(f);
}

#ifdef SIMT_FIBER_ASM
// simt_switch_context(save, load): pushes the callee-saved registers, stores the stack pointer in
// *save, switches to the stack `load` and pops the registers saved there. A new fiber's stack is
// prepared so that the pops deliver its Fiber* in r12 and the return lands in simt_fiber_trampoline.
// The x87 and SSE control words are not switched: fibers share the host thread's floating-point
// environment, which kernels do not change.
extern "C" void simt_switch_context(void **save_sp, void *load_sp);
extern "C" void simt_fiber_trampoline();
asm(R"(
    .text
    .p2align 4
    .globl simt_switch_context
    .hidden simt_switch_context
    .type simt_switch_context, @function
simt_switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size simt_switch_context, .-simt_switch_context

    .p2align 4
    .globl simt_fiber_trampoline
    .hidden simt_fiber_trampoline
    .type simt_fiber_trampoline, @function
simt_fiber_trampoline:
    movq %r12, %rdi
    call simt_fiber_entry
    ud2
    .size simt_fiber_trampoline, .-simt_fiber_trampoline
)");
#else
static void simt_ucontext_entry(unsigned hi, unsigned lo) {
    simt_fiber_entry(reinterpret_cast<simt::Fiber *>(((uintptr_t)hi << 32) | (uintptr_t)lo));
}
#endif

namespace simt {
namespace {

constexpr size_t kStackBytes = 512 * 1024;  // per fiber; only the pages a kernel touches are committed

void context_init(Fiber *f) {
#ifdef SIMT_FIBER_ASM
    // From the top: 16 bytes of headroom (so the trampoline starts 16-byte aligned), the return
    // address, then rbp rbx r12 r13 r14 r15.
    uint64_t *sp = reinterpret_cast<uint64_t *>(((uintptr_t)(f->stack + f->stack_bytes) & ~(uintptr_t)15) - 16);
    *--sp = (uint64_t)(uintptr_t)&simt_fiber_trampoline;
    *--sp = 0;                      // rbp: ends frame-pointer stack walks here
    *--sp = 0;                      // rbx
    *--sp = (uint64_t)(uintptr_t)f; // r12: the trampoline's argument
    *--sp = 0;                      // r13
    *--sp = 0;                      // r14
    *--sp = 0;                      // r15
    f->sp = sp;
#else
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = f->stack_bytes;
    f->ctx.uc_link = nullptr;
    uintptr_t p = (uintptr_t)f;
    makecontext(&f->ctx, (void (*)())simt_ucontext_entry, 2, (unsigned)(p >> 32), (unsigned)(p & 0xffffffffu));
#endif
}

}  // namespace

Fiber *fiber_create(unsigned index) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *mem = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    if (mprotect(mem, page, PROT_NONE) != 0) {  // guard page: a stack overflow faults
        munmap(mem, kStackBytes + page);
        return nullptr;
    }
    Fiber *f = new Fiber();
    f->warp = index / 32;
    f->lane = index % 32;
    f->state = State::Exited;
    f->stack = static_cast<char *>(mem) + page;
    f->stack_bytes = kStackBytes;
    context_init(f);
    return f;
}

void fiber_reset(Fiber *f) {
#ifdef SIMT_ASAN
    // The abandoned frames left their redzones poisoned in the shadow memory.
    __asan_unpoison_memory_region(f->stack, f->stack_bytes);
#endif
    f->asan_fake_stack = nullptr;
    f->in_kernel = false;
    context_init(f);
}

void fiber_resume(Engine &e, Fiber *f) {
    e.current = f;
    simt_self = &f->view;
#ifdef SIMT_ASAN
    __sanitizer_start_switch_fiber(&e.main_fake_stack, f->stack, f->stack_bytes);
#endif
#ifdef SIMT_FIBER_ASM
    simt_switch_context(&e.main_sp, f->sp);
#else
    swapcontext(&e.main_ctx, &f->ctx);
#endif
#ifdef SIMT_ASAN
    __sanitizer_finish_switch_fiber(e.main_fake_stack, nullptr, nullptr);
#endif
    simt_self = nullptr;
    e.current = nullptr;
}

void fiber_yield(Engine &e, Fiber *f) {
#ifdef SIMT_ASAN
    __sanitizer_start_switch_fiber(&f->asan_fake_stack, e.main_stack_bottom, e.main_stack_bytes);
#endif
#ifdef SIMT_FIBER_ASM
    simt_switch_context(&f->sp, e.main_sp);
#else
    swapcontext(&f->ctx, &e.main_ctx);
#endif
#ifdef SIMT_ASAN
    __sanitizer_finish_switch_fiber(f->asan_fake_stack, &e.main_stack_bottom, &e.main_stack_bytes);
#endif
}

// ---------------------------------------------------------------- crash reporting
namespace {

struct CrashReporting {
    std::once_flag installed;
    struct sigaction previous[NSIG];
};
CrashReporting &crash_reporting() {
    static CrashReporting *c = new CrashReporting();
    return *c;
}
constexpr int kCrashSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

// Writes "simt: <what> in kernel 'k', thread (x,y,z) of block (x,y,z)" if a kernel thread is running.
void report_current_thread(const char *what) {
    Engine *e = current_engine();
    if (!e || !e->current) return;
    const SimtThread &v = e->current->view;
    char line[512];
    int n = snprintf(line, sizeof line, "simt: %s in kernel '%s', thread (%u,%u,%u) of block (%u,%u,%u)\n", what,
                     e->kernel, v.thread_idx.x, v.thread_idx.y, v.thread_idx.z, v.block_idx.x, v.block_idx.y,
                     v.block_idx.z);
    if (n > 0) {
        ssize_t ignored = write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        (void)ignored;
    }
}

void crash_handler(int sig, siginfo_t *info, void *context) {
    (void)context;
    const char *what = sig == SIGSEGV ? "segmentation fault" : sig == SIGBUS ? "bus error"
                     : sig == SIGFPE ? "arithmetic exception" : sig == SIGILL ? "illegal instruction" : "abort";
    report_current_thread(what);
    // Hand the signal to whoever handled it before: a fault re-executes and reaches that handler,
    // a raised signal is raised again.
    sigaction(sig, &crash_reporting().previous[sig], nullptr);
    if (info->si_code <= 0) raise(sig);
}

#ifdef SIMT_ASAN
void sanitizer_death_report() { report_current_thread("the sanitizer error above happened"); }
#endif

}  // namespace

void install_crash_reporting(Engine &e) {
    if (e.crash_reporting) return;
    e.crash_reporting = true;
    CrashReporting &c = crash_reporting();
    std::call_once(c.installed, [&c] {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = crash_handler;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        for (int sig : kCrashSignals) sigaction(sig, &sa, &c.previous[sig]);
#ifdef SIMT_ASAN
        __sanitizer_set_death_callback(sanitizer_death_report);
#endif
    });
    // A fiber stack overflow runs into the guard page: the handler needs a stack of its own.
    stack_t current;
    if (sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE)) {
        stack_t alt;
        memset(&alt, 0, sizeof alt);
        alt.ss_size = 256 * 1024;
        alt.ss_sp = e.alt_stack = malloc(alt.ss_size);  // kept for the life of the host thread
        if (alt.ss_sp) sigaltstack(&alt, nullptr);
    }
}

}  // namespace simt
