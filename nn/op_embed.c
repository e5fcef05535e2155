// nn/op_embed.c — timestep and token + position embeddings (see op_embed.h).
#include "op_embed.h"

#include "tensor_copy.h"

#ifdef DICE_CUDA
#define ON_DEVICE(g, cpu_call, cuda_call) ((g)->ctx->device == DEV_CUDA ? (cuda_call) : (cpu_call))
#else
#define ON_DEVICE(g, cpu_call, cuda_call) \
    ((g)->ctx->device == DEV_CUDA ? DICE_FAIL(err, "this build of dice has no CUDA backend") : (cpu_call))
#endif

static int check_out_dtype(const Graph *g, const char *op, DType dtype, DiceError *err) {
    if (g->ctx->device == DEV_CUDA)
        DICE_CHECK(err, dtype == DT_F32 || dtype == DT_BF16, "%s: dtype %s on CUDA (f32, bf16 supported)", op,
                   dtype_name(dtype));
    else
        DICE_CHECK(err, dtype == DT_F32 || dtype == DT_F64, "%s: dtype %s on the CPU (f32, f64 supported)", op,
                   dtype_name(dtype));
    return 0;
}

int op_timestep_embedding(Graph *g, Var **out, const Tensor *timesteps, const TimestepEmbedConfig *cfg, DType dtype,
                          DiceError *err) {
    char d[128];
    DICE_CHECK(err, timesteps->ndim == 1 && timesteps->dtype == DT_F32 && tensor_is_contiguous(timesteps) &&
                        timesteps->device == g->ctx->device,
               "timestep_embedding: timesteps %s must be a contiguous (B) f32 tensor on %s",
               tensor_describe(timesteps, d, sizeof d), device_name(g->ctx->device));
    DICE_CHECK(err, cfg->dim >= 2 && cfg->max_period > 0 && (double)(cfg->dim / 2) != cfg->freq_shift,
               "timestep_embedding: dim %lld, max_period %g, freq_shift %g are not valid", (long long)cfg->dim,
               cfg->max_period, cfg->freq_shift);
    DICE_TRY(check_out_dtype(g, "timestep_embedding", dtype, err));
    int64_t b = timesteps->shape[0], shape[2] = {b, cfg->dim};
    DICE_TRY(graph_new_var(g, out, dtype, 2, shape, NULL, 0, err));
    void *y = (*out)->value.data;
    return ON_DEVICE(g, embed_timestep_cpu(y, dtype, timesteps->data, b, cfg, err),
                     embed_timestep_cuda(y, dtype, timesteps->data, b, cfg, g->ctx->stream, err));
}

int op_token_embedding(Graph *g, Var **out, const Tensor *ids, const Tensor *table, const Tensor *pos, DiceError *err) {
    char a[128], b[128];
    DICE_CHECK(err, ids->ndim == 2 && ids->dtype == DT_I32 && ids->device == DEV_CPU && tensor_is_contiguous(ids),
               "token_embedding: ids %s must be a contiguous (B, N) i32 tensor on the CPU",
               tensor_describe(ids, a, sizeof a));
    DICE_CHECK(err, table->ndim == 2 && table->device == g->ctx->device && tensor_is_contiguous(table),
               "token_embedding: table %s must be a contiguous (V, C) tensor on %s", tensor_describe(table, a, sizeof a),
               device_name(g->ctx->device));
    DICE_TRY(check_out_dtype(g, "token_embedding", table->dtype, err));
    int64_t bs = ids->shape[0], n = ids->shape[1], vocab = table->shape[0], c = table->shape[1];
    if (pos)
        DICE_CHECK(err, pos->ndim == 2 && pos->shape[0] >= n && pos->shape[1] == c && pos->dtype == table->dtype &&
                            pos->device == table->device && tensor_is_contiguous(pos),
                   "token_embedding: position table %s does not fit %lld tokens of table %s",
                   tensor_describe(pos, a, sizeof a), (long long)n, tensor_describe(table, b, sizeof b));
    const int32_t *id = ids->data;
    for (int64_t i = 0; i < bs * n; i++)
        DICE_CHECK(err, id[i] >= 0 && id[i] < vocab, "token_embedding: id %d at position %lld is outside the vocabulary "
                   "of %lld", id[i], (long long)i, (long long)vocab);
    int64_t shape[3] = {bs, n, c};
    DICE_TRY(graph_new_var(g, out, table->dtype, 3, shape, NULL, 0, err));
    void *y = (*out)->value.data;
    const void *pd = pos ? pos->data : NULL;
    if (g->ctx->device == DEV_CPU) return embed_tokens_cpu(y, id, bs * n, n, table->data, pd, c, table->dtype, err);
#ifdef DICE_CUDA
    Tensor dev_ids;  // the checked ids, copied to the device
    DICE_TRY(arena_tensor(g->arena, &dev_ids, DT_I32, 2, ids->shape, err));
    DICE_TRY(tensor_copy(g->ctx, &dev_ids, ids, err));
    return embed_tokens_cuda(y, dev_ids.data, bs * n, n, table->data, pd, c, table->dtype, g->ctx->stream, err);
#else
    return DICE_FAIL(err, "token_embedding: this build of dice has no CUDA backend");
#endif
}
