// data/prep.c — the `dice prep` pipeline: captions + images -> the model's latent posterior (its VAE's, or the
// images themselves for a pixel-space model: sd_model_encode) + token ids -> HDF5 shards, with resumption from
// finished shards and a settings record (out_dir/prep.json). See data/prep.h.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/prep.h"
#include "data/shards.h"
#include "models/sd_model.h"
#include "nn/tensor_copy.h"

#define PREP_MANIFEST "prep.json"
#define PREP_CREATED_BY "dice prep (shard format 1)"

// Everything one run holds.
typedef struct Prep {
    const PrepOptions *opt;
    PrepCaptions captions;
    int64_t n_entries;             // after limit
    SdModel model;                 // its tokenizer and image codec (SD_LOAD_TOKENIZER | SD_LOAD_VAE)
    DiceCtx ctx;
    Arena step, scratch, host;
    Graph graph;
    ShardInfo info;                // what every shard of this run must say
    float *pixels;                 // (batch, size, size, 3)
    int32_t *ids;                  // (batch, L)
    int64_t *batch_entry;          // (batch,) entry index of each batch slot
    double started;
} Prep;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void say(const Prep *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const Prep *p, const char *fmt, ...) {
    if (!p->opt->log) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->opt->log, fmt, ap);
    va_end(ap);
    fflush(p->opt->log);
}

static void shard_file(const Prep *p, int k, char *path, size_t cap) {
    snprintf(path, cap, "%s/shard_%05d.h5", p->opt->out_dir, k);
}

// The model's name for the shards: the pipeline folder's last path component.
static void model_name(const char *dir, char *out, size_t cap) {
    char real[4096];
    const char *path = realpath(dir, real) ? real : dir;
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && path[s - 1] != '/') s--;
    snprintf(out, cap, "%.*s", (int)(n - s), path + s);
}

static int make_dir(const char *dir, DiceError *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *s = path + 1;; s++) {
        char c = *s;
        if (c == '/' || c == '\0') {
            *s = '\0';
            if (mkdir(path, 0777) && errno != EEXIST)
                return DICE_FAIL(err, "%s: cannot create the output directory: %s", path, strerror(errno));
            *s = c;
        }
        if (!c) break;
    }
    struct stat st;
    DICE_CHECK(err, !stat(dir, &st) && S_ISDIR(st.st_mode), "%s: not a directory", dir);
    return 0;
}

// ---------------------------------------------------------------- settings record

static cJSON *manifest_new(const Prep *p) {
    const PrepOptions *o = p->opt;
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON *m = cJSON_CreateObject();
    if (!m) return NULL;
    cJSON_AddStringToObject(m, "written_by", PREP_CREATED_BY);
    cJSON_AddStringToObject(m, "model", p->info.model);
    cJSON_AddNumberToObject(m, "size", o->size);
    cJSON_AddNumberToObject(m, "shard_size", o->shard_size);
    cJSON_AddStringToObject(m, "seed", seed);
    cJSON_AddNumberToObject(m, "limit", (double)o->limit);
    cJSON_AddNumberToObject(m, "entries", (double)p->n_entries);
    cJSON_AddStringToObject(m, "captions", o->captions_path);
    return m;
}

// A previous run's record must agree on everything that decides what a shard holds.
static int manifest_compare(const cJSON *old, const cJSON *now, const char *path, DiceError *err) {
    static const struct {
        const char *key, *option;
    } keys[] = {{"model", "--model (folder name)"}, {"size", "--size"},   {"shard_size", "--shard-size"},
                {"seed", "--seed"},                 {"limit", "--limit"}, {"entries", "captioned images (--captions)"}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(old, keys[i].key);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(now, keys[i].key);
        if (a && cJSON_Compare(a, b, 1)) continue;
        char *was = a ? cJSON_PrintUnformatted(a) : NULL, *is = cJSON_PrintUnformatted(b);
        int rc = DICE_FAIL(err, "%s: this directory was prepared with %s %s, this run has %s: use the same settings "
                           "to resume, or another --out", path, keys[i].option, was ? was : "(missing)",
                           is ? is : "?");
        free(was);
        free(is);
        return rc;
    }
    return 0;
}

static int manifest_check_or_write(const Prep *p, DiceError *err) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", p->opt->out_dir, PREP_MANIFEST);
    cJSON *now = manifest_new(p);
    DICE_CHECK(err, now, "%s: out of memory", path);
    FILE *f = fopen(path, "rb");
    int rc = 0;
    if (f) {
        char buf[1 << 14];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        cJSON *old = cJSON_Parse(buf);
        rc = old ? manifest_compare(old, now, path, err)
                 : DICE_FAIL(err, "%s: not a dice prep record (invalid JSON); remove it to start over", path);
        cJSON_Delete(old);
    } else {
        char *text = cJSON_Print(now);
        snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
        FILE *out = text ? fopen(tmp, "wb") : NULL;
        int ok = out && fputs(text, out) >= 0 && fputc('\n', out) != EOF;
        if (out) ok = !fclose(out) && ok;
        if (!ok || rename(tmp, path)) {
            rc = DICE_FAIL(err, "%s: cannot write: %s", path, strerror(errno));
            unlink(tmp);
        }
        free(text);
    }
    cJSON_Delete(now);
    return rc;
}

// Removes shard_*.h5.tmp.PID files of runs that are gone; a live PID means another run is writing here.
static int remove_stale_temporaries(const Prep *p, DiceError *err) {
    DIR *d = opendir(p->opt->out_dir);
    DICE_CHECK(err, d, "%s: cannot list: %s", p->opt->out_dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        int k, pid, end = 0;
        if (sscanf(e->d_name, "shard_%d.h5.tmp.%d%n", &k, &pid, &end) != 2 || e->d_name[end]) continue;
        if (pid != (int)getpid() && (kill(pid, 0) == 0 || errno == EPERM)) {
            rc = DICE_FAIL(err, "%s/%s: process %d, still running, is writing this shard: one dice prep per output "
                           "directory (remove the file if that process is not a dice prep)", p->opt->out_dir,
                           e->d_name, pid);
            break;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", p->opt->out_dir, e->d_name);
        if (unlink(path)) rc = DICE_FAIL(err, "%s: cannot remove: %s", path, strerror(errno));
        else say(p, "removed %s, left by an interrupted run\n", path);
    }
    closedir(d);
    return rc;
}

// ---------------------------------------------------------------- shards

// 1 if shard k is finished and valid (rows in *rows), 0 if it must be written; -1 if it belongs to another
// configuration.
static int shard_is_done(const Prep *p, int k, int64_t *rows, DiceError *err) {
    char path[4096];
    shard_file(p, k, path, sizeof path);
    if (access(path, F_OK)) return 0;
    Shard *s = NULL;
    DiceError why = {{0}};
    if (shard_open(&s, path, &why) || shard_verify(s, &why)) {
        shard_close(s);
        say(p, "%s is damaged (%s); writing it again\n", path, why.msg);
        return 0;
    }
    const ShardInfo *a = shard_info(s), *b = &p->info;
    int same = a->latent_h == b->latent_h && a->latent_w == b->latent_w && a->latent_c == b->latent_c &&
               a->seq_len == b->seq_len && a->image_size == b->image_size && !strcmp(a->model, b->model);
    *rows = a->n_rows;
    char model[SHARD_TEXT_MAX];
    snprintf(model, sizeof model, "%s", a->model);
    int64_t size = a->image_size;
    shard_close(s);
    DICE_CHECK(err, same, "%s: written for model \"%s\" at %lld px with other shapes; this run makes \"%s\" at %lld px: "
               "use another --out", path, model, (long long)size, b->model, (long long)b->image_size);
    return 1;
}

// Reads, transforms and tokenizes entry e into batch slot `slot`; 1 if it was skipped (reported), 0 if ready.
static int load_entry(Prep *p, int64_t e, int slot) {
    const PrepEntry *en = &p->captions.entries[e];
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", p->opt->images_dir, en->file_name);
    DiceError why = {{0}};
    Image img = {0}, sq = {0};
    int32_t *ids = p->ids + (size_t)slot * (size_t)p->model.tok.max_length;
    int bad = prep_load_image(path, &img, &why) || prep_transform(&img, p->opt->size, &sq, &why);
    if (!bad && strlen(en->caption) > SHARD_CAPTION_MAX) {
        bad = 1;
        snprintf(why.msg, sizeof why.msg, "its caption is %zu bytes long (at most %d)", strlen(en->caption),
                 SHARD_CAPTION_MAX);
    }
    if (!bad && clip_tokenizer_encode(&p->model.tok, en->caption, ids, NULL, NULL, &why)) bad = 1;
    if (!bad) prep_normalize(&sq, p->pixels + (size_t)slot * (size_t)p->opt->size * (size_t)p->opt->size * 3);
    image_free(&img);
    image_free(&sq);
    if (bad) say(p, "skipped image %lld (%s): %s\n", (long long)en->image_id, en->file_name, why.msg);
    else p->batch_entry[slot] = e;
    return bad;
}

// Encodes the n ready slots and appends them to the writer.
static int encode_batch(Prep *p, ShardWriter *w, int n, DiceError *err) {
    int64_t S = p->opt->size, L = p->model.tok.max_length;
    Tensor host_px;
    VaePosterior post;
    graph_no_grad_begin(&p->graph);  // graph_reset below ends it
    int rc = tensor_wrap(&host_px, p->pixels, DT_F32, DEV_CPU, 4, (int64_t[]){n, S, S, 3}, err);
    if (!rc) rc = sd_model_encode(&p->model, &p->graph, &host_px, &p->host, &post, err);
    int64_t per_row = rc ? 0 : post.mean.shape[1] * post.mean.shape[2] * post.mean.shape[3];
    for (int i = 0; i < n && !rc; i++) {
        const PrepEntry *en = &p->captions.entries[p->batch_entry[i]];
        ShardRowIn row = {(const float *)post.mean.data + i * per_row, (const float *)post.logvar.data + i * per_row,
                          p->ids + i * L, en->caption, en->image_id};
        rc = shard_writer_append(w, &row, err);
        if (rc) dice_error_context(err, "image %lld (%s)", (long long)en->image_id, en->file_name);
    }
    graph_reset(&p->graph);
    arena_reset(&p->step);
    arena_reset(&p->scratch);
    arena_reset(&p->host);
    return rc;
}

// Writes shard k from entries [e0, e1); *rows and *skipped get the counts.
static int write_shard(Prep *p, int k, int64_t e0, int64_t e1, int64_t *rows, int64_t *skipped, DiceError *err) {
    char path[4096];
    shard_file(p, k, path, sizeof path);
    ShardWriter *w;
    DICE_TRY(shard_writer_open(&w, path, &p->info, err));
    int64_t written = 0, skip = 0;
    int rc = 0, n = 0;
    for (int64_t e = e0; e < e1 && !rc; e++) {
        if (load_entry(p, e, n)) skip++;
        else n++;
        if (n == p->opt->batch || (e == e1 - 1 && n > 0)) {
            rc = encode_batch(p, w, n, err);
            written += n;
            n = 0;
        }
    }
    if (!rc && written == 0)
        rc = DICE_FAIL(err, "%s: none of its %lld images (entries %lld .. %lld) could be read; is --images %s the "
                       "folder of the caption file's images?", path, (long long)(e1 - e0), (long long)e0,
                       (long long)(e1 - 1), p->opt->images_dir);
    if (rc) {
        shard_writer_abort(w);
        return -1;
    }
    DICE_TRY(shard_writer_close(w, err));
    *rows = written;
    *skipped = skip;
    return 0;
}

// ---------------------------------------------------------------- the run

static int prep_open(Prep *p, DiceError *err) {
    const PrepOptions *o = p->opt;
    if (o->device == DEV_CUDA) DICE_TRY(ctx_init_cuda(&p->ctx, 0, err));
    else ctx_init_cpu(&p->ctx);
    DICE_TRY(sd_model_open(&p->model, o->model_dir, NULL, &p->ctx, SD_LOAD_TOKENIZER | SD_LOAD_VAE, err));
    DICE_TRY(arena_init(&p->step, "step", o->device, 64 << 20, 0, err));
    DICE_TRY(arena_init(&p->scratch, "scratch", o->device, 64 << 20, 0, err));
    DICE_TRY(arena_init(&p->host, "host", DEV_CPU, 16 << 20, 0, err));
    int f = sd_model_vae_scale(&p->model);
    DICE_CHECK(err, o->size % f == 0, "--size %d: must be a multiple of the model's latent scale %d (its VAE's "
               "downscale factor)", o->size, f);
    DICE_TRY(graph_init(&p->graph, &p->ctx, &p->step, err));
    graph_set_scratch(&p->graph, &p->scratch);
    size_t S = (size_t)o->size;
    p->pixels = malloc((size_t)o->batch * S * S * 3 * sizeof *p->pixels);
    p->ids = malloc((size_t)o->batch * (size_t)p->model.tok.max_length * sizeof *p->ids);
    p->batch_entry = malloc((size_t)o->batch * sizeof *p->batch_entry);
    DICE_CHECK(err, p->pixels && p->ids && p->batch_entry, "prep: out of memory for a batch of %d images of %d px",
               o->batch, o->size);
    ShardInfo *in = &p->info;
    memset(in, 0, sizeof *in);
    in->latent_h = in->latent_w = o->size / f;
    in->latent_c = sd_model_latent_channels(&p->model);
    in->seq_len = p->model.tok.max_length;
    in->image_size = o->size;
    in->scaling_factor = sd_model_scaling_factor(&p->model);
    model_name(o->model_dir, in->model, sizeof in->model);
    snprintf(in->created_by, sizeof in->created_by, "%s", PREP_CREATED_BY);
    return 0;
}

static void prep_close(Prep *p) {
    free(p->pixels);
    free(p->ids);
    free(p->batch_entry);
    if (p->graph.ctx) graph_free(&p->graph);
    sd_model_close(&p->model);
    arena_free(&p->host);
    arena_free(&p->scratch);
    arena_free(&p->step);
    if (p->ctx.device == DEV_CUDA) ctx_free(&p->ctx);
    prep_captions_free(&p->captions);
}

static void format_duration(double s, char *out, size_t cap) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(out, cap, "%lds", t);
}

static int run_shards(Prep *p, PrepSummary *sum, DiceError *err) {
    int64_t S = p->opt->shard_size, images_done = 0;
    for (int k = 0; k < sum->n_shards; k++) {
        int64_t e0 = k * S, e1 = e0 + S < p->n_entries ? e0 + S : p->n_entries, rows = 0, skipped = 0;
        int done = shard_is_done(p, k, &rows, err);
        DICE_TRY(done < 0 ? -1 : 0);
        if (done) {
            sum->shards_kept++;
            sum->rows_kept += rows;
            continue;
        }
        double t0 = now_seconds();
        DICE_TRY(write_shard(p, k, e0, e1, &rows, &skipped, err));
        double t1 = now_seconds();
        sum->shards_written++;
        sum->rows_written += rows;
        sum->skipped += skipped;
        images_done += e1 - e0;
        int64_t left = p->n_entries - e1;
        char eta[32], skip_note[48] = "";
        format_duration((t1 - p->started) / (double)images_done * (double)left, eta, sizeof eta);
        if (skipped) snprintf(skip_note, sizeof skip_note, " (%lld skipped)", (long long)skipped);
        say(p, "shard_%05d.h5: %lld images%s, %.2f images/s; %d of %d shards done, ETA %s\n", k, (long long)rows,
            skip_note, (double)(e1 - e0) / (t1 - t0), k + 1, sum->n_shards, eta);
    }
    return 0;
}

int prep_run(const PrepOptions *opt, PrepSummary *sum, DiceError *err) {
    memset(sum, 0, sizeof *sum);
    DICE_CHECK(err, opt->size >= 1 && opt->shard_size >= 1 && opt->batch >= 1 && opt->limit >= 0,
               "prep: --size, --shard-size and --batch must be positive and --limit non-negative");
    struct stat st;
    DICE_CHECK(err, !stat(opt->images_dir, &st) && S_ISDIR(st.st_mode), "--images %s: not a directory",
               opt->images_dir);
    Prep *p = calloc(1, sizeof *p);
    DICE_CHECK(err, p, "prep: out of memory");
    p->opt = opt;
    p->started = now_seconds();
    int rc = prep_captions_load(&p->captions, opt->captions_path, opt->seed, err);
    if (!rc) {
        p->n_entries = opt->limit && opt->limit < p->captions.n_entries ? opt->limit : p->captions.n_entries;
        sum->entries = p->n_entries;
        sum->uncaptioned = p->captions.n_uncaptioned;
        sum->n_shards = (int)((p->n_entries + opt->shard_size - 1) / opt->shard_size);
        if (!p->n_entries) rc = DICE_FAIL(err, "%s: no image has a caption", opt->captions_path);
    }
    if (!rc) rc = prep_open(p, err);
    if (!rc) rc = make_dir(opt->out_dir, err);
    if (!rc) rc = manifest_check_or_write(p, err);
    if (!rc) rc = remove_stale_temporaries(p, err);
    if (!rc) {
        say(p, "%s: %lld images, %lld with captions (%lld without, left out)%s; %d shards of %d in %s\n",
            opt->captions_path, (long long)p->captions.n_images, (long long)p->captions.n_entries,
            (long long)p->captions.n_uncaptioned, p->n_entries < p->captions.n_entries ? ", limited" : "",
            sum->n_shards, opt->shard_size, opt->out_dir);
        rc = run_shards(p, sum, err);
    }
    if (!rc)
        say(p, "done: %d shards (%d already finished, %d written), %lld rows written, %lld images skipped, "
            "%lld images without captions left out\n", sum->n_shards, sum->shards_kept, sum->shards_written,
            (long long)sum->rows_written, (long long)sum->skipped, (long long)sum->uncaptioned);
    prep_close(p);
    free(p);
    return rc;
}
