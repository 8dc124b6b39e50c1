/*
 * graph_xfer — the glue between one CURLM (multi_socket API) and the
 * libevent loop, and the setup of every Graph / Entra ID request.
 *
 * Owns: struct graph_req (easy handle, header list, body, response), the
 * sockets curl asks us to watch, and curl's one timer. Follows the control
 * flow of curl's hiperfifo.c / multi-event.c: a 0 timeout is an ordinary
 * timer that fires on the next loop turn; on CURL_POLL_REMOVE we drop our
 * event and never close the fd (curl owns it).
 * Never: calls libcurl from inside one of its callbacks (the socket, timer,
 * header and write callbacks only touch our own structures; completions are
 * collected first and dispatched after curl returned), or logs a request
 * (headers carry the bearer token, upload URLs carry their own).
 */
#include "graph_impl.h"
#include "xmalloc.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct graph_sock {
    curl_socket_t fd;
    struct event *ev;
    struct graph_sock *next;
};

struct graph_xfer {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct graph_sock *socks;
};

struct graph_req *graph_req_new(enum graph_method m, char *url, char *body, size_t body_len,
                                const char *content_type)
{
    struct graph_req *r = xcalloc(1, sizeof *r);
    r->method = m;
    r->url = url;
    r->body = body;
    r->body_len = body_len;
    r->content_type = content_type;
    buf_init(&r->resp);
    return r;
}

static void wipe_free(char *s, size_t len)
{
    if (s == NULL)
        return;
    explicit_bzero(s, len);
    free(s);
}

static void req_drop_easy(struct graph_req *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    r->easy = NULL;
    /* The header list may hold the bearer token. */
    for (struct curl_slist *h = r->hdrs; h; h = h->next)
        explicit_bzero(h->data, strlen(h->data));
    curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
}

void graph_req_free(struct graph_req *r)
{
    if (r == NULL)
        return;
    req_drop_easy(r);
    if (r->secret_url)
        wipe_free(r->url, strlen(r->url));
    else
        free(r->url);
    if (r->secret_body)
        wipe_free(r->body, r->body_len);
    else
        free(r->body);
    free(r->extra_header);
    buf_free(&r->resp);
    free(r->request_id);
    free(r);
}

void graph_req_reset(struct graph_req *r)
{
    req_drop_easy(r);
    buf_reset(&r->resp);
    r->resp_truncated = false;
    r->errbuf[0] = '\0';
    free(r->request_id);
    r->request_id = NULL;
    r->curl_code = 0;
    r->status = 0;
    r->retry_after = 0;
    r->running = false;
}

static size_t req_write_cb(char *data, size_t size, size_t n, void *arg)
{
    struct graph_req *r = arg;
    size_t len = size * n;
    if (r->resp.len + len > GRAPH_RESP_MAX)
        r->resp_truncated = true;
    else
        buf_append(&r->resp, data, len);
    return len;
}

/* Keeps Graph's request-id for the log; every other header is ignored. */
static size_t req_header_cb(char *data, size_t size, size_t n, void *arg)
{
    struct graph_req *r = arg;
    size_t len = size * n;
    static const char name[] = "request-id:";
    if (len > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        const char *v = data + sizeof name - 1;
        const char *end = data + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        if (end > v && end - v < 200) {
            free(r->request_id);
            r->request_id = xstrndup(v, (size_t)(end - v));
        }
    }
    return len;
}

static int req_headers(struct graph_req *r, const char *token, struct err *e)
{
    struct curl_slist *h = NULL;
    const char *fixed[4] = {"Expect:", "Accept: application/json", NULL, NULL};
    if (r->immutable_id)
        fixed[2] = "Prefer: IdType=\"ImmutableId\"";
    for (int i = 0; i < 4; i++)
        if (fixed[i])
            h = curl_slist_append(h, fixed[i]);
    if (r->content_type) {
        char *ct = xasprintf("Content-Type: %s", r->content_type);
        h = curl_slist_append(h, ct);
        free(ct);
    } else if (r->method == GM_POST || r->method == GM_PUT) {
        h = curl_slist_append(h, "Content-Type:"); /* no form type on an empty POST */
    }
    if (r->extra_header)
        h = curl_slist_append(h, r->extra_header);
    if (r->auth) {
        if (token == NULL) {
            curl_slist_free_all(h);
            return err_set(e, EX_SOFTWARE, "Graph request without an access token");
        }
        char *a = xasprintf("Authorization: Bearer %s", token);
        h = curl_slist_append(h, a);
        wipe_free(a, strlen(a));
    }
    if (h == NULL)
        return err_set(e, EX_OSERR, "out of memory building request headers");
    r->hdrs = h;
    return 0;
}

static void req_method(struct graph_req *r)
{
    CURL *c = r->easy;
    if (r->method == GM_POST || r->method == GM_PUT) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        if (r->method == GM_PUT)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
    } else if (r->method == GM_DELETE) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
}

int graph_req_prepare(struct graph_req *r, const struct graph_tls *tls, const char *token,
                      struct err *e)
{
    graph_req_reset(r);
    r->easy = curl_easy_init();
    if (r->easy == NULL)
        return err_set(e, EX_OSERR, "curl_easy_init failed");
    if (req_headers(r, token, e) != 0) {
        req_drop_easy(r);
        return -1;
    }
    CURL *c = r->easy;
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_PRIVATE, r);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    /* https only, unless the configuration names a loopback http:// endpoint */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, tls && tls->allow_http ? "https,http" : "https");
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, GRAPH_CONNECT_TIMEOUT);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, GRAPH_LOW_SPEED_TIME);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "mailspool/" MAILSPOOL_VERSION);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, req_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, req_header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->hdrs);
    if (tls && tls->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, tls->ca_file);
    if (tls && !tls->verify) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    req_method(r);
    return 0;
}

void graph_req_finish(struct graph_req *r, CURLcode rc)
{
    r->curl_code = (int)rc;
    if (r->easy) {
        long status = 0;
        curl_off_t ra = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        /* At most GRAPH_RETRY_AFTER_MAX: it holds the whole profile
         * (profstate_hold), and a wild value must not idle it for days. */
        if (curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
            r->retry_after = ra < GRAPH_RETRY_AFTER_MAX ? (int64_t)ra : GRAPH_RETRY_AFTER_MAX;
        r->status = status;
    }
    req_drop_easy(r);
    r->running = false;
}

/* ---- the multi handle and the loop ---------------------------------------- */

static struct graph_sock *sock_find(struct graph_xfer *x, curl_socket_t fd)
{
    for (struct graph_sock *s = x->socks; s; s = s->next)
        if (s->fd == fd)
            return s;
    return NULL;
}

static void sock_remove(struct graph_xfer *x, curl_socket_t fd)
{
    for (struct graph_sock **pp = &x->socks; *pp; pp = &(*pp)->next) {
        if ((*pp)->fd == fd) {
            struct graph_sock *s = *pp;
            *pp = s->next;
            if (s->ev)
                event_free(s->ev);
            free(s);
            return;
        }
    }
}

/*
 * Collects finished transfers, then runs their callbacks once curl's state
 * is settled: a callback may start new requests or cancel others.
 */
static void xfer_check(struct graph_xfer *x)
{
    struct graph_req *head = NULL, **tail = &head;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(x->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;
        struct graph_req *r = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
        curl_multi_remove_handle(x->multi, easy);
        if (r == NULL) {
            curl_easy_cleanup(easy);
            continue;
        }
        graph_req_finish(r, rc);
        r->done_next = NULL;
        *tail = r;
        tail = &r->done_next;
    }
    for (struct graph_req *r = head, *next; r; r = next) {
        next = r->done_next;
        r->done_next = NULL;
        r->cb(r);
    }
}

static void xfer_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct graph_xfer *x = arg;
    int flags =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running = 0;
    curl_multi_socket_action(x->multi, fd, flags, &running);
    xfer_check(x);
}

static void xfer_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct graph_xfer *x = arg;
    int running = 0;
    curl_multi_socket_action(x->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    xfer_check(x);
}

/* CURLMOPT_SOCKETFUNCTION: only (re)arms or drops our event for fd. */
static int xfer_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    struct graph_xfer *x = userp;
    if (what == CURL_POLL_REMOVE) {
        sock_remove(x, fd);
        return 0;
    }
    struct graph_sock *s = sock_find(x, fd);
    if (s == NULL) {
        s = xcalloc(1, sizeof *s);
        s->fd = fd;
        s->next = x->socks;
        x->socks = s;
    }
    if (s->ev)
        event_free(s->ev);
    short kind = (short)(EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                         ((what & CURL_POLL_OUT) ? EV_WRITE : 0));
    s->ev = event_new(x->base, fd, kind, xfer_event_cb, x);
    if (s->ev == NULL || event_add(s->ev, NULL) != 0)
        return -1;
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer; -1 deletes it, 0 fires on the next loop turn. */
static int xfer_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct graph_xfer *x = userp;
    if (timeout_ms < 0) {
        evtimer_del(x->timer);
        return 0;
    }
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)((timeout_ms % 1000) * 1000)};
    return evtimer_add(x->timer, &tv) == 0 ? 0 : -1;
}

struct graph_xfer *graph_xfer_new(struct event_base *base, struct err *e)
{
    struct graph_xfer *x = xcalloc(1, sizeof *x);
    x->base = base;
    x->multi = curl_multi_init();
    x->timer = evtimer_new(base, xfer_timer_cb, x);
    if (x->multi == NULL || x->timer == NULL) {
        err_set(e, EX_OSERR, "cannot create the HTTP transfer engine for Microsoft 365");
        graph_xfer_free(x);
        return NULL;
    }
    curl_multi_setopt(x->multi, CURLMOPT_SOCKETFUNCTION, xfer_socket_cb);
    curl_multi_setopt(x->multi, CURLMOPT_SOCKETDATA, x);
    curl_multi_setopt(x->multi, CURLMOPT_TIMERFUNCTION, xfer_timer_set);
    curl_multi_setopt(x->multi, CURLMOPT_TIMERDATA, x);
    curl_multi_setopt(x->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return x;
}

void graph_xfer_free(struct graph_xfer *x)
{
    if (x == NULL)
        return;
    /* Requests still attached belong to their owners, who cancel them first;
     * curl_multi_cleanup may still call the socket callback for connections. */
    if (x->multi)
        curl_multi_cleanup(x->multi);
    while (x->socks)
        sock_remove(x, x->socks->fd);
    if (x->timer)
        event_free(x->timer);
    free(x);
}

int graph_xfer_start(struct graph_xfer *x, struct graph_req *r, const struct graph_tls *tls,
                     const char *token, struct err *e)
{
    if (graph_req_prepare(r, tls, token, e) != 0)
        return -1;
    CURLMcode mc = curl_multi_add_handle(x->multi, r->easy);
    if (mc != CURLM_OK) {
        req_drop_easy(r);
        return err_set(e, EX_SOFTWARE, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
    }
    r->running = true;
    return 0;
}

void graph_xfer_cancel(struct graph_xfer *x, struct graph_req *r)
{
    if (r == NULL || !r->running)
        return;
    if (r->easy)
        curl_multi_remove_handle(x->multi, r->easy);
    req_drop_easy(r);
    r->running = false;
}
