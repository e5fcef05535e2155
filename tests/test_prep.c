// tests/test_prep.c — `dice prep`'s parts (data/prep.h): the image transform against torchvision + PIL
// (tests/golden/prep, scripts/golden_prep.py), JPEG decoding against PIL's, the COCO caption parser (the
// caption rule and every structural error) and the command's argument errors. The whole command on a tiny
// COCO-like folder is in tests/test_prep_run.c.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/prep.h"
#include "nn/philox.h"
#include "nn/safetensors.h"
#include "test.h"

// Tensor `name` of a golden file as bytes; checks dtype and element count.
static const uint8_t *golden_u8(const StFile *f, const char *name, int64_t numel) {
    const StTensorInfo *t = st_find(f, name);
    return t && t->dtype == DT_U8 && st_numel(t) == numel ? t->data : NULL;
}

static int max_abs_diff(const uint8_t *a, const uint8_t *b, size_t n) {
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > m) m = d;
    }
    return m;
}

// The authors' transform (centre crop + torchvision Resize on PIL + ToTensor * 255 -> uint8) on random
// images: downsampling by integer and fractional ratios, upsampling, identity, both crop directions.
// PIL's 8-bit fixed-point arithmetic is reproduced exactly, so the tolerance is 0; the [-1, 1] pixels equal
// torch's u8 / 127.5 - 1 bit for bit.
DICE_TEST(prep_transform_matches_torchvision_pil) {
    StFile f;
    CHECK_OK(st_open(&f, test_path(tc, "tests/golden/prep/resize.safetensors"), &tc->err));
    const char *cases = st_meta(&f, "cases");
    CHECK(cases);
    int n_cases = 0;
    for (const char *c = cases; c && *c; n_cases++) {
        int h, w, res;
        CHECK(sscanf(c, "%d,%d,%d", &h, &w, &res) == 3);
        char name[32];
        snprintf(name, sizeof name, "in%d", n_cases);
        const uint8_t *in = golden_u8(&f, name, (int64_t)h * w * 3);
        snprintf(name, sizeof name, "out%d", n_cases);
        const uint8_t *want = golden_u8(&f, name, (int64_t)res * res * 3);
        snprintf(name, sizeof name, "norm%d", n_cases);
        const StTensorInfo *norm = st_find(&f, name);
        CHECK_MSG(in && want && norm && norm->dtype == DT_F32, "case %d: golden tensors missing", n_cases);
        Image src = {w, h, malloc((size_t)h * w * 3)}, out;
        memcpy(src.rgb, in, (size_t)h * w * 3);
        CHECK_OK(prep_transform(&src, res, &out, &tc->err));
        CHECK(out.width == res && out.height == res);
        int d = max_abs_diff(out.rgb, want, (size_t)res * res * 3);
        CHECK_MSG(d == 0, "case %d (%dx%d -> %d): max |dice - PIL| = %d", n_cases, h, w, res, d);
        float *px = malloc((size_t)res * res * 3 * sizeof *px), *want_px = malloc((size_t)res * res * 3 * sizeof *px);
        prep_normalize(&out, px);
        memcpy(want_px, norm->data, (size_t)res * res * 3 * sizeof *px);
        CHECK_MSG(!memcmp(px, want_px, (size_t)res * res * 3 * sizeof *px), "case %d: normalised pixels differ",
                  n_cases);
        free(px);
        free(want_px);
        image_free(&src);
        image_free(&out);
        c = strchr(c, ';');
        if (c) c++;
    }
    CHECK(n_cases == 7);
    st_close(&f);
}

// libjpeg's decode (data/image.h) of JPEGs written by PIL against PIL's own decode, and the whole transform
// from the file at 16 x 16; colour (4:2:0) and greyscale.
DICE_TEST(prep_jpeg_decode_and_transform_match_pil) {
    StFile f;
    CHECK_OK(st_open(&f, test_path(tc, "tests/golden/prep/jpeg.safetensors"), &tc->err));
    const char *names[2] = {"photo", "grey"};
    for (int i = 0; i < 2; i++) {
        char path[256], key[32];
        snprintf(path, sizeof path, "tests/golden/prep/%s.jpg", names[i]);
        Image img, out;
        CHECK_OK(prep_load_image(test_path(tc, path), &img, &tc->err));
        const uint8_t *want = golden_u8(&f, names[i], (int64_t)img.width * img.height * 3);
        snprintf(key, sizeof key, "%s_out", names[i]);
        const uint8_t *want_out = golden_u8(&f, key, 16 * 16 * 3);
        CHECK_MSG(want && want_out, "%s: golden tensors missing or of another size (%dx%d)", names[i], img.width,
                  img.height);
        int d = max_abs_diff(img.rgb, want, (size_t)img.width * img.height * 3);
        CHECK_MSG(d == 0, "%s: max |libjpeg - PIL| = %d", names[i], d);
        CHECK_OK(prep_transform(&img, 16, &out, &tc->err));
        d = max_abs_diff(out.rgb, want_out, 16 * 16 * 3);
        CHECK_MSG(d == 0, "%s: transform max diff %d", names[i], d);
        image_free(&img);
        image_free(&out);
    }
    Image img;
    CHECK_FAILS_WITH(prep_load_image("x/photo.gif", &img, &tc->err), "unsupported image type");
    st_close(&f);
}

static const char COCO_JSON[] =
    "{\"info\": {\"year\": 2017}, \"licenses\": [],"
    " \"images\": [{\"id\": 30, \"file_name\": \"c.jpg\", \"width\": 3, \"height\": 4},"
    "             {\"id\": 10, \"file_name\": \"a.jpg\"}, {\"id\": 20, \"file_name\": \"sub/b.png\"}],"
    " \"annotations\": [{\"image_id\": 10, \"id\": 7, \"caption\": \"a2\"},"
    "                  {\"image_id\": 30, \"id\": 1, \"caption\": \"c1\"},"
    "                  {\"image_id\": 10, \"id\": 3, \"caption\": \"a1\"},"
    "                  {\"image_id\": 10, \"id\": 9, \"caption\": \"a3 caf\\u00e9\"}]}";

// Entries in ascending id, images without captions left out, the documented caption rule, and its
// independence from other images.
DICE_TEST(prep_captions_choose_one_caption_per_image) {
    PrepCaptions pc;
    CHECK_OK(prep_captions_parse(&pc, COCO_JSON, strlen(COCO_JSON), "t.json", 5, &tc->err));
    CHECK(pc.n_images == 3 && pc.n_annotations == 4 && pc.n_entries == 2 && pc.n_uncaptioned == 1);
    CHECK(pc.entries[0].image_id == 10 && !strcmp(pc.entries[0].file_name, "a.jpg"));
    CHECK(pc.entries[1].image_id == 30 && !strcmp(pc.entries[1].caption, "c1"));
    const char *by_id[3] = {"a1", "a2", "a3 caf\xc3\xa9"};  // ascending annotation id
    int k = prep_caption_choice(5, 10, 3);
    CHECK(pc.entries[0].n_captions == 3 && pc.entries[0].caption_index == k && !strcmp(pc.entries[0].caption, by_id[k]));
    float u;
    philox_fill_uniform_f32(&u, 1, 5, 10);
    CHECK(k == (int)(u * 3.0));
    prep_captions_free(&pc);
    // Every index is drawn, about uniformly, and a seed changes the choice.
    int counts[5] = {0}, changed = 0;
    for (int64_t id = 0; id < 5000; id++) {
        counts[prep_caption_choice(1, id, 5)]++;
        changed += prep_caption_choice(1, id, 5) != prep_caption_choice(2, id, 5);
    }
    for (int i = 0; i < 5; i++) CHECK_MSG(counts[i] > 850 && counts[i] < 1150, "index %d drawn %d times", i, counts[i]);
    CHECK(changed > 3000);
}

DICE_TEST(prep_captions_structural_errors_name_the_file) {
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"images\": [", "not valid JSON"},
        {"[1, 2]", "top level is not a JSON object"},
        {"{\"annotations\": []}", "no \"images\" array"},
        {"{\"images\": [], \"annotations\": {}}", "no \"annotations\" array"},
        {"{\"images\": [7], \"annotations\": []}", "images[0] is not an object"},
        {"{\"images\": [{\"file_name\": \"a.jpg\"}], \"annotations\": []}", "images[0] has no integer \"id\""},
        {"{\"images\": [{\"id\": 1.5, \"file_name\": \"a.jpg\"}], \"annotations\": []}", "no integer \"id\""},
        {"{\"images\": [{\"id\": 1}], \"annotations\": []}", "images[0] (id 1) has no string \"file_name\""},
        {"{\"images\": [{\"id\": 1, \"file_name\": \"../etc/passwd\"}], \"annotations\": []}", "without \"..\""},
        {"{\"images\": [{\"id\": 1, \"file_name\": \"/abs.jpg\"}], \"annotations\": []}", "relative path"},
        {"{\"images\": [{\"id\": 1, \"file_name\": \"a\"}, {\"id\": 1, \"file_name\": \"b\"}], \"annotations\": []}",
         "same id 1"},
        {"{\"images\": [{\"id\": 1, \"file_name\": \"a\"}], \"annotations\": [{\"id\": 4, \"caption\": \"x\"}]}",
         "annotations[0] has no integer \"image_id\""},
        {"{\"images\": [{\"id\": 1, \"file_name\": \"a\"}], \"annotations\": [{\"image_id\": 1, \"caption\": \"x\"}]}",
         "annotations[0] has no integer \"id\""},
        {"{\"images\": [{\"id\": 1, \"file_name\": \"a\"}], \"annotations\": [{\"image_id\": 1, \"id\": 2, "
         "\"caption\": 3}]}", "annotations[0] (id 2) has no string \"caption\""},
        {"{\"images\": [{\"id\": 1, \"file_name\": \"a\"}], \"annotations\": [{\"image_id\": 8, \"id\": 2, "
         "\"caption\": \"x\"}]}", "image_id 8 is not in \"images\""},
        {"{\"images\": [{\"id\": 1, \"file_name\": \"a\"}], \"annotations\": [{\"image_id\": 1, \"id\": 2, "
         "\"caption\": \"x\"}, {\"image_id\": 1, \"id\": 2, \"caption\": \"y\"}]}", "have the same id 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        PrepCaptions pc;
        dice_error_clear(&tc->err);
        int rc = prep_captions_parse(&pc, cases[i].json, strlen(cases[i].json), "bad.json", 0, &tc->err);
        CHECK_MSG(rc != 0, "case %zu parsed", i);
        CHECK_MSG(strstr(tc->err.msg, "bad.json: ") && strstr(tc->err.msg, cases[i].want),
                  "case %zu: message '%s' lacks '%s'", i, tc->err.msg, cases[i].want);
        CHECK(pc.entries == NULL && pc.n_entries == 0);
    }
    PrepCaptions pc;
    CHECK_FAILS_WITH(prep_captions_load(&pc, "/nonexistent/captions.json", 0, &tc->err),
                     "/nonexistent/captions.json: cannot open");
}

DICE_TEST(prep_cli_argument_errors) {
    char out[8192], err[8192];
    const char *bin = test_dice_bin(tc);
    const char *no_model[] = {bin, "prep", "--images", "i", "--captions", "c", "--out", "o", NULL};
    CHECK(test_run(tc, no_model, out, sizeof out, err, sizeof err) == 2);
    CHECK(strstr(err, "--model is required"));
    const char *bad_size[] = {bin, "prep", "--size", "big", NULL};
    CHECK(test_run(tc, bad_size, out, sizeof out, err, sizeof err) == 2);
    CHECK(strstr(err, "dice prep: --size wants an integer in [8, 16384], got 'big'"));
    const char *bad_device[] = {bin, "prep", "--device", "tpu", NULL};
    CHECK(test_run(tc, bad_device, out, sizeof out, err, sizeof err) == 2);
    const char *help[] = {bin, "help", "prep", NULL};
    CHECK(test_run(tc, help, out, sizeof out, err, sizeof err) == 0);
    CHECK(strstr(out, "usage: dice prep"));
    // A malformed caption file is an error naming it (exit status 1), before anything is written.
    char captions[512], outdir[512];
    snprintf(captions, sizeof captions, "%s/captions.json", test_tmpdir(tc));
    snprintf(outdir, sizeof outdir, "%s/out", test_tmpdir(tc));
    FILE *f = fopen(captions, "w");
    CHECK(f);
    fputs("{\"images\": [{\"id\": 3}], \"annotations\": []}", f);
    fclose(f);
    const char *bad_json[] = {bin, "prep", "--model", "m", "--images", test_tmpdir(tc), "--captions", captions,
                              "--out", outdir, NULL};
    CHECK(test_run(tc, bad_json, out, sizeof out, err, sizeof err) == 1);
    CHECK_MSG(strstr(err, "captions.json: images[0] (id 3) has no string \"file_name\""), "stderr: %s", err);
    const char *no_images[] = {bin, "prep", "--model", "m", "--images", "/nonexistent", "--captions", captions,
                               "--out", outdir, NULL};
    CHECK(test_run(tc, no_images, out, sizeof out, err, sizeof err) == 1);
    CHECK(strstr(err, "--images /nonexistent: not a directory"));
}
