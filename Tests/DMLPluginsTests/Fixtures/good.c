/*
 * Test plugin: a loss with learned references and a learned tensor of its own, and a miner.
 *
 * proxy-softmax: cross-entropy over cosine scores against learned class weights (the references,
 * whose gradient the host computes through the distance) plus a learned per-class bias (whose
 * gradient the plugin writes): logits_ij = s_ij / T + b_j.
 *
 * closest-negatives: every positive pair of each anchor, and its closest negative pair.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dml_plugin.h"

typedef struct {
  double temperature;
  int64_t classes, dimension;
  void *weights, *bias;
  double *row;
  dml_tensor tensors[2];
} proxy_t;

static double get(int32_t scalar, const void *p, int64_t k) {
  return scalar == DML_SCALAR_F64 ? ((const double *)p)[k] : (double)((const float *)p)[k];
}
static void set(int32_t scalar, void *p, int64_t k, double v) {
  if (scalar == DML_SCALAR_F64) ((double *)p)[k] = v;
  else ((float *)p)[k] = (float)v;
}

static const dml_hyperparameter proxy_hyperparameters[] = {
  {"temperature", DML_HYPERPARAMETER_REAL, "0.5", "softmax temperature", NULL, DML_BOUND_LOWER | DML_BOUND_LOWER_OPEN, 0, 0},
  {"classes", DML_HYPERPARAMETER_INTEGER, "0", "classes (0: the data's)", NULL, DML_BOUND_LOWER, 0, 0},
};

static int32_t proxy_create(const dml_value *values, int32_t count, const dml_context *context, int32_t scalar,
                            dml_instance *instance, char *error, size_t error_size) {
  (void)count;
  proxy_t *p = calloc(1, sizeof *p);
  p->temperature = values[0].real;
  p->classes = values[1].integer > 0 ? values[1].integer : context->classes;
  p->dimension = context->embedding_dimension;
  if (p->classes < 1) {
    snprintf(error, error_size, "no classes to make weights for");
    free(p);
    return DML_PLUGIN_ERROR;
  }
  size_t size = scalar == DML_SCALAR_F64 ? sizeof(double) : sizeof(float);
  p->weights = calloc((size_t)(p->classes * p->dimension), size);
  p->bias = calloc((size_t)p->classes, size);
  p->row = calloc((size_t)p->classes, sizeof(double));
  uint64_t state = context->seed * 2654435761u + 12345;
  for (int64_t k = 0; k < p->classes * p->dimension; k++) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    set(scalar, p->weights, k, (double)(state >> 11) / 9007199254740992.0 - 0.5);
  }
  for (int64_t k = 0; k < p->classes; k++) set(scalar, p->bias, k, 0.01 * (double)k);
  p->tensors[0] = (dml_tensor){"class_weights", p->classes, p->dimension, p->weights, 1, 0, 1, 1};
  p->tensors[1] = (dml_tensor){"bias", 1, p->classes, p->bias, 1, 0, 0, 0};
  instance->state = p;
  instance->distance = DML_DISTANCE_COSINE;
  instance->tensor_count = 2;
  instance->tensors = p->tensors;
  return DML_PLUGIN_OK;
}

static void proxy_destroy(void *state) {
  proxy_t *p = state;
  free(p->weights);
  free(p->bias);
  free(p->row);
  free(p);
}

static int32_t proxy_compute(void *state, const dml_loss_input *in, dml_loss_output *out, char *error, size_t error_size) {
  proxy_t *p = state;
  int64_t n = in->rows, m = in->columns;
  if (m != p->classes) {
    snprintf(error, error_size, "%lld score columns for %lld classes", (long long)m, (long long)p->classes);
    return DML_PLUGIN_ERROR;
  }
  double total = 0, t = p->temperature;
  for (int64_t i = 0; i < n; i++) {
    int64_t y = in->labels[i];
    if (y < 0 || y >= m) {
      snprintf(error, error_size, "label %lld outside the %lld classes", (long long)y, (long long)m);
      return DML_PLUGIN_ERROR;
    }
    double largest = -INFINITY, sum = 0;
    for (int64_t j = 0; j < m; j++) {
      p->row[j] = get(in->scalar, in->scores, i * m + j) / t + get(in->scalar, in->tensors[1], j);
      if (p->row[j] > largest) largest = p->row[j];
    }
    for (int64_t j = 0; j < m; j++) sum += exp(p->row[j] - largest);
    total += largest + log(sum) - p->row[y];
    for (int64_t j = 0; j < m; j++) {
      double g = (exp(p->row[j] - largest) / sum - (j == y)) / (double)n;
      set(in->scalar, out->score_gradient, i * m + j, g / t);
      set(in->scalar, out->tensor_gradients[1], j, get(in->scalar, out->tensor_gradients[1], j) + g);
    }
  }
  out->loss = n > 0 ? total / (double)n : 0;
  out->count = n;
  out->nonzero = n;
  return DML_PLUGIN_OK;
}

static const dml_loss_descriptor proxy_softmax = {
  DML_PLUGIN_ABI_VERSION, "proxy-softmax", "softmax over cosine scores against learned class weights, plus a learned bias",
  2, proxy_hyperparameters, 0, proxy_create, proxy_destroy, proxy_compute,
};

static int32_t miner_create(const dml_value *values, int32_t count, const dml_context *context, int32_t scalar,
                            dml_instance *instance, char *error, size_t error_size) {
  (void)values; (void)count; (void)context; (void)scalar; (void)error; (void)error_size;
  instance->state = NULL;
  instance->distance = DML_DISTANCE_EUCLIDEAN;
  instance->tensor_count = 0;
  return DML_PLUGIN_OK;
}

static void miner_destroy(void *state) { (void)state; }

static int32_t miner_mine(void *state, const dml_miner_input *in, const dml_tuple_sink *sink, char *error, size_t error_size) {
  (void)state; (void)error; (void)error_size;
  int64_t n = in->rows, m = in->columns;
  for (int64_t a = 0; a < n; a++) {
    int64_t closest = -1;
    double best = INFINITY;
    for (int64_t j = 0; j < m; j++) {
      if (j == a) continue;
      double d = get(in->scalar, in->scores, a * m + j);
      if (in->labels[j] == in->labels[a]) sink->pair(sink->host, (int32_t)a, (int32_t)j, 1);
      else if (d < best) { best = d; closest = j; }
    }
    if (closest >= 0) sink->pair(sink->host, (int32_t)a, (int32_t)closest, 0);
  }
  return DML_PLUGIN_OK;
}

static const dml_miner_descriptor closest_negatives = {
  DML_PLUGIN_ABI_VERSION, "closest-negatives", "every positive pair and each anchor's closest negative",
  0, NULL, DML_ACCEPTS_MEMORY, miner_create, miner_destroy, miner_mine,
};

int32_t dml_plugin_init(const dml_registrar *registrar) {
  registrar->register_loss(registrar->host, &proxy_softmax);
  registrar->register_miner(registrar->host, &closest_negatives);
  return DML_PLUGIN_OK;
}
