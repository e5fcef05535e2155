// nn/cmd_run.c — `dice run COMPONENT`: one model component on named tensors of a safetensors file, outputs to
// another, in diffusers' / transformers' layouts (images and latents NCHW at the file boundary), so anyone can
// check dice against their own PyTorch reference without writing C.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "nn/safetensors.h"
#include "nn/tensor_copy.h"
#include "sample_args.h"

#define RUN_MAX_OUT 40

// One invocation: the input file, host memory for inputs / outputs, the outputs to write.
typedef struct RunIo {
    const char *in_path;
    StFile in;
    bool in_open;
    DiceCtx cpu;
    Arena host;
    StWriteTensor out[RUN_MAX_OUT];
    char out_names[RUN_MAX_OUT][48];
    int n_out;
} RunIo;

// Input `name` as a host f32 tensor with its file shape (any float dtype). Missing: an error naming what is needed.
static int input_f32(RunIo *io, const char *name, Tensor *out, DiceError *err) {
    DICE_CHECK(err, io->in_open, "this component needs --in FILE with a tensor '%s'", name);
    const StTensorInfo *t = st_find(&io->in, name);
    DICE_CHECK(err, t, "%s: no tensor '%s' (see `dice help run`)", io->in_path, name);
    DICE_CHECK(err, dtype_is_float(t->dtype) && t->ndim <= TENSOR_MAX_DIMS, "%s: tensor '%s' must be a float tensor",
               io->in_path, name);
    DICE_TRY(arena_tensor(&io->host, out, DT_F32, t->ndim, t->shape, err));
    Tensor src;
    void *copy;
    DICE_TRY(arena_alloc(&io->host, t->end - t->begin, &copy, err));
    memcpy(copy, t->data, t->end - t->begin);  // the mapping may be unaligned for the dtype
    DICE_TRY(tensor_wrap(&src, copy, t->dtype, DEV_CPU, t->ndim, t->shape, err));
    return tensor_copy(&io->cpu, out, &src, err);
}

// A host f32 (B, C, H, W) input as NHWC (B, H, W, C).
static int input_nchw(RunIo *io, const char *name, Tensor *out, DiceError *err) {
    Tensor t, view;
    DICE_TRY(input_f32(io, name, &t, err));
    DICE_CHECK(err, t.ndim == 4, "%s: tensor '%s' must be 4-d (B, C, H, W)", io->in_path, name);
    DICE_TRY(tensor_permute(&view, &t, (int[]){0, 2, 3, 1}, err));
    DICE_TRY(arena_tensor(&io->host, out, DT_F32, 4, view.shape, err));
    return tensor_copy(&io->cpu, out, &view, err);
}

// Adds output `name` from t (any device / float or i32 dtype; NHWC permuted to NCHW when nchw).
static int output(RunIo *io, DiceCtx *ctx, const char *name, const Tensor *t, bool nchw, DiceError *err) {
    DICE_CHECK(err, io->n_out < RUN_MAX_OUT, "too many outputs");
    Tensor h, o;
    DICE_TRY(tensor_to(ctx, &io->host, &h, t, t->dtype == DT_I32 ? DT_I32 : DT_F32, err));
    o = h;
    if (nchw) {
        Tensor view;
        DICE_TRY(tensor_permute(&view, &h, (int[]){0, 3, 1, 2}, err));
        DICE_TRY(arena_tensor(&io->host, &o, DT_F32, 4, view.shape, err));
        DICE_TRY(tensor_copy(&io->cpu, &o, &view, err));
    }
    StWriteTensor *w = &io->out[io->n_out];
    snprintf(io->out_names[io->n_out], sizeof io->out_names[0], "%s", name);
    w->name = io->out_names[io->n_out++];
    w->dtype = o.dtype;
    w->ndim = o.ndim;
    for (int d = 0; d < o.ndim; d++) w->shape[d] = o.shape[d];
    w->data = o.data;
    return 0;
}

// The prompts of the input file's "prompts" metadata (a JSON list of strings).
static int input_prompts(RunIo *io, char ***list, int *n, DiceError *err) {
    *list = NULL;
    *n = 0;
    DICE_CHECK(err, io->in_open, "tokenizer: needs --in FILE whose metadata \"prompts\" is a JSON list of strings");
    const char *text = st_meta(&io->in, "prompts");
    DICE_CHECK(err, text, "%s: no \"prompts\" metadata (a JSON list of strings)", io->in_path);
    cJSON *root = cJSON_Parse(text);
    int count = cJSON_IsArray(root) ? cJSON_GetArraySize(root) : 0;
    *list = count > 0 ? calloc((size_t)count, sizeof **list) : NULL;
    int rc = *list ? 0 : DICE_FAIL(err, "%s: metadata \"prompts\" is not a non-empty JSON list", io->in_path);
    for (int i = 0; i < count && !rc; i++) {
        const cJSON *e = cJSON_GetArrayItem(root, i);
        if (!cJSON_IsString(e)) rc = DICE_FAIL(err, "%s: prompts[%d] is not a string", io->in_path, i);
        else if (!((*list)[i] = strdup(e->valuestring))) rc = DICE_FAIL(err, "out of host memory");
    }
    cJSON_Delete(root);
    *n = count;
    return rc;
}

static int run_tokenizer(RunIo *io, SdModel *m, DiceError *err) {
    char **prompts;
    int n;
    DICE_TRY(input_prompts(io, &prompts, &n, err));
    int N = m->tok.max_length, rc = 0;
    Tensor ids, mask;
    rc = arena_tensor(&io->host, &ids, DT_I32, 2, (int64_t[]){n, N}, err);
    if (!rc) rc = arena_tensor(&io->host, &mask, DT_I32, 2, (int64_t[]){n, N}, err);
    for (int i = 0; i < n && !rc; i++)
        rc = clip_tokenizer_encode(&m->tok, prompts[i], (int32_t *)ids.data + (size_t)i * N,
                                   (int32_t *)mask.data + (size_t)i * N, NULL, err);
    if (!rc) rc = output(io, &io->cpu, "input_ids", &ids, false, err);
    if (!rc) rc = output(io, &io->cpu, "attention_mask", &mask, false, err);
    sample_args_free_prompts(prompts, n);
    return rc;
}

static int run_text_encoder(RunIo *io, SdModel *m, Arena *dev, DiceError *err) {
    DICE_CHECK(err, io->in_open, "text-encoder: needs --in FILE with input_ids (B, N)");
    const StTensorInfo *t = st_find(&io->in, "input_ids");
    DICE_CHECK(err, t && t->ndim == 2 && (t->dtype == DT_I32 || t->dtype == DT_I64),
               "%s: needs input_ids, a (B, N) int32 or int64 tensor", io->in_path);
    Tensor ids;
    DICE_TRY(arena_tensor(&io->host, &ids, DT_I32, 2, t->shape, err));
    for (int64_t i = 0; i < st_numel(t); i++) {
        int64_t v;
        if (t->dtype == DT_I64) memcpy(&v, (const char *)t->data + 8 * i, 8);
        else {
            int32_t v32;
            memcpy(&v32, (const char *)t->data + 4 * i, 4);
            v = v32;
        }
        DICE_CHECK(err, v >= 0 && v < m->text.cfg.vocab_size, "%s: input_ids[%lld] = %lld is outside the vocabulary",
                   io->in_path, (long long)i, (long long)v);
        ((int32_t *)ids.data)[i] = (int32_t)v;
    }
    Graph g;
    DICE_TRY(graph_init(&g, m->ctx, dev, err));
    graph_no_grad_begin(&g);
    Var *hs[64] = {0};
    DICE_CHECK(err, m->text.cfg.num_layers < 64, "text-encoder: more than 63 layers");
    ClipEncoderOutput out = {0};
    out.hidden_states = hs;
    int rc = clip_encoder_forward(&g, &m->text, &ids, CLIP_LAST_HIDDEN_STATE, &out, err);
    if (!rc) rc = output(io, m->ctx, "last_hidden_state", &out.last_hidden_state->value, false, err);
    if (!rc) rc = output(io, m->ctx, "pooler_output", &out.pooled->value, false, err);
    for (int i = 0; i <= m->text.cfg.num_layers && !rc; i++) {
        char name[48];
        snprintf(name, sizeof name, "hidden_states.%d", i);
        rc = output(io, m->ctx, name, &hs[i]->value, false, err);
    }
    graph_free(&g);
    return rc;
}

static int run_unet(RunIo *io, SdModel *m, Arena *dev, DiceError *err) {
    Tensor x, ts, ehs, xd, ed;
    DICE_TRY(input_nchw(io, "sample", &x, err));
    DICE_TRY(input_f32(io, "timestep", &ts, err));
    DICE_TRY(input_f32(io, "encoder_hidden_states", &ehs, err));
    DICE_TRY(tensor_to(m->ctx, dev, &xd, &x, m->dtype, err));
    DICE_TRY(tensor_to(m->ctx, dev, &ed, &ehs, m->dtype, err));
    Graph g;
    DICE_TRY(graph_init(&g, m->ctx, dev, err));
    graph_no_grad_begin(&g);
    Var *xv, *ev, *eps;
    int rc = graph_leaf(&g, &xv, &xd, false, err);
    if (!rc) rc = graph_leaf(&g, &ev, &ed, false, err);
    if (!rc) rc = unet_forward(&g, &m->unet, xv, &ts, ev, &eps, err);
    if (!rc) rc = output(io, m->ctx, "noise_pred", &eps->value, true, err);
    graph_free(&g);
    return rc;
}

static int run_vae(RunIo *io, SdModel *m, Arena *dev, bool encode, uint64_t seed, DiceError *err) {
    Tensor x, xd;
    DICE_TRY(input_nchw(io, encode ? "image" : "z", &x, err));
    DICE_TRY(tensor_to(m->ctx, dev, &xd, &x, m->dtype, err));
    Graph g;
    DICE_TRY(graph_init(&g, m->ctx, dev, err));
    graph_no_grad_begin(&g);
    Var *xv, *y;
    int rc = graph_leaf(&g, &xv, &xd, false, err);
    if (!rc && encode) {
        VaePosterior post;
        TorchGenerator gen;
        Tensor sample;
        torch_gen_manual_seed(&gen, seed);
        rc = vae_encode(&m->vae, &g, xv, &io->host, &post, err);
        if (!rc) rc = vae_posterior_sample(&post, &gen, &io->host, &sample, err);
        if (!rc) rc = output(io, &io->cpu, "mean", &post.mean, true, err);
        if (!rc) rc = output(io, &io->cpu, "logvar", &post.logvar, true, err);
        if (!rc) rc = output(io, &io->cpu, "sample", &sample, true, err);
    } else if (!rc) {
        rc = vae_decode(&m->vae, &g, xv, &y, err);
        if (!rc) rc = output(io, m->ctx, "image", &y->value, true, err);
    }
    graph_free(&g);
    return rc;
}

static int run_sharpener(RunIo *io, DiceCtx *ctx, const char *path, double alpha, Arena *dev, DiceError *err) {
    Sharpener s;
    Arena params;
    DICE_TRY(arena_init(&params, "sharpener", ctx->device, (size_t)16 << 20, 0, err));
    Tensor c, cn, cd, cnd;
    int rc = sharpener_load(&s, path, &params, ctx, err);
    if (!rc) rc = input_f32(io, "c", &c, err);
    if (!rc) rc = input_f32(io, "c_null", &cn, err);
    if (!rc && cn.ndim == 3 && c.ndim == 3 && cn.shape[0] == 1 && c.shape[0] > 1) {  // broadcast (1, N, d)
        Tensor rep;
        rc = arena_tensor(&io->host, &rep, DT_F32, 3, c.shape, err);
        for (int64_t b = 0; b < c.shape[0] && !rc; b++)
            memcpy((float *)rep.data + b * tensor_numel(&cn), cn.data, tensor_nbytes(&cn));
        cn = rep;
    }
    if (!rc) rc = tensor_to(ctx, dev, &cd, &c, DT_F32, err);
    if (!rc) rc = tensor_to(ctx, dev, &cnd, &cn, DT_F32, err);
    Graph g;
    bool graph_ok = !rc && !graph_init(&g, ctx, dev, err);
    if (!rc && !graph_ok) rc = -1;
    if (graph_ok) graph_no_grad_begin(&g);
    Var *cv, *nv, *phi;
    if (!rc) rc = graph_leaf(&g, &cv, &cd, false, err);
    if (!rc) rc = graph_leaf(&g, &nv, &cnd, false, err);
    if (!rc) rc = sharpener_forward(&g, &s, cv, nv, alpha, &phi, err);
    if (!rc) rc = output(io, ctx, "c_phi", &phi->value, false, err);
    if (graph_ok) graph_free(&g);
    arena_free(&params);
    return rc;
}

// `dice run sample`: the pipeline on the prompts of the flags; --in may hold `latents` (B, C, h, w) to start from.
static int run_sample_component(RunIo *io, const SampleArgs *args, DiceError *err) {
    SampleArgs a = *args;
    char **prompts;
    int n_prompts;
    DICE_TRY(sample_args_prompts(&a, &prompts, &n_prompts, err));
    SampleSetup s;
    int rc = sample_setup_open(&s, &a, err);
    int H = 0, W = 0, n = n_prompts * a.batch;
    if (!rc) rc = pipeline_image_size(&s.model, &s.opts, &H, &W, err);
    int f = rc ? 1 : sd_model_vae_scale(&s.model), C = rc ? 0 : (int)s.model.unet.cfg.in_channels;
    const char **list = malloc(sizeof *list * n), **negs = malloc(sizeof *negs * n);
    uint64_t *seeds = malloc(sizeof *seeds * n);
    Tensor lat, img, init = {0};
    if (!rc && !(list && negs && seeds)) rc = DICE_FAIL(err, "out of host memory");
    for (int i = 0; i < n && !rc; i++)
        list[i] = prompts[i / a.batch], negs[i] = a.negative, seeds[i] = a.seed + (uint64_t)(i % a.batch);
    if (!rc && io->in_open) {
        rc = input_nchw(io, "latents", &init, err);
        if (!rc && (init.shape[0] != n || init.shape[1] != H / f || init.shape[2] != W / f || init.shape[3] != C))
            rc = DICE_FAIL(err, "%s: latents must be (%d, %d, %d, %d) for %d images of %dx%d", io->in_path, n, C,
                           H / f, W / f, n, W, H);
    }
    if (!rc) rc = arena_tensor(&io->host, &lat, DT_F32, 4, (int64_t[]){n, H / f, W / f, C}, err);
    if (!rc) rc = arena_tensor(&io->host, &img, DT_F32, 4, (int64_t[]){n, H, W, 3}, err);
    if (!rc) {
        PipelineRequest r = {n, list, negs, seeds, init.data, lat.data, img.data, NULL};
        rc = pipeline_generate(&s.model, &s.opts, &r, NULL, err);
    }
    if (!rc) rc = output(io, &io->cpu, "latents", &lat, true, err);
    if (!rc) rc = output(io, &io->cpu, "image", &img, true, err);
    free(list);
    free(negs);
    free(seeds);
    sample_args_free_prompts(prompts, n_prompts);
    sample_setup_close(&s);
    return rc;
}

static const char *const COMPONENTS[] = {"tokenizer", "text-encoder", "unet", "vae-encode", "vae-decode",
                                         "sample", "sharpener"};

typedef struct RunFlags {
    const char *model, *config, *in, *out, *device;
    uint64_t seed;
    double alpha;
} RunFlags;

// Flags of every component but sample; 0, 1 (help) or 2 (usage error, printed).
static int parse_flags(RunFlags *f, int argc, char **argv) {
    memset(f, 0, sizeof *f);
    f->device = "cpu", f->alpha = 1.0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return 1;
        if (i + 1 >= argc) {
            fprintf(stderr, "dice run: %s needs a value (see `dice help run`)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(a, "--model")) f->model = v;
        else if (!strcmp(a, "--config")) f->config = v;
        else if (!strcmp(a, "--in")) f->in = v;
        else if (!strcmp(a, "--out")) f->out = v;
        else if (!strcmp(a, "--device") && (!strcmp(v, "cpu") || !strcmp(v, "cuda"))) f->device = v;
        else if (!strcmp(a, "--seed")) f->seed = strtoull(v, &end, 10);
        else if (!strcmp(a, "--alpha")) f->alpha = strtod(v, &end);
        else {
            fprintf(stderr, "dice run: unknown option or bad value '%s %s' (see `dice help run`)\n", a, v);
            return 2;
        }
        if (end && (*end || end == v)) {
            fprintf(stderr, "dice run: bad value '%s' for %s (see `dice help run`)\n", v, a);
            return 2;
        }
    }
    if (!f->model || !f->out) {
        fprintf(stderr, "dice run: --model and --out are required (see `dice help run`)\n");
        return 2;
    }
    return 0;
}

static int run_component(const char *comp, const RunFlags *f, RunIo *io, DiceError *err) {
    DiceCtx cuda;
    DiceCtx *ctx = &io->cpu;
    if (!strcmp(f->device, "cuda")) {
        DICE_TRY(ctx_init_cuda(&cuda, 0, err));
        ctx = &cuda;
    }
    Arena dev;
    int rc = arena_init(&dev, "run", ctx->device, (size_t)64 << 20, 0, err);
    if (!rc && !strcmp(comp, "sharpener")) {
        rc = run_sharpener(io, ctx, f->model, f->alpha, &dev, err);
    } else if (!rc) {
        int what = !strcmp(comp, "tokenizer") ? SD_LOAD_TOKENIZER : !strcmp(comp, "text-encoder") ? SD_LOAD_TEXT
                   : !strcmp(comp, "unet") ? SD_LOAD_UNET : SD_LOAD_VAE;
        SdModel m;
        rc = sd_model_open(&m, f->model, f->config, ctx, what, err);
        if (!rc) {
            if (what == SD_LOAD_TOKENIZER) rc = run_tokenizer(io, &m, err);
            else if (what == SD_LOAD_TEXT) rc = run_text_encoder(io, &m, &dev, err);
            else if (what == SD_LOAD_UNET) rc = run_unet(io, &m, &dev, err);
            else if (!m.has_vae)
                rc = DICE_FAIL(err, "%s: a pixel-space model (model_index.json lists \"vae\": [null, null]) has no VAE "
                               "for %s to run; its latents are the images in [-1, 1] (`dice run sample` gives both)",
                               f->model, comp);
            else rc = run_vae(io, &m, &dev, !strcmp(comp, "vae-encode"), f->seed, err);
            sd_model_close(&m);
        }
    }
    arena_free(&dev);
    if (ctx == &cuda) ctx_free(&cuda);
    return rc;
}

static int run_run(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        if (argc >= 2) fputs(cmd_run.usage, stdout);
        else fprintf(stderr, "dice run: which component? (see `dice help run`)\n");
        return argc >= 2 ? 0 : 2;
    }
    const char *comp = argv[1];
    bool known = false;
    for (size_t i = 0; i < sizeof COMPONENTS / sizeof COMPONENTS[0]; i++) known |= !strcmp(comp, COMPONENTS[i]);
    if (!known) {
        fprintf(stderr, "dice run: unknown component '%s' (see `dice help run`)\n", comp);
        return 2;
    }
    SampleArgs sa;
    RunFlags f;
    int parsed = !strcmp(comp, "sample") ? sample_args_parse(&sa, argc - 1, argv + 1, "run", true)
                                         : parse_flags(&f, argc, argv);
    if (parsed == 1) fputs(cmd_run.usage, stdout);
    if (parsed) return parsed == 1 ? 0 : 2;
    if (!strcmp(comp, "sample")) f = (RunFlags){sa.model, sa.config, sa.in, sa.out, sa.device, sa.seed, sa.alpha};
    DiceError err = {{0}};
    RunIo io;
    memset(&io, 0, sizeof io);
    ctx_init_cpu(&io.cpu);
    io.in_path = f.in;
    int rc = arena_init(&io.host, "run host", DEV_CPU, (size_t)16 << 20, 0, &err);
    if (!rc && f.in) rc = st_open(&io.in, f.in, &err), io.in_open = !rc;
    if (!rc) rc = !strcmp(comp, "sample") ? run_sample_component(&io, &sa, &err) : run_component(comp, &f, &io, &err);
    if (!rc) rc = st_write(f.out, io.out, io.n_out, NULL, NULL, 0, &err);
    if (rc) fprintf(stderr, "dice run %s: error: %s\n", comp, err.msg);
    else printf("dice run %s: wrote %d tensors to %s\n", comp, io.n_out, f.out);
    if (io.in_open) st_close(&io.in);
    arena_free(&io.host);
    return rc ? 1 : 0;
}

const DiceCommand cmd_run = {
    "run", "one model component on tensors of a safetensors file (parity checks)",
    "usage: dice run COMPONENT --model PATH [--config DIR] [--in IN.safetensors] --out OUT.safetensors\n"
    "                [--device cpu|cuda]\n\n"
    "Evaluates one component on named input tensors and writes named outputs (f32; any float dtype is read),\n"
    "in diffusers' / transformers' layouts: images and latents (B, C, H, W), sequences (B, N, C). --model is a\n"
    "StableDiffusionPipeline folder, or a single-file checkpoint with --config DIR (a diffusers SD 1.x folder\n"
    "giving the configs and tokenizer); a sharpener .safetensors file for `sharpener`. Components:\n\n"
    "  tokenizer     in:  metadata \"prompts\" = a JSON list of strings\n"
    "                out: input_ids (B, N) i32, attention_mask (B, N) i32   (padded to model_max_length)\n"
    "  text-encoder  in:  input_ids (B, N) i32 or i64\n"
    "                out: last_hidden_state (B, N, C), pooler_output (B, C), hidden_states.{0..L} (B, N, C)\n"
    "                     (0 = embeddings, i = after layer i, as output_hidden_states=True numbers them)\n"
    "  unet          in:  sample (B, C, h, w), timestep (B) or (1) or a scalar, encoder_hidden_states (B, N, D)\n"
    "                out: noise_pred (B, C, h, w)\n"
    "  vae-encode    in:  image (B, 3, H, W) in [-1, 1]\n"
    "                out: mean, logvar, sample (B, 4, h, w): latent_dist's mean, clamped log-variance and\n"
    "                     sample(generator=torch.Generator().manual_seed(SEED)) (--seed SEED, default 0)\n"
    "  vae-decode    in:  z (B, 4, h, w) (the decoder input: latents / scaling_factor)\n"
    "                out: image (B, 3, H, W) (vae.decode(z).sample, before post-processing)\n"
    "                (a pixel-space model, whose model_index.json lists no VAE, has neither vae component)\n"
    "  sharpener     in:  c (B, N, d), c_null (B, N, d) or (1, N, d); --alpha A (default 1)\n"
    "                out: c_phi (B, N, d) = c + alpha r(c, c_null), token 0 kept\n"
    "  sample        the flags of `dice sample` below (--out is the output file); --in may hold latents\n"
    "                (B, C, h, w), the initial latents (times init_noise_sigma), else the seeded noise\n"
    "                out: latents (B, C, h, w) final, image (B, 3, H, W) in [0, 1] (output_type=\"pt\");\n"
    "                for a pixel-space model the latents are the images in [-1, 1] (C = 3, h = H)\n\n"
    "sample flags:\n" SAMPLE_FLAGS_HELP
    "\nExit status: 0 on success, 1 on an error (one line on stderr), 2 on a usage error.\n",
    run_run};
