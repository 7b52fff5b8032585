/* SPDX-License-Identifier: MIT */
/* Shared between replay-model.c and replay-infer.c. */
#ifndef STRATA_TESTS_REPLAY_INT_H
#define STRATA_TESTS_REPLAY_INT_H

#include "tests/replay/replay.h"

/* Deepest region/alias nesting a walk follows before it gives up. */
#define REPLAY_MAX_NEST 512
/* Region visits the model may spend on one fixture (alias fan-out is exponential). */
#define REPLAY_WORK_LIMIT 2000000ull /* the largest fixture needs ~20000 */

/* Reads terminates/read-only facts off every FlatView section of m->d. */
void infer_from_flatviews(Model *m);

/* Root object of the address space named name, or NULL. */
RObj *model_as_root(Model *m, const char *name);

#endif /* STRATA_TESTS_REPLAY_INT_H */
