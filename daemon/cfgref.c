/*
 * cfgref — a reference-counted configuration, so that a reload can swap the
 * daemon's configuration while deliveries in flight finish with their old one.
 *
 * Never: shared between threads (SMTP workers see only the profile pointer of
 * their job, which the delivery's reference keeps alive).
 */
#include "daemon.h"
#include "xmalloc.h"

#include <stdlib.h>

struct cfgref *cfgref_new(struct config *cfg)
{
    struct cfgref *r = xcalloc(1, sizeof *r);
    r->cfg = cfg;
    r->refs = 1;
    return r;
}

struct cfgref *cfgref_get(struct cfgref *r)
{
    r->refs++;
    return r;
}

void cfgref_put(struct cfgref *r)
{
    if (r && --r->refs == 0) {
        config_free(r->cfg);
        free(r);
    }
}
