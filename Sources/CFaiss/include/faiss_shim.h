// A thin C interface over faiss's C++ API (Debian's libfaiss-dev ships the C API's headers but not
// its implementation). Every function catches faiss's C++ exceptions and returns a status: 0 for
// success, 1 with a NUL-terminated message of at most `error_size` bytes in `error`.
#ifndef DML_FAISS_SHIM_H
#define DML_FAISS_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// An index: faiss's index behind an id map (IndexIDMap2), so that every kind takes ids.
typedef struct dml_faiss_index dml_faiss_index;

#define DML_FAISS_METRIC_L2 0
#define DML_FAISS_METRIC_INNER_PRODUCT 1

/// An index of `dimension` from a faiss index-factory string ("Flat", "IVF4096,Flat", "HNSW32",
/// "IVF1024,PQ16x8", ...), wrapped in an id map unless the string starts with "IDMap".
int dml_faiss_create(const char *factory, int64_t dimension, int metric, dml_faiss_index **index, char *error,
                     size_t error_size);
void dml_faiss_free(dml_faiss_index *index);

int64_t dml_faiss_dimension(const dml_faiss_index *index);
int64_t dml_faiss_count(const dml_faiss_index *index);
int dml_faiss_metric(const dml_faiss_index *index);
int dml_faiss_is_trained(const dml_faiss_index *index);
/// Whether the index (or the index inside its id map) is an IVF index (nprobe applies) or an HNSW
/// index (efSearch applies).
int dml_faiss_is_ivf(const dml_faiss_index *index);
int dml_faiss_is_hnsw(const dml_faiss_index *index);
/// Bytes of the serialised index (faiss's own measure of its size), or -1.
int64_t dml_faiss_serialized_size(const dml_faiss_index *index);

/// Turns off the polysemous training of a PQ or IVF-PQ index (a simulated annealing that reorders
/// codes for Hamming-distance filtering, which plain searches do not use, and that dominates the
/// training time). Returns 1 if the index had it.
int dml_faiss_skip_polysemous_training(dml_faiss_index *index);
int dml_faiss_train(dml_faiss_index *index, int64_t n, const float *vectors, char *error, size_t error_size);
int dml_faiss_add(dml_faiss_index *index, int64_t n, const float *vectors, const int64_t *ids, char *error,
                  size_t error_size);
/// k neighbours of each of `n` queries: `distances` and `ids` hold n * k values (id -1 where an
/// index returns fewer than k). `nprobe` and `ef_search` apply to IVF and HNSW indexes when > 0,
/// for this call only: the index's own settings are restored afterwards (searches are serialised
/// per index).
int dml_faiss_search(const dml_faiss_index *index, int64_t n, const float *queries, int64_t k, int64_t nprobe,
                     int64_t ef_search, float *distances, int64_t *ids, char *error, size_t error_size);
int dml_faiss_remove(dml_faiss_index *index, int64_t n, const int64_t *ids, int64_t *removed, char *error,
                     size_t error_size);
/// Copies the index's ids, in storage order, into `ids` (room for dml_faiss_count values).
int dml_faiss_ids(const dml_faiss_index *index, int64_t *ids, char *error, size_t error_size);
int dml_faiss_write(const dml_faiss_index *index, const char *path, char *error, size_t error_size);
int dml_faiss_read(const char *path, dml_faiss_index **index, char *error, size_t error_size);

#ifdef __cplusplus
}
#endif

#endif
