/*
 * testsend — `mailspoold --test PROFILE --to ADDRESS` (run by `mailspool test`):
 * one test message through one profile now, every step printed.
 */
#ifndef MAILSPOOL_TESTSEND_H
#define MAILSPOOL_TESTSEND_H

#include <stdio.h>

#include "config.h"

/* Returns 0 accepted, 69 refused, 75 temporary failure, 78 configuration. */
int testsend_run(const struct config *cfg, const char *profile, const char *to, FILE *out);

#endif
