// nn/dtype.c — element type table (see dtype.h).
#include "dtype.h"

#include <string.h>
#include <strings.h>

typedef struct DTypeInfo {
    size_t size;
    const char *name;     // dice spelling
    const char *st_name;  // safetensors spelling
    const char *torch_name;
} DTypeInfo;

static const DTypeInfo dtype_table[DT_COUNT] = {
    [DT_F32] = {4, "f32", "F32", "float32"},       [DT_F16] = {2, "f16", "F16", "float16"},
    [DT_BF16] = {2, "bf16", "BF16", "bfloat16"},   [DT_F64] = {8, "f64", "F64", "float64"},
    [DT_I32] = {4, "i32", "I32", "int32"},         [DT_I64] = {8, "i64", "I64", "int64"},
    [DT_I16] = {2, "i16", "I16", "int16"},         [DT_I8] = {1, "i8", "I8", "int8"},
    [DT_U8] = {1, "u8", "U8", "uint8"},            [DT_BOOL] = {1, "bool", "BOOL", "bool"},
    [DT_U16] = {2, "u16", "U16", "uint16"},        [DT_U32] = {4, "u32", "U32", "uint32"},
    [DT_U64] = {8, "u64", "U64", "uint64"},        [DT_F8_E4M3] = {1, "f8_e4m3", "F8_E4M3", "float8_e4m3fn"},
    [DT_F8_E5M2] = {1, "f8_e5m2", "F8_E5M2", "float8_e5m2"},
};

size_t dtype_size(DType dt) { return (unsigned)dt < DT_COUNT ? dtype_table[dt].size : 0; }
const char *dtype_name(DType dt) { return (unsigned)dt < DT_COUNT ? dtype_table[dt].name : "invalid"; }
const char *dtype_st_name(DType dt) { return (unsigned)dt < DT_COUNT ? dtype_table[dt].st_name : "INVALID"; }

int dtype_from_st_name(const char *name, DType *out) {
    for (int i = 0; i < DT_COUNT; i++)
        if (!strcmp(name, dtype_table[i].st_name)) {
            *out = (DType)i;
            return 0;
        }
    return -1;
}

int dtype_from_name(const char *name, DType *out) {
    for (int i = 0; i < DT_COUNT; i++)
        if (!strcasecmp(name, dtype_table[i].name) || !strcmp(name, dtype_table[i].st_name) ||
            !strcmp(name, dtype_table[i].torch_name)) {
            *out = (DType)i;
            return 0;
        }
    return -1;
}

int dtype_is_float(DType dt) { return dt == DT_F32 || dt == DT_F16 || dt == DT_BF16 || dt == DT_F64; }
