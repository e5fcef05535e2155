// sample/pipeline.c — prompts to images (sample/pipeline.h): text conditioning, the embedding transforms
// (scaling, DICE, a caller's hook), seeded torch-compatible noise, the scheduler loop with unguided or CFG UNet
// calls; decoding is the model's (sd_model_decode: the VAE, or the pixel mapping of a pixel-space model).
#include "pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/tensor_copy.h"
#include "nn/torch_rng.h"

PipelineOptions pipeline_defaults(void) {
    PipelineOptions o;
    memset(&o, 0, sizeof o);
    o.sampler = SCHED_DPMSOLVER_MULTISTEP;
    o.steps = 20;
    o.guidance = 1.0;
    o.embed_scale = 1.0;
    o.alpha = 1.0;
    return o;
}

int pipeline_noise(uint64_t seed, int h, int w, int c, float *out, DiceError *err) {
    size_t n = (size_t)h * w * c;
    float *nchw = malloc(n * sizeof *nchw);
    DICE_CHECK(err, nchw, "pipeline: out of host memory for the noise");
    TorchGenerator gen;
    torch_gen_manual_seed(&gen, seed);
    int rc = torch_randn(&gen, DT_F32, nchw, n, err);
    for (int y = 0; y < h && !rc; y++)                 // (C, h, w) -> (h, w, C)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) out[((size_t)y * w + x) * c + k] = nchw[((size_t)k * h + y) * w + x];
    free(nchw);
    return rc;
}

int pipeline_image_size(const SdModel *m, const PipelineOptions *o, int *height, int *width, DiceError *err) {
    int f = sd_model_vae_scale(m), multiple = sd_model_size_multiple(m);
    int64_t fallback = m->unet.cfg.sample_size * f;
    *height = o->height ? o->height : (int)fallback;
    *width = o->width ? o->width : (int)fallback;
    DICE_CHECK(err, *height > 0 && *width > 0, "%s: no image size given and the UNet config has no sample_size",
               m->path);
    DICE_CHECK(err, *height % multiple == 0 && *width % multiple == 0 && *height <= 16384 && *width <= 16384,
               "image size %dx%d: height and width must be multiples of %d for this model (%d pixels per latent pixel, "
               "%d UNet levels)", *width, *height, multiple, f, m->unet.cfg.n_levels);
    return 0;
}

// Device memory of one generate call.
typedef struct Run {
    SdModel *m;
    DiceCtx *ctx;
    Arena cond, step, scratch, host;  // conditioning (whole call), per step, text encoding / transforms, host per step
    Graph graph;
    PipelineStats stats;
} Run;

// out (n, N, C) f32 on the device in run->cond: the last hidden state of `texts`.
static int encode(Run *run, const char *const *texts, int n, Tensor *out, DiceError *err) {
    SdModel *m = run->m;
    DICE_TRY(arena_tensor(&run->cond, out, DT_F32, 3,
                          (int64_t[]){n, m->tok.max_length, m->text.cfg.hidden_size}, err));
    DICE_TRY(clip_encode_prompts(run->ctx, &run->scratch, &m->text, &m->tok, texts, n, CLIP_LAST_HIDDEN_STATE, out,
                                 NULL, err));
    run->stats.text_rows += n;
    return 0;
}

// c <- the transforms of o applied to c (in place), with c_ref and c_null as the sharpener's second inputs.
static int transform(Run *run, const PipelineOptions *o, Tensor *c, const Tensor *c_ref, const Tensor *c_null,
                     DiceError *err) {
    Graph graph, *g = &graph;
    ArenaMark mark = arena_mark(&run->scratch);
    DICE_TRY(graph_init(g, run->ctx, &run->scratch, err));
    graph_no_grad_begin(g);
    Var *x, *ref = NULL, *null = NULL;
    int rc = graph_leaf(g, &x, c, false, err);
    if (!rc && c_ref) rc = graph_leaf(g, &ref, c_ref, false, err);
    if (!rc && c_null) rc = graph_leaf(g, &null, c_null, false, err);
    if (!rc && o->embed_scale != 1.0) rc = op_scale(g, &x, x, o->embed_scale, 0.0, err);
    if (!rc && o->sharpener) {
        rc = sharpener_forward(g, o->sharpener, x, ref, o->alpha, &x, err);
        run->stats.sharpener_calls++;
        if (!rc && o->beta != 0.0) {  // c_phi - beta (c_neg - c_null)
            Var *diff, *neg_null;
            rc = op_scale(g, &neg_null, null, -1.0, 0.0, err);
            if (!rc) rc = op_add(g, &diff, ref, neg_null, err);
            if (!rc) rc = op_scale(g, &diff, diff, -o->beta, 0.0, err);
            if (!rc) rc = op_add(g, &x, x, diff, err);
        }
    }
    if (!rc && o->transform.apply) rc = o->transform.apply(o->transform.user, g, x, ref, null, &x, err);
    if (!rc) {
        char d1[96], d2[96];
        rc = tensor_same_shape(&x->value, c) && x->value.dtype == DT_F32
                 ? tensor_copy(run->ctx, c, &x->value, err)
                 : DICE_FAIL(err, "pipeline: the embedding transform gave %s for %s",
                             tensor_describe(&x->value, d1, sizeof d1), tensor_describe(c, d2, sizeof d2));
    }
    graph_free(g);
    arena_release(&run->scratch, mark);
    return rc;
}

static int check_options(const SdModel *m, const PipelineOptions *o, const PipelineRequest *r, bool any_negative,
                         DiceError *err) {
    DICE_CHECK(err, r->n >= 1 && r->prompts && r->seeds, "pipeline: no images asked for");
    DICE_CHECK(err, (m->loaded & (SD_LOAD_TOKENIZER | SD_LOAD_TEXT | SD_LOAD_UNET)) ==
                        (SD_LOAD_TOKENIZER | SD_LOAD_TEXT | SD_LOAD_UNET),
               "pipeline: %s was opened without its tokenizer, text encoder or UNet", m->path);
    DICE_CHECK(err, (!r->out_image && !r->out_pixels) || sd_model_has_codec(m),
               "pipeline: %s was opened without its VAE", m->path);
    DICE_CHECK(err, o->steps >= 1, "pipeline: %d steps", o->steps);
    DICE_CHECK(err, isfinite(o->guidance) && isfinite(o->embed_scale) && isfinite(o->alpha) && isfinite(o->beta),
               "pipeline: guidance, scale, alpha and beta must be finite numbers");
    bool uses_negative = o->guidance != 1.0 || o->sharpener || o->transform.apply;
    DICE_CHECK(err, !any_negative || uses_negative,
               "pipeline: a negative prompt has no effect without CFG (guidance != 1), DICE or a transform; "
               "dice never drops it silently");
    DICE_CHECK(err, o->beta == 0.0 || (o->sharpener && any_negative),
               "pipeline: beta weighs the negative prompt in DICE mode: it needs a sharpener and a negative prompt");
    if (o->sharpener)
        DICE_CHECK(err, o->sharpener->d_e == m->text.cfg.hidden_size,
                   "pipeline: the sharpener works on %d-wide embeddings, the model's text encoder gives %d",
                   o->sharpener->d_e, m->text.cfg.hidden_size);
    return 0;
}

// The UNet's encoder_hidden_states (rows, N, C) in the model dtype: [uncond; cond] under CFG, else cond.
static int conditioning(Run *run, const PipelineOptions *o, const PipelineRequest *r, bool cfg, Tensor *ehs,
                        DiceError *err) {
    int n = r->n;
    bool any_negative = false;
    const char **uncond = malloc((size_t)n * sizeof *uncond), **empty = malloc((size_t)n * sizeof *empty);
    DICE_CHECK(err, uncond && empty, "pipeline: out of host memory");
    for (int i = 0; i < n; i++) {
        uncond[i] = r->negatives && r->negatives[i] ? r->negatives[i] : "";
        empty[i] = "";
        any_negative |= r->negatives && r->negatives[i];
    }
    Tensor c, u = {0}, null = {0};
    bool transforms = o->embed_scale != 1.0 || o->sharpener || o->transform.apply;
    bool ref_needed = o->sharpener || o->transform.apply;
    int rc = encode(run, r->prompts, n, &c, err);
    if (!rc && (cfg || ref_needed)) rc = encode(run, uncond, n, &u, err);
    if (!rc && ref_needed) {
        if (any_negative) rc = encode(run, empty, n, &null, err);
        else null = u;
    }
    free(uncond);
    free(empty);
    if (!rc && transforms) rc = transform(run, o, &c, ref_needed ? &u : NULL, ref_needed ? &null : NULL, err);
    if (rc) return rc;
    SdModel *m = run->m;
    int rows = cfg ? 2 * n : n;
    DICE_TRY(arena_tensor(&run->cond, ehs, m->dtype, 3, (int64_t[]){rows, c.shape[1], c.shape[2]}, err));
    Tensor part;
    DICE_TRY(tensor_narrow(&part, ehs, 0, cfg ? n : 0, n, err));
    DICE_TRY(tensor_copy(run->ctx, &part, &c, err));
    if (cfg) {
        DICE_TRY(tensor_narrow(&part, ehs, 0, 0, n, err));
        DICE_TRY(tensor_copy(run->ctx, &part, &u, err));
    }
    return 0;
}

// One UNet call on x_in (rows, h, w, C) host f32 -> eps (rows, h, w, C) host f32 (in run->host).
static int unet_call(Run *run, const Tensor *ehs, const float *x_in, int rows, int h, int w, float t, float **eps,
                     DiceError *err) {
    SdModel *m = run->m;
    int64_t C = m->unet.cfg.in_channels;
    arena_reset(&run->step);
    arena_reset(&run->host);
    graph_reset(&run->graph);
    Tensor xh, xd, ts, out;
    DICE_TRY(tensor_wrap(&xh, (void *)x_in, DT_F32, DEV_CPU, 4, (int64_t[]){rows, h, w, C}, err));
    DICE_TRY(tensor_to(run->ctx, &run->step, &xd, &xh, m->dtype, err));
    DICE_TRY(tensor_wrap(&ts, &t, DT_F32, DEV_CPU, 1, (int64_t[]){1}, err));
    Var *xv, *ev, *epsv;
    DICE_TRY(graph_leaf(&run->graph, &xv, &xd, false, err));
    DICE_TRY(graph_leaf(&run->graph, &ev, ehs, false, err));
    DICE_TRY(unet_forward(&run->graph, &m->unet, xv, &ts, ev, &epsv, err));
    DICE_TRY(tensor_to(run->ctx, &run->host, &out, &epsv->value, DT_F32, err));
    run->stats.unet_calls++;
    run->stats.unet_rows += rows;
    *eps = out.data;
    return 0;
}

static int denoise(Run *run, const PipelineOptions *o, const PipelineRequest *r, const Tensor *ehs, bool cfg, int h,
                   int w, float *x, DiceError *err) {
    SdModel *m = run->m;
    int n = r->n, rows = cfg ? 2 * n : n;
    size_t per = (size_t)h * w * m->unet.cfg.in_channels, count = per * n;
    Scheduler s;
    DICE_TRY(sd_model_scheduler(m, o->sampler, &s, err));
    float *x_in = malloc(count * (cfg ? 2 : 1) * sizeof *x_in), *e = malloc(count * sizeof *e);
    int rc = x_in && e ? scheduler_set_timesteps(&s, o->steps, err) : DICE_FAIL(err, "pipeline: out of host memory");
    if (!rc && r->init_latents) memcpy(x, r->init_latents, count * sizeof *x);
    for (int i = 0; i < n && !rc && !r->init_latents; i++) {
        rc = pipeline_noise(r->seeds[i], h, w, (int)m->unet.cfg.in_channels, x + per * i, err);
        for (size_t k = 0; k < per && !rc; k++) x[per * i + k] *= s.init_noise_sigma;
    }
    for (int i = 0; i < s.num_steps && !rc; i++) {
        float t = s.timesteps[i], *eps;
        rc = scheduler_scale_model_input(&s, t, x, x_in, count, err);
        if (!rc && cfg) memcpy(x_in + count, x_in, count * sizeof *x_in);
        if (!rc) rc = unet_call(run, ehs, x_in, rows, h, w, t, &eps, err);
        if (rc) break;
        if (cfg) {  // eps = e_u + w (e_c - e_u), each operation rounded to f32 as torch does
            float wf = (float)o->guidance;
            for (size_t k = 0; k < count; k++) {
                float diff = eps[count + k] - eps[k];
                float scaled = wf * diff;
                e[k] = eps[k] + scaled;
            }
        } else {
            memcpy(e, eps, count * sizeof *e);
        }
        rc = scheduler_step(&s, t, e, x, x, count, err);
        if (!rc && o->progress) o->progress(o->progress_user, i + 1, s.num_steps);
    }
    free(x_in);
    free(e);
    scheduler_free(&s);
    return rc;
}

int pipeline_generate(SdModel *m, const PipelineOptions *o, const PipelineRequest *r, PipelineStats *stats,
                      DiceError *err) {
    bool any_negative = false;
    for (int i = 0; r->negatives && i < r->n; i++) any_negative |= r->negatives[i] != NULL;
    DICE_TRY(check_options(m, o, r, any_negative, err));
    int H, W;
    DICE_TRY(pipeline_image_size(m, o, &H, &W, err));
    int f = sd_model_vae_scale(m), h = H / f, w = W / f;
    bool cfg = o->guidance != 1.0;
    Run run;
    memset(&run, 0, sizeof run);
    run.m = m;
    run.ctx = m->ctx;
    Device dev = m->ctx->device;
    int rc = arena_init(&run.cond, "conditioning", dev, (size_t)8 << 20, 0, err);
    if (!rc) rc = arena_init(&run.step, "unet step", dev, (size_t)64 << 20, 0, err);
    if (!rc) rc = arena_init(&run.scratch, "text encoding", dev, (size_t)16 << 20, 0, err);
    if (!rc) rc = arena_init(&run.host, "host step", DEV_CPU, (size_t)4 << 20, 0, err);
    bool graph_ok = !rc && !graph_init(&run.graph, m->ctx, &run.step, err);
    if (!rc && !graph_ok) rc = -1;
    if (graph_ok) graph_no_grad_begin(&run.graph);
    size_t count = (size_t)r->n * h * w * m->unet.cfg.in_channels;
    float *x = rc ? NULL : malloc(count * sizeof *x);
    if (!rc && !x) rc = DICE_FAIL(err, "pipeline: out of host memory");
    Tensor ehs;
    if (!rc) rc = conditioning(&run, o, r, cfg, &ehs, err);
    if (!rc) rc = denoise(&run, o, r, &ehs, cfg, h, w, x, err);
    if (!rc && r->out_latents) memcpy(r->out_latents, x, count * sizeof *x);
    if (!rc && (r->out_image || r->out_pixels)) rc = sd_model_decode(m, x, r->n, h, w, r->out_image, r->out_pixels, err);
    run.stats.nfe = (double)run.stats.unet_rows / r->n;
    if (stats) *stats = run.stats;
    free(x);
    if (graph_ok) graph_free(&run.graph);
    arena_free(&run.host);
    arena_free(&run.scratch);
    arena_free(&run.step);
    arena_free(&run.cond);
    return rc;
}
