// train/dist.c — MPI / NCCL data parallelism (see dist.h).
#include "dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/cuda_api.h"
#include "nn/tensor_copy.h"

#ifdef DICE_MPI
#include <mpi.h>

// Run an MPI call; on failure record "<call> failed: <MPI error string>" with file:line and return -1.
#define MPI_TRY(err, call)                                                                        \
    do {                                                                                          \
        int mpi_try_rc_ = (call);                                                                 \
        if (mpi_try_rc_ != MPI_SUCCESS) {                                                         \
            char mpi_try_text_[MPI_MAX_ERROR_STRING] = "unknown MPI error";                       \
            int mpi_try_len_ = 0;                                                                 \
            MPI_Error_string(mpi_try_rc_, mpi_try_text_, &mpi_try_len_);                          \
            return dice_fail_at((err), __FILE__, __LINE__, "%s failed: %s", #call, mpi_try_text_); \
        }                                                                                         \
    } while (0)
#endif

#ifdef DICE_NCCL
#include <nccl.h>

// Run an NCCL call; on failure record "<call> failed: <NCCL error string>" with file:line and return -1.
#define NCCL_TRY(err, call)                                                                     \
    do {                                                                                        \
        ncclResult_t nccl_try_rc_ = (call);                                                     \
        if (nccl_try_rc_ != ncclSuccess)                                                        \
            return dice_fail_at((err), __FILE__, __LINE__, "%s failed: %s", #call,              \
                                ncclGetErrorString(nccl_try_rc_));                              \
    } while (0)
#endif

// The number of processes an MPI launcher started (0 when none did): Open MPI, PMIx, PMI (MPICH, Slurm).
static int launcher_size(void) {
    const char *size = getenv("OMPI_COMM_WORLD_SIZE");
    if (!size) size = getenv("PMI_SIZE");
    if (size) return atoi(size) > 0 ? atoi(size) : 1;
    return getenv("PMIX_RANK") ? 1 : 0;
}

int dist_init(Dist *d, DiceError *err) {
    memset(d, 0, sizeof *d);
    d->n_ranks = 1;
    int launched = launcher_size();
#ifdef DICE_MPI
    if (!launched) return 0;
    MPI_TRY(err, MPI_Init(NULL, NULL));
    d->mpi = true;
    MPI_TRY(err, MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MPI_TRY(err, MPI_Comm_rank(MPI_COMM_WORLD, &d->rank));
    MPI_TRY(err, MPI_Comm_size(MPI_COMM_WORLD, &d->n_ranks));
    MPI_Comm node;
    MPI_TRY(err, MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node));
    int rc = MPI_Comm_rank(node, &d->local_rank);
    int rc_free = MPI_Comm_free(&node);
    MPI_TRY(err, rc);
    MPI_TRY(err, rc_free);
    return 0;
#else
    DICE_CHECK(err, launched <= 1,
               "this dice was built without MPI (OpenMPI's ompi-c was not found by pkg-config), so it cannot run "
               "%d ranks; install libopenmpi-dev and rebuild, or run one process",
               launched);
    return 0;
#endif
}

int dist_init_nccl(Dist *d, DiceCtx *ctx, DiceError *err) {
    if (d->n_ranks == 1 || ctx->device != DEV_CUDA) return 0;
#if defined(DICE_NCCL) && defined(DICE_MPI)
    ncclUniqueId id;
    if (d->rank == 0) NCCL_TRY(err, ncclGetUniqueId(&id));
    MPI_TRY(err, MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD));
    ncclComm_t comm;
    NCCL_TRY(err, ncclCommInitRank(&comm, d->n_ranks, id, d->rank));
    d->nccl = comm;
    d->nccl_stream = ctx->stream;
#endif
    return 0;
}

#ifdef DICE_MPI
// A CUDA tensor summed over ranks through host memory (CUDA builds without NCCL).
static int allreduce_via_host(DiceCtx *ctx, Tensor *t, DiceError *err) {
    size_t n = (size_t)tensor_numel(t);
    float *host = malloc(n * sizeof *host);
    DICE_CHECK(err, host, "allreduce: out of host memory for %zu floats", n);
    Tensor h;
    int rc = tensor_wrap(&h, host, DT_F32, DEV_CPU, t->ndim, t->shape, err);
    if (!rc) rc = tensor_copy(ctx, &h, t, err);
    if (!rc) {
        int mpi_rc = MPI_Allreduce(MPI_IN_PLACE, host, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (mpi_rc != MPI_SUCCESS) {
            char text[MPI_MAX_ERROR_STRING] = "unknown MPI error";
            int len = 0;
            MPI_Error_string(mpi_rc, text, &len);
            rc = DICE_FAIL(err, "MPI_Allreduce of %zu floats failed: %s", n, text);
        }
    }
    if (!rc) rc = tensor_copy(ctx, t, &h, err);
    free(host);
    return rc;
}
#endif

int dist_allreduce_sum(Dist *d, DiceCtx *ctx, Tensor *const *tensors, int n, DiceError *err) {
    for (int i = 0; i < n; i++) {
        const Tensor *t = tensors[i];
        DICE_CHECK(err, t->dtype == DT_F32 && tensor_is_contiguous(t) && t->device == ctx->device &&
                            tensor_numel(t) <= INT_MAX,
                   "allreduce: tensor %d must be contiguous f32 on %s with at most %d elements", i,
                   device_name(ctx->device), INT_MAX);
    }
    if (d->n_ranks == 1) return 0;
#ifdef DICE_MPI
#ifdef DICE_NCCL
    if (d->nccl) {
        NCCL_TRY(err, ncclGroupStart());
        for (int i = 0; i < n; i++)
            NCCL_TRY(err, ncclAllReduce(tensors[i]->data, tensors[i]->data, (size_t)tensor_numel(tensors[i]),
                                        ncclFloat32, ncclSum, (ncclComm_t)d->nccl, (cudaStream_t)d->nccl_stream));
        NCCL_TRY(err, ncclGroupEnd());
        return 0;
    }
#endif
    for (int i = 0; i < n; i++) {
        if (ctx->device == DEV_CUDA) {
            DICE_TRY(allreduce_via_host(ctx, tensors[i], err));
            continue;
        }
        MPI_TRY(err, MPI_Allreduce(MPI_IN_PLACE, tensors[i]->data, (int)tensor_numel(tensors[i]), MPI_FLOAT, MPI_SUM,
                                   MPI_COMM_WORLD));
    }
    return 0;
#else
    return DICE_FAIL(err, "allreduce over %d ranks in a build without MPI", d->n_ranks);
#endif
}

int dist_allreduce_sum_f64(Dist *d, double *x, int n, DiceError *err) {
    if (d->n_ranks == 1) return 0;
#ifdef DICE_MPI
    MPI_TRY(err, MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    return 0;
#else
    (void)x, (void)n;
    return DICE_FAIL(err, "allreduce over %d ranks in a build without MPI", d->n_ranks);
#endif
}

int dist_all_equal_u64(Dist *d, uint64_t value, bool *same, DiceError *err) {
    *same = true;
    if (d->n_ranks == 1) return 0;
#ifdef DICE_MPI
    uint64_t lo = value, hi = value;
    MPI_TRY(err, MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD));
    MPI_TRY(err, MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD));
    *same = lo == hi;
    return 0;
#else
    return DICE_FAIL(err, "comparison over %d ranks in a build without MPI", d->n_ranks);
#endif
}

void dist_abort(Dist *d, int code) {
#ifdef DICE_MPI
    if (d->mpi && d->n_ranks > 1) MPI_Abort(MPI_COMM_WORLD, code);
#else
    (void)d, (void)code;
#endif
}

int dist_finalize(Dist *d, DiceError *err) {
    Dist was = *d;
    memset(d, 0, sizeof *d);
    d->n_ranks = 1;
#ifdef DICE_NCCL
    if (was.nccl) NCCL_TRY(err, ncclCommDestroy((ncclComm_t)was.nccl));
#endif
#ifdef DICE_MPI
    if (was.mpi) MPI_TRY(err, MPI_Finalize());
#else
    (void)was, (void)err;
#endif
    return 0;
}
