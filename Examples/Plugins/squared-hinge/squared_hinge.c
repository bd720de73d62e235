/*
 * A loss plugin in C: the squared-hinge pair loss with a learned boundary.
 *
 * Pairs at distance d (Euclidean between L2-normalised embeddings by default) pay
 *   positive pairs:  max(0, d - (beta - alpha))^2
 *   negative pairs:  max(0, (beta + alpha) - d)^2
 * averaged over every pair used: the margin loss of Wu et al. (2017) with squared hinges, so the
 * loss is smooth at the boundary. beta, the boundary between positives and negatives, is a
 * learned tensor (learn_beta=true): the host trains it with the network and saves it in every
 * checkpoint as "loss.beta".
 *
 * Build (one command, from the repository's root):
 *   cc -shared -fPIC -O2 -I Sources/DMLPluginABI/include Examples/Plugins/squared-hinge/squared_hinge.c -o squared_hinge.so
 * Use:
 *   dml --plugin ./squared_hinge.so train --loss squared-hinge:alpha=0.2 --miner none ...
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dml_plugin.h"

typedef struct {
  double alpha;
  int learn_beta;
  double beta; /* the boundary when it is not learned */
  float beta_f;
  double beta_d;
  dml_tensor tensor;
} state_t;

static const dml_hyperparameter hyperparameters[] = {
  {"alpha", DML_HYPERPARAMETER_REAL, "0.2", "half the gap between positive and negative pairs", NULL, DML_BOUND_LOWER, 0, 0},
  {"beta", DML_HYPERPARAMETER_REAL, "1.2", "initial boundary between positives and negatives", NULL, DML_BOUND_LOWER, 0, 0},
  {"learn_beta", DML_HYPERPARAMETER_BOOLEAN, "true", "train beta with the network (a learned tensor)", NULL, 0, 0, 0},
  {"distance", DML_HYPERPARAMETER_CHOICE, "euclidean", "distance between embeddings", "euclidean|squared-euclidean", 0, 0, 0},
};

static int32_t create(const dml_value *values, int32_t count, const dml_context *context, int32_t scalar,
                      dml_instance *instance, char *error, size_t error_size) {
  (void)context;
  if (count != 4) {
    snprintf(error, error_size, "expected 4 hyperparameter values, got %d", count);
    return DML_PLUGIN_ERROR;
  }
  state_t *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(error, error_size, "out of memory");
    return DML_PLUGIN_ERROR;
  }
  s->alpha = values[0].real;
  s->beta = values[1].real;
  s->learn_beta = values[2].boolean;
  s->beta_f = (float)s->beta;
  s->beta_d = s->beta;
  s->tensor = (dml_tensor){"beta", 1, 1, scalar == DML_SCALAR_F64 ? (const void *)&s->beta_d : (const void *)&s->beta_f,
                           1, 0, 0, 0};
  instance->state = s;
  instance->distance = values[3].choice[0] == 's' ? DML_DISTANCE_SQUARED_EUCLIDEAN : DML_DISTANCE_EUCLIDEAN;
  instance->tensor_count = s->learn_beta ? 1 : 0;
  instance->tensors = &s->tensor;
  return DML_PLUGIN_OK;
}

static void destroy(void *state) { free(state); }

/* Reads and adds to float or double arrays. */
static double get(int32_t scalar, const void *p, int64_t k) {
  return scalar == DML_SCALAR_F64 ? ((const double *)p)[k] : (double)((const float *)p)[k];
}
static void add(int32_t scalar, void *p, int64_t k, double v) {
  if (scalar == DML_SCALAR_F64) ((double *)p)[k] += v;
  else ((float *)p)[k] += (float)v;
}

typedef struct {
  double sum, dbeta;
  int64_t count, nonzero;
} totals_t;

/* One pair's term; its derivative goes to the score gradient (scaled later) and to beta. */
static void pair(const state_t *s, const dml_loss_input *in, double *g, double beta, int64_t a, int64_t b, int positive,
                 totals_t *t) {
  int64_t k = a * in->columns + b;
  double d = get(in->scalar, in->scores, k);
  double h = positive ? d - (beta - s->alpha) : (beta + s->alpha) - d;
  t->count++;
  if (h <= 0) return;
  t->sum += h * h;
  t->nonzero++;
  g[k] += positive ? 2 * h : -2 * h;
  t->dbeta += positive ? -2 * h : 2 * h;
}

static int32_t compute(void *state, const dml_loss_input *in, dml_loss_output *out, char *error, size_t error_size) {
  const state_t *s = state;
  int64_t n = in->rows, m = in->columns;
  double beta = s->learn_beta ? get(in->scalar, in->tensors[0], 0) : s->beta;
  double *g = calloc((size_t)(n * m > 0 ? n * m : 1), sizeof *g);
  if (!g) {
    snprintf(error, error_size, "out of memory for %lld x %lld scores", (long long)n, (long long)m);
    return DML_PLUGIN_ERROR;
  }
  totals_t t = {0, 0, 0, 0};
  const dml_tuples *tu = in->tuples;
  if (!tu) {
    for (int64_t a = 0; a < n; a++)
      for (int64_t b = 0; b < m; b++)
        if (b != a) pair(s, in, g, beta, a, b, in->labels[a] == in->labels[b], &t);
  } else if (tu->are_pairs) {
    for (int64_t k = 0; k < tu->positive_count; k++) pair(s, in, g, beta, tu->positive[2 * k], tu->positive[2 * k + 1], 1, &t);
    for (int64_t k = 0; k < tu->negative_count; k++) pair(s, in, g, beta, tu->negative[2 * k], tu->negative[2 * k + 1], 0, &t);
  } else {
    /* Each triplet (a, p, n) contributes its pair (a, p) and its pair (a, n). */
    for (int64_t k = 0; k < tu->triplet_count; k++) {
      const int32_t *q = tu->triplets + 3 * k;
      pair(s, in, g, beta, q[0], q[1], 1, &t);
      pair(s, in, g, beta, q[0], q[2], 0, &t);
    }
  }
  double scale = t.count > 0 ? 1.0 / (double)t.count : 0;
  for (int64_t k = 0; k < n * m; k++)
    if (g[k] != 0) add(in->scalar, out->score_gradient, k, g[k] * scale);
  free(g);
  if (s->learn_beta) add(in->scalar, out->tensor_gradients[0], 0, t.dbeta * scale);
  out->loss = t.sum * scale;
  out->count = t.count;
  out->nonzero = t.nonzero;
  return DML_PLUGIN_OK;
}

static const dml_loss_descriptor squared_hinge = {
  DML_PLUGIN_ABI_VERSION,
  "squared-hinge",
  "pairs pay max(0, d - (beta - alpha))^2 or max(0, beta + alpha - d)^2, beta learned (C example)",
  4,
  hyperparameters,
  DML_LOSS_USES_TUPLES | DML_ACCEPTS_MEMORY,
  create,
  destroy,
  compute,
};

int32_t dml_plugin_init(const dml_registrar *registrar) {
  if (registrar->abi_version != DML_PLUGIN_ABI_VERSION) return DML_PLUGIN_ERROR;
  registrar->register_loss(registrar->host, &squared_hinge);
  return DML_PLUGIN_OK;
}
