// kernels/conv_handle.c — the convolution backend of a CUDA context: DICE_CONV=custom|cudnn, and the
// cuDNN state when that path is used (see kernels/conv.h).
#include <stdlib.h>
#include <string.h>

#include "conv.h"

struct ConvHandle {
    ConvBackend backend;
    void *stream;      // the context's cudaStream_t, for cuDNN
    ConvCudnn *cudnn;  // created on first use
};

static int check_available(ConvBackend backend, const char *origin, DiceError *err) {
    if (backend == CONV_BACKEND_CUSTOM) return 0;
    DICE_CHECK(err, backend == CONV_BACKEND_CUDNN, "conv2d: unknown backend %d", (int)backend);
#if defined(DICE_CUDNN) && !defined(DICE_EMU)
    (void)origin;
    return 0;
#elif defined(DICE_EMU)
    return DICE_FAIL(err, "%s: the emulated CUDA build has no cuDNN (only the custom kernels)", origin);
#else
    return DICE_FAIL(err, "%s: this build of dice has no cuDNN (make did not find cudnn.h and libcudnn)", origin);
#endif
}

int conv_handle_create(ConvHandle **out, void *stream, DiceError *err) {
    *out = NULL;
    ConvBackend backend = CONV_BACKEND_CUSTOM;
    const char *env = getenv("DICE_CONV");
    if (env && *env && strcmp(env, "custom")) {
        DICE_CHECK(err, !strcmp(env, "cudnn"), "DICE_CONV=%s: expected custom or cudnn", env);
        backend = CONV_BACKEND_CUDNN;
        DICE_TRY(check_available(backend, "DICE_CONV=cudnn", err));
    }
    ConvHandle *h = calloc(1, sizeof *h);
    DICE_CHECK(err, h, "conv2d: out of host memory");
    h->backend = backend;
    h->stream = stream;
    *out = h;
    return 0;
}

void conv_handle_destroy(ConvHandle *h) {
    if (!h) return;
#if defined(DICE_CUDNN) && !defined(DICE_EMU)
    conv_cudnn_destroy(h->cudnn);
#endif
    free(h);
}

ConvBackend conv_handle_backend(const ConvHandle *h) { return h->backend; }

int conv_handle_set_backend(ConvHandle *h, ConvBackend backend, DiceError *err) {
    DICE_TRY(check_available(backend, "conv2d backend cudnn", err));
    h->backend = backend;
    return 0;
}

int conv_handle_cudnn(ConvHandle *h, ConvCudnn **out, DiceError *err) {
    DICE_TRY(check_available(CONV_BACKEND_CUDNN, "conv2d (cuDNN)", err));
#if defined(DICE_CUDNN) && !defined(DICE_EMU)
    if (!h->cudnn) DICE_TRY(conv_cudnn_create(&h->cudnn, h->stream, err));
    *out = h->cudnn;
    return 0;
#else
    (void)h, (void)out;
    return -1;
#endif
}
