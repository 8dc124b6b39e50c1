/*
 * testsend — builds the test message of `mailspool test` and hands it to the
 * profile's transport in its synchronous, step-printing mode.
 *
 * Never: prints a secret (the transports mask AUTH and tokens), or touches
 * the spool: a test message is not queued.
 */
#include "testsend.h"
#include "idna.h"
#include "graph.h"
#include "message.h"
#include "smtp.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int testsend_run(const struct config *cfg, const char *name, const char *to, FILE *out)
{
    const struct profile *p = config_profile_find(cfg, name);
    if (p == NULL) {
        fprintf(out, "error: no [profile %s] in %s\n", name, cfg->path);
        return EX_CONFIG;
    }
    struct message *m = message_new();
    struct err e = {0};
    /* As the daemon sends it: an internationalized domain in ASCII form. */
    if (message_add_rcpt(m, RCPT_TO, to, &e) != 0 || idna_message(m, NULL, NULL, &e) != 0) {
        fprintf(out, "error: --to %s: %s\n", to, e.msg);
        message_free(m);
        return EX_USAGE;
    }
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    m->area = xstrdup("test");
    m->created = (int64_t)time(NULL);
    m->id = 0;
    m->subject = xasprintf("mailspool test message (profile %s)", p->name);
    m->text = xasprintf("This is a test message sent by `mailspool test` on %s through "
                        "profile %s.\n",
                        host, p->name);
    fprintf(out, "profile %s: transport %s, from %s\n", p->name,
            p->transport == TRANSPORT_GRAPH ? "Microsoft 365 (Graph)" : "SMTP", p->from_address);
    int rc;
    if (p->transport == TRANSPORT_GRAPH) {
        rc = graph_test(p, m, out);
    } else {
        struct smtp_timeouts t = {cfg->connect_timeout, cfg->response_timeout, cfg->low_speed_time};
        rc = smtp_test(p, m, &t, out);
    }
    fprintf(out, "%s\n", rc == 0 ? "result: accepted" : "result: not accepted");
    message_free(m);
    return rc;
}
