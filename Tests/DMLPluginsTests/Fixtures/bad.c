/*
 * Test plugins that the host must refuse at load, or whose failures at run time it must report,
 * one per macro: cc -DNO_ENTRY_POINT ... bad.c.
 */
#include <stdio.h>
#include <string.h>

#include "dml_plugin.h"

static int32_t create(const dml_value *values, int32_t count, const dml_context *context, int32_t scalar,
                      dml_instance *instance, char *error, size_t error_size) {
  (void)values; (void)count; (void)context; (void)scalar; (void)error; (void)error_size;
  instance->state = NULL;
  instance->distance = DML_DISTANCE_EUCLIDEAN;
  instance->tensor_count = 0;
  return DML_PLUGIN_OK;
}
static void destroy(void *state) { (void)state; }
#if !defined(NULL_COMPUTE)
static int32_t compute(void *state, const dml_loss_input *in, dml_loss_output *out, char *error, size_t error_size) {
  (void)state; (void)in;
#ifdef FAILS_AT_RUN_TIME
  (void)out;
  snprintf(error, error_size, "a deliberate failure in compute");
  return DML_PLUGIN_ERROR;
#else
  (void)error; (void)error_size;
  out->loss = 0;
  return DML_PLUGIN_OK;
#endif
}
#endif
static int32_t mine(void *state, const dml_miner_input *in, const dml_tuple_sink *sink, char *error, size_t error_size) {
  (void)state; (void)error; (void)error_size;
  /* An invalid tuple: an anchor paired with itself as its own positive. */
  if (in->rows > 0) sink->pair(sink->host, 0, 0, 1);
  return DML_PLUGIN_OK;
}

#if defined(UNKNOWN_HYPERPARAMETER_TYPE)
static const dml_hyperparameter hyperparameters[] = {
  {"margin", 9, "0.1", "a margin of an unknown type", NULL, 0, 0, 0},
};
#elif defined(BAD_DEFAULT)
static const dml_hyperparameter hyperparameters[] = {
  {"margin", DML_HYPERPARAMETER_REAL, "wide", "a margin whose default is not a number", NULL, 0, 0, 0},
};
#else
static const dml_hyperparameter hyperparameters[] = {
  {"margin", DML_HYPERPARAMETER_REAL, "0.1", "a margin", NULL, 0, 0, 0},
};
#endif

#if defined(WRONG_ABI_VERSION)
#define VERSION 99u
#else
#define VERSION DML_PLUGIN_ABI_VERSION
#endif

#if defined(BUILTIN_NAME)
#define NAME "contrastive"
#else
#define NAME "bad-loss"
#endif

#if defined(NULL_COMPUTE)
#define COMPUTE NULL
#else
#define COMPUTE compute
#endif

static const dml_loss_descriptor loss = {VERSION, NAME, "a test loss", 1, hyperparameters, DML_LOSS_USES_TUPLES,
                                         create, destroy, COMPUTE};
static const dml_miner_descriptor miner = {VERSION, "bad-miner", "emits an invalid pair", 0, NULL, 0,
                                           create, destroy, mine};

#ifdef NO_ENTRY_POINT
int32_t dml_plugin_start(const dml_registrar *registrar) {
#else
int32_t dml_plugin_init(const dml_registrar *registrar) {
#endif
#ifdef INIT_FAILS
  (void)registrar;
  (void)loss;
  (void)miner;
  return DML_PLUGIN_ERROR;
#else
  registrar->register_loss(registrar->host, &loss);
#ifdef DUPLICATE_NAME
  registrar->register_loss(registrar->host, &loss);
#endif
  registrar->register_miner(registrar->host, &miner);
  return DML_PLUGIN_OK;
#endif
}
