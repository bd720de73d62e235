// Open MPI (Debian's libopenmpi-dev) as Swift sees it: mpi.h's communicator and datatype
// handles are macros over global objects, which Swift cannot import, so these inline
// functions name the few calls that DMLDistributed makes.
#include <mpi.h>

static inline int dml_mpi_initialized(void) { int flag = 0; MPI_Initialized(&flag); return flag; }
static inline int dml_mpi_finalized(void) { int flag = 0; MPI_Finalized(&flag); return flag; }

// MPI_Init_thread with MPI_THREAD_SERIALIZED (any thread may call, one at a time); errors on
// MPI_COMM_WORLD are returned, not fatal.
static inline int dml_mpi_init(int *rank, int *size, int *provided) {
  int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
  if (rc != MPI_SUCCESS) return rc;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  return MPI_Comm_size(MPI_COMM_WORLD, size);
}

static inline int dml_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int dml_mpi_finalize(void) { return MPI_Finalize(); }
static inline int dml_mpi_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static inline int dml_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

static inline void dml_mpi_error_string(int code, char *text, int capacity) {
  char buffer[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, buffer, &length) != MPI_SUCCESS) length = 0;
  if (length >= capacity) length = capacity - 1;
  for (int i = 0; i < length; i++) text[i] = buffer[i];
  text[length < 0 ? 0 : length] = 0;
}

static inline int dml_mpi_allgatherv(const void *local, int count, void *all, const int *counts, const int *displacements, int isDouble) {
  MPI_Datatype t = isDouble ? MPI_DOUBLE : MPI_FLOAT;
  return MPI_Allgatherv(local, count, t, all, counts, displacements, t, MPI_COMM_WORLD);
}

static inline int dml_mpi_allgatherv_bytes(const void *local, int count, void *all, const int *counts, const int *displacements) {
  return MPI_Allgatherv(local, count, MPI_BYTE, all, counts, displacements, MPI_BYTE, MPI_COMM_WORLD);
}

static inline int dml_mpi_allgather_int(int value, int *all) {
  return MPI_Allgather(&value, 1, MPI_INT, all, 1, MPI_INT, MPI_COMM_WORLD);
}

static inline int dml_mpi_allreduce_sum(void *buffer, int count, int isDouble) {
  return MPI_Allreduce(MPI_IN_PLACE, buffer, count, isDouble ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
