// train/dist.h — data parallelism for `mpirun -np N dice train ...`: one rank per GPU (or CPU process),
// gradients summed across ranks, a cross-rank identity check of the trained weights.
//
// Launch. dist_init joins MPI when the process was started by an MPI launcher (Open MPI's
// OMPI_COMM_WORLD_SIZE, PMIx's PMIX_RANK or PMI's PMI_SIZE in the environment), otherwise it is rank 0 of 1
// without touching MPI, so a plain `dice train` never pays for MPI's start-up. A build without MPI
// (DICE_MPI undefined: OpenMPI's ompi-c not found by pkg-config) runs 1 rank and refuses a launch with
// more, naming the reason.
//
// Reduction. The DICE loss of a micro-batch is already divided by the GLOBAL batch, so the gradient of the
// global batch is the SUM of every rank's accumulated gradients: dist_allreduce_sum adds, it never averages.
// Tensors on the CPU go through MPI_Allreduce; tensors on CUDA go through NCCL (DICE_NCCL builds: the
// communicator is created by dist_init_nccl with ncclCommInitRank, the unique id broadcast over MPI) or,
// in CUDA builds without NCCL, through host memory and MPI_Allreduce.
// Every MPI and NCCL call is checked: a failure comes back as one line naming the call, its error string
// and file:line (MPI_COMM_WORLD is switched to MPI_ERRORS_RETURN).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Dist {
    int rank, n_ranks;
    int local_rank;       // rank among the ranks of this node (picks the GPU)
    bool mpi;             // MPI was initialised by dist_init (dist_finalize finalises it)
    void *nccl;           // ncclComm_t after dist_init_nccl, else NULL
    void *nccl_stream;    // the cudaStream_t NCCL runs on (the training context's)
} Dist;

int dist_init(Dist *d, DiceError *err);
// With several ranks on CUDA in a DICE_NCCL build, creates the NCCL communicator on ctx's stream; a no-op
// otherwise.
int dist_init_nccl(Dist *d, DiceCtx *ctx, DiceError *err);
// In place: each tensor (contiguous f32 on ctx's device) becomes the sum of its values over all ranks.
int dist_allreduce_sum(Dist *d, DiceCtx *ctx, Tensor *const *tensors, int n, DiceError *err);
// In place, host doubles.
int dist_allreduce_sum_f64(Dist *d, double *x, int n, DiceError *err);
// *same = every rank passed the same value.
int dist_all_equal_u64(Dist *d, uint64_t value, bool *same, DiceError *err);
// Stops every rank after a failure on this one (MPI_Abort with several ranks; nothing with one).
void dist_abort(Dist *d, int code);
// Leaves MPI (and destroys the NCCL communicator); d becomes rank 0 of 1.
int dist_finalize(Dist *d, DiceError *err);

#ifdef __cplusplus
}
#endif
