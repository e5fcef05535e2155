// nn/cmd_inspect.c — `dice inspect FILE...`: what a safetensors file holds (header size,
// metadata, one line per tensor sorted by name, totals), after the reader's full validation.
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "safetensors.h"

#define INSPECT_NAME_COLUMN_MAX 64   // longer names push their line's other columns right
#define INSPECT_META_VALUE_MAX 200   // longer metadata values (often whole JSON configs) are cut

// Columns a UTF-8 string takes in a terminal (one per code point; wide characters not counted twice).
static int display_width(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

// Name order with digit runs compared as numbers, so blocks.2 comes before blocks.10.
static int natural_cmp(const char *a, const char *b) {
    const char *a0 = a, *b0 = b;
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0') a++;
            while (*b == '0') b++;
            size_t na = 0, nb = 0;
            while (isdigit((unsigned char)a[na])) na++;
            while (isdigit((unsigned char)b[nb])) nb++;
            if (na != nb) return na < nb ? -1 : 1;
            int c = strncmp(a, b, na);
            if (c) return c;
            a += na, b += nb;
        } else {
            if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
            a++, b++;
        }
    }
    if (*a || *b) return *a ? 1 : -1;
    return strcmp(a0, b0);  // equal but for leading zeros
}

static int cmp_tensor_names(const void *x, const void *y, void *arg) {
    const StTensorInfo *t = (const StTensorInfo *)arg;
    return natural_cmp(t[*(const int *)x].name, t[*(const int *)y].name);
}

static void format_shape(const StTensorInfo *t, char *out, size_t cap) {
    size_t o = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < t->ndim && o < cap; d++)
        o += (size_t)snprintf(out + o, cap - o, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (o < cap) snprintf(out + o, cap - o, "]");
}

// Prints one validated file; -1 (with the reason in err) only when out of memory.
static int print_file(const StFile *f, DiceError *err) {
    char where[1024], text[INSPECT_META_VALUE_MAX + 4];
    st_printable(where, sizeof where, f->path);
    printf("%s: %zu bytes, header %llu bytes, data %llu bytes\n", where, f->file_size,
           (unsigned long long)f->header_len, (unsigned long long)f->data_size);
    if (f->n_meta > 0) {
        printf("metadata:\n");
        for (int i = 0; i < f->n_meta; i++) {
            char key[80];
            st_printable(key, sizeof key, f->meta_keys[i]);
            st_printable(text, sizeof text, f->meta_values[i]);
            size_t len = strlen(f->meta_values[i]);
            if (len > INSPECT_META_VALUE_MAX) printf("  %s = %s (%zu bytes)\n", key, text, len);
            else printf("  %s = %s\n", key, text);
        }
    }
    int width = 4;
    for (int i = 0; i < f->n_tensors; i++) {
        char name[256];
        st_printable(name, sizeof name, f->tensors[i].name);
        int len = display_width(name);
        if (len > width) width = len < INSPECT_NAME_COLUMN_MAX ? len : INSPECT_NAME_COLUMN_MAX;
    }
    int *order = malloc(((size_t)f->n_tensors + 1) * sizeof *order);
    DICE_CHECK(err, order, "out of memory sorting %d tensor names", f->n_tensors);
    for (int i = 0; i < f->n_tensors; i++) order[i] = i;
    qsort_r(order, (size_t)f->n_tensors, sizeof *order, cmp_tensor_names, f->tensors);
    printf("tensors (sorted by name, numbers in names by value):\n");
    printf("  %-*s  %-7s  %-24s  %s\n", width, "name", "dtype", "shape", "bytes");
    int64_t params = 0;
    uint64_t bytes = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const StTensorInfo *t = &f->tensors[order[i]];
        char name[256], shape[160];
        st_printable(name, sizeof name, t->name);
        format_shape(t, shape, sizeof shape);
        int pad = width - display_width(name);
        printf("  %s%*s  %-7s  %-24s  %llu\n", name, pad > 0 ? pad : 0, "", dtype_st_name(t->dtype), shape,
               (unsigned long long)(t->end - t->begin));
        params += st_numel(t);
        bytes += t->end - t->begin;
    }
    free(order);
    printf("total: %d tensors, %lld parameters, %llu bytes", f->n_tensors, (long long)params,
           (unsigned long long)bytes);
    if (params >= 1000000) printf(" (%.1fM parameters, %.2f GiB)", params * 1e-6, bytes / 1073741824.0);
    printf("\n");
    return 0;
}

static int run_inspect(int argc, char **argv) {
    char **files = calloc((size_t)argc + 1, sizeof *files);
    int n_files = 0, options_done = 0;
    if (!files) {
        fprintf(stderr, "dice inspect: error: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (options_done || argv[i][0] != '-' || !argv[i][1]) files[n_files++] = argv[i];
        else if (!strcmp(argv[i], "--")) options_done = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(cmd_inspect.usage, stdout);
            free(files);
            return 0;
        } else {
            fprintf(stderr, "dice inspect: unknown option '%s' (see `dice help inspect`)\n", argv[i]);
            free(files);
            return 2;
        }
    }
    if (n_files == 0) {
        fprintf(stderr, "dice inspect: no file given (usage: dice inspect FILE [FILE...])\n");
        free(files);
        return 2;
    }
    int status = 0, listed = 0;
    for (int i = 0; i < n_files; i++) {
        StFile f;
        DiceError err = {{0}};
        int rc = st_open(&f, files[i], &err);
        if (!rc) {
            if (listed++) printf("\n");
            rc = print_file(&f, &err);
            st_close(&f);
        }
        if (rc) {
            fflush(stdout);
            fprintf(stderr, "dice inspect: error: %s\n", err.msg);
            status = 1;
        }
    }
    free(files);
    return status;
}

const DiceCommand cmd_inspect = {
    "inspect", "list the tensors and metadata of safetensors files",
    "usage: dice inspect FILE [FILE...]\n"
    "       dice inspect -- FILE...     (file names after -- may start with '-')\n\n"
    "Validates each safetensors file completely (header bounds, dtypes, shapes, byte ranges, metadata)\n"
    "and prints its header size, its __metadata__ as `key = value`, one line per tensor (name, dtype,\n"
    "shape such as [77, 768], bytes) sorted by name with numbers compared by value (blocks.2 before\n"
    "blocks.10), and a total line (tensors, parameters, bytes).\n"
    "Control characters in names and values are shown as \\xNN; metadata values longer than 200\n"
    "characters are cut.\n\n"
    "Exit status: 0 when every file is valid; 1 when one is not (one line on stderr per bad file,\n"
    "`dice inspect: error: FILE: problem`; the other files are still listed); 2 on a usage error.\n",
    run_inspect};
