// data/h5util.c — checked HDF5 calls (see h5util.h): error-stack messages, the quiet scope,
// attribute readers and writers, the half-precision type.
#include "h5util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct H5Walk {
    int count;
    char inner[320];  // most specific message (where HDF5 noticed the problem)
    char outer[320];  // the API function's message
} H5Walk;

// Copies s into out, control characters replaced by spaces, so the message stays on one line.
static void copy_line(char *out, size_t cap, const char *s) {
    size_t k = 0;
    for (; s[k] && k + 1 < cap; k++) out[k] = ((unsigned char)s[k] < 0x20) ? ' ' : s[k];
    out[k] = '\0';
}

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    H5Walk *w = data;
    char minor[160] = "";
    const char *desc = e->desc;
    if (!desc || !desc[0]) {
        H5E_type_t type;
        if (H5Eget_msg(e->min_num, &type, minor, sizeof minor) < 0) minor[0] = '\0';
        desc = minor[0] ? minor : "(no description)";
    }
    if (n == 0) copy_line(w->inner, sizeof w->inner, desc);
    copy_line(w->outer, sizeof w->outer, desc);  // the last one walked upward is the API's
    w->count++;
    return 0;
}

int h5_fail_at(DiceError *err, const char *file, int line, const char *where, const char *call) {
    H5Walk w = {0};
    if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &w) < 0 || w.count == 0)
        return dice_fail_at(err, file, line, "%s: %s failed (HDF5 gave no message)", where, call);
    if (w.count == 1 || strcmp(w.inner, w.outer) == 0)
        return dice_fail_at(err, file, line, "%s: %s failed: %s", where, call, w.inner);
    return dice_fail_at(err, file, line, "%s: %s failed: %s: %s", where, call, w.outer, w.inner);
}

void h5_silence(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

void h5_close_id(hid_t id) {
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

hid_t h5_file_access(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    int rc = H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
#if H5_VERSION_GE(1, 10, 7)
    if (rc >= 0) rc = H5Pset_file_locking(fapl, 1, 1);
#endif
    if (rc < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

hid_t h5_half_type(void) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    // sign bit 15, exponent bits 10..14, mantissa bits 0..9, bias 15 (the same steps as h5py).
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

// ---------------------------------------------------------------- attribute writers

// A scalar attribute of file type `ftype`, written from memory type `mtype`.
static int write_attr(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *value,
                      const char *where, DiceError *err) {
    int rc = -1;
    hid_t space = -1, attr = -1;
    H5_TRY_SET(err, where, space, H5Screate(H5S_SCALAR));
    H5_TRY_SET(err, where, attr, H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT));
    H5_TRY(err, where, H5Awrite(attr, mtype, value));
    H5_TRY(err, where, H5Aclose(attr));
    attr = -1;
    rc = 0;
fail:
    h5_close_id(attr);
    h5_close_id(space);
    return rc;
}

int h5_write_attr_str(hid_t obj, const char *name, const char *value, const char *where, DiceError *err) {
    int rc = -1;
    hid_t type = -1;
    size_t len = strlen(value);
    H5_TRY_SET(err, where, type, H5Tcopy(H5T_C_S1));
    H5_TRY(err, where, H5Tset_size(type, len ? len : 1));
    H5_TRY(err, where, H5Tset_cset(type, H5T_CSET_UTF8));
    H5_TRY(err, where, H5Tset_strpad(type, H5T_STR_NULLPAD));
    rc = write_attr(obj, name, type, type, value, where, err);
fail:
    h5_close_id(type);
    return rc;
}

int h5_write_attr_i64(hid_t obj, const char *name, int64_t value, const char *where, DiceError *err) {
    return write_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, where, err);
}

int h5_write_attr_f64(hid_t obj, const char *name, double value, const char *where, DiceError *err) {
    return write_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, where, err);
}

// ---------------------------------------------------------------- attribute readers

// Opens attribute `name` of obj, checking it exists, holds exactly one value and has class `cls`.
static int open_attr(hid_t obj, const char *name, H5T_class_t cls, const char *cls_name, hid_t *attr_out,
                     hid_t *type_out, const char *where, DiceError *err) {
    hid_t attr = -1, space = -1, type = -1;
    htri_t exists;
    H5_TRY_SET(err, where, exists, H5Aexists(obj, name));
    H5_CHECK(err, exists > 0, "%s: attribute '%s' is missing", where, name);
    H5_TRY_SET(err, where, attr, H5Aopen(obj, name, H5P_DEFAULT));
    H5_TRY_SET(err, where, space, H5Aget_space(attr));
    hssize_t npoints;
    H5_TRY_SET(err, where, npoints, H5Sget_simple_extent_npoints(space));
    H5_CHECK(err, npoints == 1, "%s: attribute '%s' holds %lld values, expected one", where, name,
             (long long)npoints);
    H5_TRY_SET(err, where, type, H5Aget_type(attr));
    H5T_class_t got;
    H5_TRY_SET(err, where, got, H5Tget_class(type));
    H5_CHECK(err, got == cls, "%s: attribute '%s' is not %s", where, name, cls_name);
    h5_close_id(space);
    *attr_out = attr;
    *type_out = type;
    return 0;
fail:
    h5_close_id(type);
    h5_close_id(space);
    h5_close_id(attr);
    return -1;
}

int h5_read_attr_str(hid_t obj, const char *name, char *buf, size_t cap, const char *where, DiceError *err) {
    int rc = -1;
    hid_t attr = -1, type = -1, mem = -1;
    char *vstr = NULL, *fixed = NULL;
    if (open_attr(obj, name, H5T_STRING, "a string", &attr, &type, where, err)) return -1;
    htri_t variable;
    H5_TRY_SET(err, where, variable, H5Tis_variable_str(type));
    const char *text;
    if (variable) {
        H5_TRY_SET(err, where, mem, H5Tcopy(H5T_C_S1));
        H5_TRY(err, where, H5Tset_size(mem, H5T_VARIABLE));
        H5T_cset_t cset;
        H5_TRY_SET(err, where, cset, H5Tget_cset(type));
        H5_TRY(err, where, H5Tset_cset(mem, cset));
        H5_TRY(err, where, H5Aread(attr, mem, &vstr));
        H5_CHECK(err, vstr, "%s: attribute '%s' is a null string", where, name);
        text = vstr;
    } else {
        size_t size = H5Tget_size(type);
        H5_CHECK(err, size > 0, "%s: attribute '%s' has a string type of size 0", where, name);
        fixed = calloc(size + 1, 1);
        H5_CHECK(err, fixed, "%s: out of memory", where);
        H5_TRY_SET(err, where, mem, H5Tcopy(type));
        H5_TRY(err, where, H5Aread(attr, mem, fixed));
        text = fixed;
    }
    H5_CHECK(err, strlen(text) < cap, "%s: attribute '%s' is %zu bytes long, the limit is %zu", where, name,
             strlen(text), cap - 1);
    memcpy(buf, text, strlen(text) + 1);
    rc = 0;
fail:
    if (vstr) H5free_memory(vstr);
    free(fixed);
    h5_close_id(mem);
    h5_close_id(type);
    h5_close_id(attr);
    return rc;
}

int h5_read_attr_i64(hid_t obj, const char *name, int64_t *value, const char *where, DiceError *err) {
    int rc = -1;
    hid_t attr = -1, type = -1;
    if (open_attr(obj, name, H5T_INTEGER, "an integer", &attr, &type, where, err)) return -1;
    H5_TRY(err, where, H5Aread(attr, H5T_NATIVE_INT64, value));
    rc = 0;
fail:
    h5_close_id(type);
    h5_close_id(attr);
    return rc;
}

int h5_read_attr_f64(hid_t obj, const char *name, double *value, const char *where, DiceError *err) {
    int rc = -1;
    hid_t attr = -1, type = -1;
    if (open_attr(obj, name, H5T_FLOAT, "a floating-point number", &attr, &type, where, err)) return -1;
    H5_TRY(err, where, H5Aread(attr, H5T_NATIVE_DOUBLE, value));
    rc = 0;
fail:
    h5_close_id(type);
    h5_close_id(attr);
    return rc;
}
