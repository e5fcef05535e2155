// nn/error.c — formatting of DiceError messages (see error.h).
#include "error.h"

#include <stdio.h>
#include <string.h>

int dice_fail_at(DiceError *err, const char *file, int line, const char *fmt, ...) {
    if (!err) return -1;
    char text[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    // Messages longer than the buffer are cut; the return value is only checked to say so.
    if (snprintf(err->msg, sizeof err->msg, "%s [%s:%d]", text, file, line) >= (int)sizeof err->msg)
        memcpy(err->msg + sizeof err->msg - 4, "...", 4);
    return -1;
}

void dice_error_context(DiceError *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    if (snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old) >= (int)sizeof err->msg)
        memcpy(err->msg + sizeof err->msg - 4, "...", 4);
}

void dice_error_clear(DiceError *err) {
    if (err) err->msg[0] = '\0';
}
