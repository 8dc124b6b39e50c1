/*
 * graph_test — `mailspool test` for a Microsoft 365 profile: one token
 * request and one sendMail, synchronous (curl_easy_perform), every step
 * printed for the administrator.
 *
 * Owns: the step lines, the token's lifetime and its roles claim (decoded
 * from the JWT payload: a warning when Mail.Send is missing), and the exit
 * code from outcome.c's classification (0 accepted, 69 refused, 75
 * temporary, 78 profile or configuration).
 * Never: prints the token, the secret or an upload URL; runs on the loop.
 */
#include "graph_impl.h"
#include "outcome.h"
#include "xmalloc.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Attachment bytes of a test message (producer side: data or path). */
static ssize_t test_att_read(void *ctx, const struct msg_attachment *a, int64_t off, void *buf,
                             size_t len, struct err *e)
{
    (void)ctx;
    if (a->data) {
        if (off >= (int64_t)a->data_len)
            return 0;
        size_t n = a->data_len - (size_t)off < len ? a->data_len - (size_t)off : len;
        memcpy(buf, a->data + off, n);
        return (ssize_t)n;
    }
    int fd = a->path ? open(a->path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0)
        return err_set(e, EX_NOINPUT, "attachment %s cannot be read", a->path ? a->path : "?");
    ssize_t n = pread(fd, buf, len, (off_t)off);
    close(fd);
    return n < 0 ? err_set(e, EX_IOERR, "attachment %s cannot be read", a->path) : n;
}

static int exit_code(enum outcome_kind k)
{
    switch (k) {
    case OUT_OK:
        return 0;
    case OUT_PERMFAIL:
        return EX_UNAVAILABLE;
    case OUT_PROFILE:
        return EX_CONFIG;
    default:
        return EX_TEMPFAIL;
    }
}

static void perform(struct graph_req *r, const struct graph_tls *tls, const char *token)
{
    struct err e = {0};
    if (graph_req_prepare(r, tls, token, &e) != 0) {
        r->curl_code = CURLE_FAILED_INIT;
        snprintf(r->errbuf, sizeof r->errbuf, "%.200s", e.msg);
        return;
    }
    CURLcode rc = curl_easy_perform(r->easy);
    graph_req_finish(r, rc);
}

static int classify(const struct profile *p, const struct graph_req *r, bool token, FILE *out)
{
    struct graph_job job = {0};
    graph_job_set_result(&job, r, token);
    struct graph_result gr = {
        .curl_code = job.curl_code,
        .http_status = job.http_status,
        .error_code = job.error_code,
        .aadsts = job.aadsts,
        .message = job.message,
        .request_id = job.request_id,
        .retry_after = job.retry_after,
        .token_request = token,
        .profile = p->name,
    };
    struct outcome o;
    outcome_classify_graph(&gr, &o);
    if (o.kind != OUT_OK) {
        if (job.error_code || job.message)
            fprintf(out, "  error: %s%s%s\n", job.error_code ? job.error_code : "",
                    job.error_code && job.message ? ": " : "", job.message ? job.message : "");
        if (token && (job.request_id || job.correlation_id))
            fprintf(out, "  trace_id=%s correlation_id=%s\n", job.request_id ? job.request_id : "-",
                    job.correlation_id ? job.correlation_id : "-");
        fprintf(out, "  %s: %s\n", outcome_kind_name(o.kind), o.reason);
    }
    graph_job_clear(&job);
    return exit_code(o.kind);
}

/* The roles claim of the access token (the token itself stays unprinted). */
static void print_roles(const char *token, FILE *out)
{
    char *roles = NULL;
    if (graph_json_jwt_roles(token, &roles) != 0) {
        /* Entra issues JWTs; another authority may hand out opaque tokens. */
        fprintf(out, "token: roles: not readable (the token is not a JWT)\n");
        return;
    }
    fprintf(out, "token: roles: %s\n", *roles ? roles : "none");
    bool send = false;
    for (char *save = NULL, *r = strtok_r(roles, " ", &save); r; r = strtok_r(NULL, " ", &save))
        send = send || strcmp(r, "Mail.Send") == 0;
    if (!send)
        fprintf(out, "warning: the token lacks the Mail.Send application permission: add "
                     "Mail.Send under API permissions (Application) and grant admin consent\n");
    free(roles);
}

static char *test_token(const struct profile *p, struct graph_tok *t, const struct graph_tls *tls,
                        FILE *out, int *rc)
{
    size_t len = 0;
    char *form = graph_token_form(t, &len); /* before len is read */
    struct graph_req *r =
        graph_req_new(GM_POST, graph_token_url(t), form, len, "application/x-www-form-urlencoded");
    r->secret_body = true;
    fprintf(out, "token: POST %s (client_id=%s, scope=%s/.default, client secret not shown)\n",
            r->url, t->client, t->graph_host);
    perform(r, tls, NULL);
    char *token = NULL;
    int64_t lifetime = 0;
    if (r->curl_code != CURLE_OK) {
        fprintf(out, "token: failed: %s\n",
                r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->curl_code));
    } else {
        fprintf(out, "token: HTTP %ld\n", r->status);
        if (r->status == 200 &&
            graph_json_parse_token(r->resp.data, r->resp.len, &token, &lifetime) == 0) {
            fprintf(out, "token: obtained, valid for %lld s (not shown)\n", (long long)lifetime);
            print_roles(token, out);
        }
        if (token && r->resp.data)
            explicit_bzero(r->resp.data, r->resp.len); /* held the token */
    }
    if (token == NULL)
        *rc = classify(p, r, true, out);
    graph_req_free(r);
    return token;
}

static int test_sendmail(const struct profile *p, const struct message *msg, const char *token,
                         const struct graph_tok *t, const struct graph_tls *tls, FILE *out)
{
    unsigned char *plan = xcalloc(msg->natts + 1, 1);
    char *body = NULL;
    size_t len = 0;
    struct err e = {0};
    if (graph_json_plan(p, msg, plan)) {
        fprintf(out, "sendMail: the test message exceeds Graph's 4 MB request limit\n");
        free(plan);
        return EX_DATAERR;
    }
    if (graph_json_sendmail(p, msg, plan, test_att_read, NULL, &body, &len, &e) != 0) {
        fprintf(out, "sendMail: %s\n", e.msg);
        free(plan);
        return EX_DATAERR;
    }
    free(plan);
    char *users = graph_users_url(t->graph_host, p->from_address);
    struct graph_req *r =
        graph_req_new(GM_POST, xasprintf("%s/sendMail", users), body, len, "application/json");
    free(users);
    r->auth = true;
    fprintf(out, "sendMail: POST %s (%zu bytes, saveToSentItems=%s)\n", r->url, len,
            p->m365_save_to_sent ? "true" : "false");
    perform(r, tls, token);
    if (r->curl_code != CURLE_OK)
        fprintf(out, "sendMail: failed: %s\n",
                r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->curl_code));
    else
        fprintf(out, "sendMail: HTTP %ld request-id=%s\n", r->status,
                r->request_id ? r->request_id : "-");
    int rc = classify(p, r, false, out);
    graph_req_free(r);
    return rc;
}

int graph_test(const struct profile *p, const struct message *msg, FILE *out)
{
    struct graph_tok t = {0};
    t.name = p->name;
    t.client = p->m365_client ? p->m365_client : "";
    t.tenant = p->m365_tenant ? p->m365_tenant : "";
    t.secret = p->m365_secret ? p->m365_secret : "";
    t.authority = xstrdup(p->m365_authority_host ? p->m365_authority_host
                                                 : "https://login.microsoftonline.com");
    t.graph_host = xstrdup(p->m365_graph_host ? p->m365_graph_host : "https://graph.microsoft.com");
    for (char *s = t.authority + strlen(t.authority); s > t.authority && s[-1] == '/'; s--)
        s[-1] = '\0';
    for (char *s = t.graph_host + strlen(t.graph_host); s > t.graph_host && s[-1] == '/'; s--)
        s[-1] = '\0';
    struct graph_tls tls = {p->ca_file, p->tls_verify,
                            strncasecmp(t.authority, "http://", 7) == 0 ||
                                strncasecmp(t.graph_host, "http://", 7) == 0};
    if (!p->tls_verify)
        fprintf(out, "warning: TLSVerify = no: server certificates are not checked\n");
    int rc = EX_TEMPFAIL;
    char *token = test_token(p, &t, &tls, out, &rc);
    if (token) {
        rc = test_sendmail(p, msg, token, &t, &tls, out);
        explicit_bzero(token, strlen(token));
        free(token);
    }
    free(t.authority);
    free(t.graph_host);
    return rc;
}
