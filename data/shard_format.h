// data/shard_format.h — what the shard writer and reader share (internal to data/): dataset and
// attribute names, chunk sizes, the UTF-8 check. The format itself is
// documented in shards.h.
#pragma once

#define SHARD_LATENT_MEAN "latent_mean"
#define SHARD_LATENT_LOGVAR "latent_logvar"
#define SHARD_TOKEN_IDS "token_ids"
#define SHARD_CAPTIONS "captions"
#define SHARD_IMAGE_IDS "image_ids"

#define SHARD_ATTR_VERSION "format_version"
#define SHARD_ATTR_LAYOUT "latent_layout"
#define SHARD_ATTR_MODEL "model"
#define SHARD_ATTR_IMAGE_SIZE "image_size"
#define SHARD_ATTR_SCALING "scaling_factor"
#define SHARD_ATTR_CREATED_BY "created_by"
#define SHARD_LAYOUT "NHWC"

#define SHARD_SMALL_CHUNK 64    // rows per chunk of token_ids, captions and image_ids
#define SHARD_GZIP_LEVEL 4

// Reports whether s is valid UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
int shard_utf8_valid(const char *s);
