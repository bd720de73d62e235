/*
 * dml_plugin.h: the C interface between the `dml` tool (or any program built on the
 * swift-metric-learning library) and a plugin, a shared library that adds losses and miners
 * at start-up without rebuilding the tool.
 *
 * A plugin exports one function, `dml_plugin_init` (DML_PLUGIN_ENTRY_POINT). The host calls it
 * once per process, right after loading the library, with a registrar; the plugin hands the registrar one
 * descriptor per component and returns DML_PLUGIN_OK. Descriptors, and every string and array
 * they point to, must stay valid for as long as the library is loaded (static storage is the
 * usual way): the host never unloads a plugin.
 *
 * Losses work on a score matrix. The host computes the n x m matrix of scores between the
 * batch's n embeddings (rows) and the columns (the batch itself, the batch followed by a
 * cross-batch memory, or the loss's learned reference vectors) under the distance the loss
 * chose, and calls `compute`. The loss returns its value and writes d loss / d score for every
 * score; the host back-propagates through the distance. A miner reads the same score matrix and
 * emits pairs or triplets.
 *
 * Numbers are float (DML_SCALAR_F32, training) or double (DML_SCALAR_F64, the host's gradient
 * checks): every pointer to scores, gradients or learned values points to the scalar type the
 * call names. A component must handle both.
 *
 * Learned state is owned by the host. A loss declares its learned tensors (name, shape, initial
 * values) when it is created; the host stores them, steps them with its optimizer, saves them in
 * checkpoints, and passes their current values to every `compute`. The plugin's own state (the
 * pointer `create` returns) therefore holds only configuration and scratch memory: everything
 * that training changes is a declared tensor, so a checkpoint restores the loss exactly.
 *
 * Versioning: every descriptor starts with the DML_PLUGIN_ABI_VERSION its plugin was compiled
 * against. The host refuses a descriptor of another version before reading any other field. A
 * future version keeps the first field of every struct in place.
 */
#ifndef DML_PLUGIN_H
#define DML_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this interface. */
#define DML_PLUGIN_ABI_VERSION 1u

/* The name of the one function a plugin exports. */
#define DML_PLUGIN_ENTRY_POINT "dml_plugin_init"

/* Status codes. */
#define DML_PLUGIN_OK 0
#define DML_PLUGIN_ERROR 1

/* Scalar types of the numbers behind `const void *` and `void *` pointers. */
#define DML_SCALAR_F32 0
#define DML_SCALAR_F64 1

/* Distances that make the score matrix. Euclidean scores are distances (smaller is closer);
 * cosine and dot-product scores are similarities (larger is closer). */
#define DML_DISTANCE_EUCLIDEAN 0
#define DML_DISTANCE_SQUARED_EUCLIDEAN 1
#define DML_DISTANCE_COSINE 2
#define DML_DISTANCE_DOT 3

/* Hyperparameter types. */
#define DML_HYPERPARAMETER_REAL 1    /* a finite double */
#define DML_HYPERPARAMETER_INTEGER 2 /* an int64_t */
#define DML_HYPERPARAMETER_BOOLEAN 3 /* true or false */
#define DML_HYPERPARAMETER_CHOICE 4  /* one of the strings in `choices` */

/* Bits of dml_hyperparameter.bounds: which ends of [lower, upper] apply, and whether each is
 * excluded (lower < x rather than lower <= x). Real and integer hyperparameters only. */
#define DML_BOUND_LOWER 1
#define DML_BOUND_LOWER_OPEN 2
#define DML_BOUND_UPPER 4
#define DML_BOUND_UPPER_OPEN 8

/* Bits of dml_loss_descriptor.flags and dml_miner_descriptor.flags. */
#define DML_LOSS_USES_TUPLES 1     /* the loss reads the pairs or triplets a miner found */
#define DML_ACCEPTS_MEMORY 2       /* reads n x m scores against the batch and a cross-batch memory */

/* A hyperparameter a component declares. The host parses `name:key=value,...` text, checks
 * every value against these declarations (type, bounds, choices), and passes the values to
 * `create` in declaration order. */
typedef struct dml_hyperparameter {
  const char *name;          /* the key, for example "margin" */
  int32_t type;              /* DML_HYPERPARAMETER_* */
  const char *default_value; /* the default, as text: "0.2", "10", "true", "cosine" */
  const char *doc;           /* one line of help for `dml list` */
  const char *choices;       /* DML_HYPERPARAMETER_CHOICE: the choices separated by '|' */
  int32_t bounds;            /* DML_BOUND_* bits; 0: any finite value */
  double lower, upper;       /* the bounds the bits select */
} dml_hyperparameter;

/* One hyperparameter value, as `create` receives it: the field of its declared type is set. The
 * array and the `choice` strings are valid during the call only: copy what the instance keeps. */
typedef struct dml_value {
  int32_t type;       /* the declared DML_HYPERPARAMETER_* */
  double real;        /* DML_HYPERPARAMETER_REAL */
  int64_t integer;    /* DML_HYPERPARAMETER_INTEGER */
  int32_t boolean;    /* DML_HYPERPARAMETER_BOOLEAN: 0 or 1 */
  const char *choice; /* DML_HYPERPARAMETER_CHOICE: one of the declared choices */
} dml_value;

/* What a component is built for: facts about the data of the run. */
typedef struct dml_context {
  int64_t classes;             /* training classes; labels are 0 ..< classes */
  int64_t embedding_dimension; /* the embeddings' dimension */
  uint64_t seed;               /* the run's seed, for initial values */
} dml_context;

/* A learned tensor a loss declares when it is created. The host copies `initial` (rows x
 * columns values of the scalar type `create` was called with, row-major) and owns the tensor
 * from then on; its full name in checkpoints is "loss.<name>" (or "loss.<k>.<name>" in a sum). */
typedef struct dml_tensor {
  const char *name;     /* unique within the loss; letters, digits and '_' */
  int64_t rows, columns;
  const void *initial;  /* rows * columns initial values */
  int32_t trainable;    /* 1: the optimizer steps it with its gradient; 0: a constant that
                           checkpoints hold (compute only reads tensors) */
  int32_t decays;       /* 1: weight decay applies to it */
  int32_t group;        /* the optimizer parameter group (0: the network's; the built-in proxy
                           losses put their proxies in 1, for their own learning rate) */
  int32_t references;   /* 1: these rows are the score matrix's columns (proxies, class
                           weights): m = rows, columns = the embedding dimension, and the host
                           computes their gradient through the distance. At most one. */
} dml_tensor;

/* What `create` returns besides the state pointer. The arrays belong to the plugin and must
 * stay valid until `destroy`. */
typedef struct dml_instance {
  void *state;             /* passed back to every call; may be NULL */
  int32_t distance;        /* DML_DISTANCE_*: how the host makes the score matrix */
  int32_t tensor_count;    /* learned tensors (losses only; 0 for miners) */
  const dml_tensor *tensors;
} dml_instance;

/* Pairs or triplets of indices: anchors are rows of the score matrix, partners are columns.
 * Arrays hold 2 (pairs) or 3 (triplets) int32 values per tuple, one tuple after another. */
typedef struct dml_tuples {
  int32_t are_pairs;         /* 1: pairs, 0: triplets */
  int64_t positive_count;    /* anchor-positive pairs */
  const int32_t *positive;
  int64_t negative_count;    /* anchor-negative pairs */
  const int32_t *negative;
  int64_t triplet_count;     /* (anchor, positive, negative) */
  const int32_t *triplets;
} dml_tuples;

/* The input of a loss's `compute`. */
typedef struct dml_loss_input {
  int32_t scalar;            /* DML_SCALAR_* of every number below */
  int64_t rows, columns;     /* n and m */
  const void *scores;        /* n x m, row-major */
  const int64_t *labels;     /* one per column (the first n are the rows' own); with learned
                                references, one per row */
  const dml_tuples *tuples;  /* NULL: every valid pair or triplet */
  const void *const *tensors; /* the current values of the declared tensors, in order */
} dml_loss_input;

/* The output of a loss's `compute`. The host zeroes the gradients before the call. */
typedef struct dml_loss_output {
  double loss;               /* the reduced value */
  int64_t count;             /* terms before reduction (pairs, triplets, rows) */
  int64_t nonzero;           /* of which strictly positive */
  void *score_gradient;      /* n x m: write d loss / d scores here */
  void *const *tensor_gradients; /* per declared tensor, rows x columns: d loss / d tensor for the
                                    trainable tensors that are not references */
} dml_loss_output;

/* Where a miner writes what it found. Call `pair` and `triplet` only from the thread that called
 * `mine`, before it returns (a parallel miner gathers its tuples, then emits them). */
typedef struct dml_tuple_sink {
  void *host;
  /* Adds an anchor-positive pair (positive != 0) or an anchor-negative pair. */
  void (*pair)(void *host, int32_t anchor, int32_t partner, int32_t positive);
  /* Adds a triplet. A miner emits pairs or triplets, not both. */
  void (*triplet)(void *host, int32_t anchor, int32_t positive, int32_t negative);
} dml_tuple_sink;

/* The input of a miner's `mine`. */
typedef struct dml_miner_input {
  int32_t scalar;            /* DML_SCALAR_* of the scores */
  int64_t rows, columns;     /* n and m */
  const void *scores;        /* n x m, row-major */
  const int64_t *labels;     /* one per column; the first n are the rows' own */
} dml_miner_input;

/* `create`: builds an instance from the values of the declared hyperparameters (in declaration
 * order) for scalar type `scalar`. Returns DML_PLUGIN_OK, or DML_PLUGIN_ERROR with a message of
 * at most `error_size` bytes (NUL-terminated) in `error`. */
typedef int32_t (*dml_create_fn)(const dml_value *values, int32_t value_count, const dml_context *context,
                                 int32_t scalar, dml_instance *instance, char *error, size_t error_size);
/* `destroy`: releases what `create` allocated; the host does not call it for a NULL state. */
typedef void (*dml_destroy_fn)(void *state);
/* A loss's `compute`. */
typedef int32_t (*dml_compute_fn)(void *state, const dml_loss_input *input, dml_loss_output *output, char *error,
                                  size_t error_size);
/* A miner's `mine`. */
typedef int32_t (*dml_mine_fn)(void *state, const dml_miner_input *input, const dml_tuple_sink *sink, char *error,
                               size_t error_size);

/* A loss. */
typedef struct dml_loss_descriptor {
  uint32_t abi_version;      /* DML_PLUGIN_ABI_VERSION; first, always */
  const char *name;          /* the name on the command line: lowercase letters, digits, '-' */
  const char *doc;           /* one line for `dml list` */
  int32_t hyperparameter_count;
  const dml_hyperparameter *hyperparameters;
  int32_t flags;             /* DML_LOSS_USES_TUPLES | DML_ACCEPTS_MEMORY */
  dml_create_fn create;
  dml_destroy_fn destroy;
  dml_compute_fn compute;
} dml_loss_descriptor;

/* A miner. */
typedef struct dml_miner_descriptor {
  uint32_t abi_version;      /* DML_PLUGIN_ABI_VERSION; first, always */
  const char *name;
  const char *doc;
  int32_t hyperparameter_count;
  const dml_hyperparameter *hyperparameters;
  int32_t flags;             /* DML_ACCEPTS_MEMORY */
  dml_create_fn create;      /* the instance's tensor_count must be 0 */
  dml_destroy_fn destroy;
  dml_mine_fn mine;
} dml_miner_descriptor;

/* What the host hands to `dml_plugin_init`. */
typedef struct dml_registrar {
  uint32_t abi_version;      /* the host's DML_PLUGIN_ABI_VERSION; first, always */
  void *host;
  void (*register_loss)(void *host, const dml_loss_descriptor *loss);
  void (*register_miner)(void *host, const dml_miner_descriptor *miner);
} dml_registrar;

/* The entry point every plugin exports. */
typedef int32_t (*dml_plugin_init_fn)(const dml_registrar *registrar);
int32_t dml_plugin_init(const dml_registrar *registrar);

/* The host's DML_PLUGIN_ABI_VERSION (defined by the host library, not by plugins). */
uint32_t dml_plugin_host_abi_version(void);

#ifdef __cplusplus
}
#endif

#endif /* DML_PLUGIN_H */
