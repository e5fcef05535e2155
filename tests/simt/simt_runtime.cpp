// tests/simt/simt_runtime.cpp — the emulated CUDA runtime API (cuda_runtime_emu.h): errors, memory
// with poisoning and pointer checks, synchronous streams and events, kernel attributes, and the
// check of kernels' pointer arguments.
//
// Process-wide state (allocations, streams, events, attributes) lives in one Runtime behind a mutex;
// the last error is per host thread, as in CUDA.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <map>
#include <mutex>
#include <set>

#include "simt_internal.h"

namespace simt {
namespace {

struct Runtime {
    std::mutex mutex;
    std::map<uintptr_t, size_t> device;  // cudaMalloc'ed ranges: start -> bytes
    std::map<uintptr_t, size_t> pinned;  // cudaMallocHost'ed ranges
    std::set<const void *> streams, events;
    std::map<const void *, int> max_dynamic_smem;  // kernel -> cudaFuncAttributeMaxDynamicSharedMemorySize
    std::mutex launch;  // one launch at a time
};
Runtime &runtime() {
    static Runtime *r = new Runtime();  // never destroyed: usable from atexit handlers too
    return *r;
}

struct ThreadErrors {
    cudaError_t last;          // what cudaGetLastError returns
    cudaError_t message_code;  // the code `message` explains
    bool quiet;
    char message[kMessageBytes];
    char described[kMessageBytes + 64];  // cudaGetErrorString's buffer
};
thread_local ThreadErrors tls_errors;

// Does [p, p + bytes) lie inside one of the ranges? (p may equal the end when bytes is 0.)
bool in_ranges(const std::map<uintptr_t, size_t> &ranges, const void *p, size_t bytes) {
    uintptr_t a = (uintptr_t)p;
    auto it = ranges.upper_bound(a);
    if (it == ranges.begin()) return false;
    --it;
    return a - it->first <= it->second && bytes <= it->second - (a - it->first);
}
bool is_device(const void *p, size_t bytes) {
    Runtime &r = runtime();
    std::lock_guard<std::mutex> lock(r.mutex);
    return in_ranges(r.device, p, bytes);
}

cudaError_t fail_call(cudaError_t code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cudaError_t fail_call(cudaError_t code, const char *fmt, ...) {
    char text[kMessageBytes];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    set_error(code, "simt: %s", text);
    return code;
}

const char *kind_name(cudaMemcpyKind kind) {
    switch (kind) {
    case cudaMemcpyHostToHost: return "HostToHost";
    case cudaMemcpyHostToDevice: return "HostToDevice";
    case cudaMemcpyDeviceToHost: return "DeviceToHost";
    case cudaMemcpyDeviceToDevice: return "DeviceToDevice";
    case cudaMemcpyDefault: return "Default";
    }
    return "invalid";
}

bool live(const std::set<const void *> &handles, const void *h) {
    Runtime &r = runtime();
    std::lock_guard<std::mutex> lock(r.mutex);
    return handles.count(h) != 0;
}

cudaError_t check_stream(const char *call, cudaStream_t stream) {
    if (stream && !stream_is_valid(stream))
        return fail_call(cudaErrorInvalidResourceHandle, "%s: stream %p is not a live stream", call, (void *)stream);
    return cudaSuccess;
}

cudaError_t allocate(std::map<uintptr_t, size_t> Runtime::*ranges, const char *call, void **ptr, size_t bytes) {
    if (!ptr) return fail_call(cudaErrorInvalidValue, "%s: null result pointer", call);
    if (bytes == 0) {
        *ptr = nullptr;
        return cudaSuccess;
    }
    void *p = nullptr;
    if (posix_memalign(&p, 256, bytes) != 0)
        return fail_call(cudaErrorMemoryAllocation, "%s: cannot allocate %zu bytes", call, bytes);
    memset(p, 0xff, bytes);
    Runtime &r = runtime();
    std::lock_guard<std::mutex> lock(r.mutex);
    (r.*ranges)[(uintptr_t)p] = bytes;
    *ptr = p;
    return cudaSuccess;
}

cudaError_t release(std::map<uintptr_t, size_t> Runtime::*ranges, const char *call, const char *allocator, void *ptr) {
    if (!ptr) return cudaSuccess;
    Runtime &r = runtime();
    {
        std::lock_guard<std::mutex> lock(r.mutex);
        auto it = (r.*ranges).find((uintptr_t)ptr);
        if (it != (r.*ranges).end()) {
            (r.*ranges).erase(it);
            free(ptr);
            return cudaSuccess;
        }
    }
    return fail_call(cudaErrorInvalidValue, "%s(%p): not a pointer returned by %s (or already freed)", call, ptr,
                     allocator);
}

double now_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

struct Event {
    bool recorded;
    double ms;
};

Event *live_event(const char *call, cudaEvent_t event) {
    if (!live(runtime().events, event)) {
        fail_call(cudaErrorInvalidResourceHandle, "%s(%p): not a live event", call, (void *)event);
        return nullptr;
    }
    return reinterpret_cast<Event *>(event);
}

}  // namespace

void set_error(cudaError_t code, const char *fmt, ...) {
    ThreadErrors &t = tls_errors;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t.message, sizeof t.message, fmt, ap);
    va_end(ap);
    t.last = code;
    t.message_code = code;
}

bool launch_error_quiet() { return tls_errors.quiet; }

int kernel_max_dynamic_smem(const void *kernel) {
    Runtime &r = runtime();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.max_dynamic_smem.find(kernel);
    return it == r.max_dynamic_smem.end() ? (int)kStaticSmemLimit : it->second;
}

bool stream_is_valid(cudaStream_t stream) { return live(runtime().streams, stream); }

std::mutex &launch_mutex() { return runtime().launch; }

}  // namespace simt

using namespace simt;

extern "C" {

const char *cudaGetErrorName(cudaError_t error) {
    switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t error) {
    const char *text = "unknown error";
    switch (error) {
    case cudaSuccess: text = "no error"; break;
    case cudaErrorInvalidValue: text = "invalid argument"; break;
    case cudaErrorMemoryAllocation: text = "out of memory"; break;
    case cudaErrorInvalidConfiguration: text = "invalid configuration argument"; break;
    case cudaErrorInvalidMemcpyDirection: text = "invalid copy direction for memcpy"; break;
    case cudaErrorInvalidDevice: text = "invalid device ordinal"; break;
    case cudaErrorInvalidResourceHandle: text = "invalid resource handle"; break;
    case cudaErrorLaunchFailure: text = "unspecified launch failure"; break;
    }
    ThreadErrors &t = tls_errors;
    if (error == cudaSuccess || error != t.message_code || !t.message[0]) return text;
    if (snprintf(t.described, sizeof t.described, "%s (%s)", text, t.message) >= (int)sizeof t.described)
        memcpy(t.described + sizeof t.described - 5, "...)", 5);  // cut
    return t.described;
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = tls_errors.last;
    tls_errors.last = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return tls_errors.last; }

const char *simt_last_error_message(void) { return tls_errors.message; }

int simt_quiet_launch_errors(int quiet) {
    int previous = tls_errors.quiet;
    tls_errors.quiet = quiet != 0;
    return previous;
}

cudaError_t cudaGetDeviceCount(int *count) {
    if (!count) return fail_call(cudaErrorInvalidValue, "cudaGetDeviceCount: null pointer");
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    if (device != 0)
        return fail_call(cudaErrorInvalidDevice, "cudaSetDevice(%d): the emulator has device 0 only", device);
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device) {
    if (!device) return fail_call(cudaErrorInvalidValue, "cudaGetDevice: null pointer");
    *device = 0;
    return cudaSuccess;
}

// Work is done when it is issued; a launch failure nobody fetched with cudaGetLastError shows here,
// as a kernel fault would on a GPU.
cudaError_t cudaDeviceSynchronize(void) {
    return tls_errors.last == cudaErrorLaunchFailure ? cudaErrorLaunchFailure : cudaSuccess;
}

cudaError_t cudaMalloc(void **ptr, size_t bytes) { return allocate(&Runtime::device, "cudaMalloc", ptr, bytes); }
cudaError_t cudaFree(void *ptr) { return release(&Runtime::device, "cudaFree", "cudaMalloc", ptr); }
cudaError_t cudaMallocHost(void **ptr, size_t bytes) { return allocate(&Runtime::pinned, "cudaMallocHost", ptr, bytes); }
cudaError_t cudaFreeHost(void *ptr) { return release(&Runtime::pinned, "cudaFreeHost", "cudaMallocHost", ptr); }

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (bytes == 0) return cudaSuccess;
    if (!dst || !src) return fail_call(cudaErrorInvalidValue, "cudaMemcpy %s: null pointer", kind_name(kind));
    bool dst_dev = is_device(dst, bytes), src_dev = is_device(src, bytes);
    switch (kind) {
    case cudaMemcpyHostToDevice:
    case cudaMemcpyDeviceToHost:
    case cudaMemcpyDeviceToDevice: {
        bool want_dst = kind != cudaMemcpyDeviceToHost, want_src = kind != cudaMemcpyHostToDevice;
        if (dst_dev != want_dst || src_dev != want_src) {
            bool dst_wrong = dst_dev != want_dst, want = dst_wrong ? want_dst : want_src;
            return fail_call(cudaErrorInvalidValue, "cudaMemcpy %s of %zu bytes from %p to %p: the %s %s",
                             kind_name(kind), bytes, src, dst, dst_wrong ? "destination" : "source",
                             want ? "is not (all) within a cudaMalloc allocation" : "is device memory");
        }
        break;
    }
    case cudaMemcpyHostToHost:
    case cudaMemcpyDefault: break;
    default: return fail_call(cudaErrorInvalidMemcpyDirection, "cudaMemcpy: invalid kind %d", (int)kind);
    }
    memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    cudaError_t e = check_stream("cudaMemcpyAsync", stream);
    return e != cudaSuccess ? e : cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void *ptr, int value, size_t bytes) {
    if (bytes == 0) return cudaSuccess;
    if (!is_device(ptr, bytes))
        return fail_call(cudaErrorInvalidValue, "cudaMemset of %zu bytes at %p: not within a cudaMalloc allocation",
                         bytes, ptr);
    memset(ptr, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t stream) {
    cudaError_t e = check_stream("cudaMemsetAsync", stream);
    return e != cudaSuccess ? e : cudaMemset(ptr, value, bytes);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags) {
    if (!stream) return fail_call(cudaErrorInvalidValue, "cudaStreamCreate: null pointer");
    if (flags & ~(unsigned)cudaStreamNonBlocking)
        return fail_call(cudaErrorInvalidValue, "cudaStreamCreateWithFlags: unknown flags 0x%x", flags);
    // A stream is a handle only; one byte gives it a unique address.
    cudaStream_t s = reinterpret_cast<cudaStream_t>(malloc(1));
    if (!s) return fail_call(cudaErrorMemoryAllocation, "cudaStreamCreate: out of memory");
    Runtime &r = runtime();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.streams.insert(s);
    *stream = s;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    Runtime &r = runtime();
    {
        std::lock_guard<std::mutex> lock(r.mutex);
        if (stream && r.streams.erase(stream)) {
            free(stream);
            return cudaSuccess;
        }
    }
    return fail_call(cudaErrorInvalidResourceHandle, "cudaStreamDestroy(%p): not a live stream", (void *)stream);
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    cudaError_t e = check_stream("cudaStreamSynchronize", stream);
    return e != cudaSuccess ? e : cudaDeviceSynchronize();
}

cudaError_t cudaEventCreate(cudaEvent_t *event) {
    if (!event) return fail_call(cudaErrorInvalidValue, "cudaEventCreate: null pointer");
    Event *ev = static_cast<Event *>(calloc(1, sizeof(Event)));
    if (!ev) return fail_call(cudaErrorMemoryAllocation, "cudaEventCreate: out of memory");
    Runtime &r = runtime();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.events.insert(ev);
    *event = reinterpret_cast<cudaEvent_t>(ev);
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    Event *ev = live_event("cudaEventRecord", event);
    if (!ev) return cudaErrorInvalidResourceHandle;
    cudaError_t e = check_stream("cudaEventRecord", stream);
    if (e != cudaSuccess) return e;
    ev->recorded = true;
    ev->ms = now_ms();
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    return live_event("cudaEventSynchronize", event) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    Event *a = live_event("cudaEventElapsedTime", start), *b = a ? live_event("cudaEventElapsedTime", end) : nullptr;
    if (!a || !b) return cudaErrorInvalidResourceHandle;
    if (!ms) return fail_call(cudaErrorInvalidValue, "cudaEventElapsedTime: null result pointer");
    if (!a->recorded || !b->recorded)
        return fail_call(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event was never recorded");
    *ms = (float)(b->ms - a->ms);
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    Runtime &r = runtime();
    {
        std::lock_guard<std::mutex> lock(r.mutex);
        if (event && r.events.erase(event)) {
            free(event);
            return cudaSuccess;
        }
    }
    return fail_call(cudaErrorInvalidResourceHandle, "cudaEventDestroy(%p): not a live event", (void *)event);
}

cudaError_t cudaFuncSetAttribute(const void *kernel, cudaFuncAttribute attr, int value) {
    if (!kernel) return fail_call(cudaErrorInvalidValue, "cudaFuncSetAttribute: null kernel");
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
        return fail_call(cudaErrorInvalidValue, "cudaFuncSetAttribute: attribute %d is not emulated", (int)attr);
    if (value < 0 || (size_t)value > kSmemLimit)
        return fail_call(cudaErrorInvalidValue,
                         "cudaFuncSetAttribute: %d bytes of dynamic shared memory (at most %zu)", value, kSmemLimit);
    Runtime &r = runtime();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.max_dynamic_smem[kernel] = value;
    return cudaSuccess;
}

}  // extern "C"

int simt_check_pointer_arg(const char *kernel, int index, const void *ptr) {
    if (!ptr) return 0;
    Runtime &r = runtime();
    {
        std::lock_guard<std::mutex> lock(r.mutex);
        if (in_ranges(r.device, ptr, 0) || in_ranges(r.pinned, ptr, 0)) return 0;
    }
    char message[512];
    snprintf(message, sizeof message,
             "simt: kernel '%s' cannot be launched: argument %d is the pointer %p, which is neither device memory "
             "(cudaMalloc) nor pinned host memory (cudaMallocHost)",
             kernel, index, ptr);
    set_error(cudaErrorLaunchFailure, "%s", message);
    if (!tls_errors.quiet) fprintf(stderr, "%s\n", message);
    return -1;
}
