// faiss's C++ API behind the C functions of faiss_shim.h: every call catches every exception.
#include "faiss_shim.h"

#include <faiss/AutoTune.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IVFlib.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexIVF.h>
#include <faiss/MetricType.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <typeinfo>

struct dml_faiss_index {
  faiss::Index *index;  // an IndexIDMap2 (or an index the factory string made with IDMap)
  // Searches set nprobe or efSearch for their own call only: under this lock, then restored, so
  // a search's parameters never stick to the index (nor reach a file written later).
  std::mutex search_lock;
  // faiss's HNSW header cannot be included (it needs omp.h), so efSearch cannot be read back: the
  // value restored after a search is faiss's default, which the index keeps otherwise.
  int ef_search_default = 16;
  explicit dml_faiss_index(faiss::Index *i) : index(i) {}
};

namespace {

int fail(char *error, size_t size, const std::string &message) {
  if (error && size > 0) {
    std::strncpy(error, message.c_str(), size - 1);
    error[size - 1] = 0;
  }
  return 1;
}

template <typename F> int guarded(char *error, size_t size, F body) {
  try {
    body();
    return 0;
  } catch (const faiss::FaissException &e) {
    // faiss's messages carry the failing check and its source line; the first line is the reason.
    std::string what = e.what();
    return fail(error, size, what);
  } catch (const std::exception &e) {
    return fail(error, size, e.what());
  } catch (...) {
    return fail(error, size, "an unknown C++ exception");
  }
}

faiss::Index *inner(const faiss::Index *index) {
  if (auto map = dynamic_cast<const faiss::IndexIDMap2 *>(index)) return map->index;
  if (auto map = dynamic_cast<const faiss::IndexIDMap *>(index)) return map->index;
  return const_cast<faiss::Index *>(index);
}

}  // namespace

extern "C" {

int dml_faiss_create(const char *factory, int64_t dimension, int metric, dml_faiss_index **out, char *error,
                     size_t error_size) {
  return guarded(error, error_size, [&] {
    faiss::MetricType m = metric == DML_FAISS_METRIC_INNER_PRODUCT ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2;
    faiss::Index *index = faiss::index_factory((int)dimension, factory, m);
    if (std::strncmp(factory, "IDMap", 5) != 0) {
      auto map = new faiss::IndexIDMap2(index);
      map->own_fields = true;
      index = map;
    }
    *out = new dml_faiss_index(index);
  });
}

void dml_faiss_free(dml_faiss_index *index) {
  if (!index) return;
  delete index->index;
  delete index;
}

int64_t dml_faiss_dimension(const dml_faiss_index *index) { return index->index->d; }
int64_t dml_faiss_count(const dml_faiss_index *index) { return index->index->ntotal; }
int dml_faiss_metric(const dml_faiss_index *index) {
  return index->index->metric_type == faiss::METRIC_INNER_PRODUCT ? DML_FAISS_METRIC_INNER_PRODUCT : DML_FAISS_METRIC_L2;
}
int dml_faiss_is_trained(const dml_faiss_index *index) { return index->index->is_trained ? 1 : 0; }
int dml_faiss_is_ivf(const dml_faiss_index *index) {
  try {
    return faiss::ivflib::try_extract_index_ivf(inner(index->index)) != nullptr;
  } catch (...) {
    return 0;
  }
}
// faiss's HNSW header needs OpenMP's omp.h, which the Swift toolchain's clang lacks: HNSW indexes
// are recognised by their type's name, and efSearch is set through faiss's ParameterSpace.
int dml_faiss_is_hnsw(const dml_faiss_index *index) {
  const faiss::Index *base = inner(index->index);
  return std::strstr(typeid(*base).name(), "IndexHNSW") != nullptr;
}

int64_t dml_faiss_serialized_size(const dml_faiss_index *index) {
  try {
    faiss::VectorIOWriter writer;
    faiss::write_index(index->index, &writer);
    return (int64_t)writer.data.size();
  } catch (...) {
    return -1;
  }
}

int dml_faiss_skip_polysemous_training(dml_faiss_index *index) {
  faiss::Index *base = inner(index->index);
  if (auto ivfpq = dynamic_cast<faiss::IndexIVFPQ *>(base)) {
    ivfpq->do_polysemous_training = false;
    return 1;
  }
  if (auto pq = dynamic_cast<faiss::IndexPQ *>(base)) {
    pq->do_polysemous_training = false;
    return 1;
  }
  return 0;
}

int dml_faiss_train(dml_faiss_index *index, int64_t n, const float *vectors, char *error, size_t error_size) {
  return guarded(error, error_size, [&] { index->index->train(n, vectors); });
}

int dml_faiss_add(dml_faiss_index *index, int64_t n, const float *vectors, const int64_t *ids, char *error,
                  size_t error_size) {
  return guarded(error, error_size, [&] {
    if (!index->index->is_trained) throw std::runtime_error("the index is not trained: train it before adding vectors");
    index->index->add_with_ids(n, vectors, reinterpret_cast<const faiss::Index::idx_t *>(ids));
  });
}

int dml_faiss_search(const dml_faiss_index *index, int64_t n, const float *queries, int64_t k, int64_t nprobe,
                     int64_t ef_search, float *distances, int64_t *ids, char *error, size_t error_size) {
  return guarded(error, error_size, [&] {
    if (!index->index->is_trained) throw std::runtime_error("the index is not trained: train it before searching");
    auto *mutable_index = const_cast<dml_faiss_index *>(index);
    std::lock_guard<std::mutex> lock(mutable_index->search_lock);
    faiss::Index *base = inner(index->index);
    faiss::IndexIVF *ivf = nprobe > 0 ? faiss::ivflib::try_extract_index_ivf(base) : nullptr;
    bool hnsw = ef_search > 0 && dml_faiss_is_hnsw(index);
    size_t saved_nprobe = ivf ? ivf->nprobe : 0;
    // Restores the index's own settings however the search ends.
    struct Restore {
      faiss::IndexIVF *ivf;
      size_t nprobe;
      faiss::Index *hnsw;
      int ef;
      ~Restore() {
        if (ivf) ivf->nprobe = nprobe;
        if (hnsw) {
          try {
            faiss::ParameterSpace().set_index_parameter(hnsw, "efSearch", (double)ef);
          } catch (...) {
          }
        }
      }
    } restore{ivf, saved_nprobe, hnsw ? base : nullptr, mutable_index->ef_search_default};
    if (ivf) ivf->nprobe = (size_t)nprobe;
    if (hnsw) faiss::ParameterSpace().set_index_parameter(base, "efSearch", (double)ef_search);
    index->index->search(n, queries, k, distances, reinterpret_cast<faiss::Index::idx_t *>(ids));
  });
}

int dml_faiss_remove(dml_faiss_index *index, int64_t n, const int64_t *ids, int64_t *removed, char *error,
                     size_t error_size) {
  return guarded(error, error_size, [&] {
    faiss::IDSelectorBatch selector((size_t)n, reinterpret_cast<const faiss::Index::idx_t *>(ids));
    *removed = (int64_t)index->index->remove_ids(selector);
  });
}

int dml_faiss_ids(const dml_faiss_index *index, int64_t *ids, char *error, size_t error_size) {
  return guarded(error, error_size, [&] {
    if (auto map = dynamic_cast<const faiss::IndexIDMap2 *>(index->index)) {
      std::memcpy(ids, map->id_map.data(), map->id_map.size() * sizeof(int64_t));
    } else if (auto map = dynamic_cast<const faiss::IndexIDMap *>(index->index)) {
      std::memcpy(ids, map->id_map.data(), map->id_map.size() * sizeof(int64_t));
    } else {
      throw std::runtime_error("the index has no id map");
    }
  });
}

int dml_faiss_write(const dml_faiss_index *index, const char *path, char *error, size_t error_size) {
  return guarded(error, error_size, [&] { faiss::write_index(index->index, path); });
}

int dml_faiss_read(const char *path, dml_faiss_index **out, char *error, size_t error_size) {
  return guarded(error, error_size, [&] {
    faiss::Index *index = faiss::read_index(path);
    if (!dynamic_cast<faiss::IndexIDMap *>(index) && !dynamic_cast<faiss::IndexIDMap2 *>(index)) {
      delete index;
      throw std::runtime_error("the file holds a faiss index without an id map, not one this tool wrote");
    }
    *out = new dml_faiss_index(index);
  });
}

}  // extern "C"
