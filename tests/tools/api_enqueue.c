/*
 * api_enqueue — test driver: enqueue messages through the public C API
 * (spool/mailspool.h) as a producer program would.
 *
 * Owns: reading one JSON object per input line that lists the API calls to
 * make, making them in order, and printing one JSON line per input line with
 * what the library answered. Used by the bad-input corpus
 * (tests/corpus/badinput/api.jsonl, tests/integration/test_badinput_api.py).
 * Never: calls anything but the functions of mailspool.h (cJSON only reads
 * the description), or checks the values itself: judging them is the
 * library's job, and the test's.
 *
 *   api_enqueue SPOOL < calls.jsonl > results.jsonl
 *
 * Input line:  {"id": "api-001", "calls": [CALL...], "continue": false}
 * CALL:        ["area", S]  ["to"|"cc"|"bcc", S]  ["rcpt", KIND, S]
 *              ["subject"|"text"|"html"|"reply_to"|"ref", S]
 *              ["not_before"|"expires", N]  ["priority", N]
 *              ["header", NAME, VALUE]  ["attach_file", PATH, NAME, TYPE]
 *              ["attach_data", HEX, NAME, TYPE]  ["attach_data_null", LEN, NAME, TYPE]
 *              ["repeat_to", FORMAT_WITH_%d, COUNT]   (COUNT add_rcpt calls)
 * S may be null (passed as NULL). N may be a number or a decimal string
 * (for values a double cannot hold). Strings are passed as the bytes the
 * JSON holds; a "\u0000" escape ends the C string there, as it would in C.
 * Unless "continue" is true, the first call that fails ends the entry
 * without mailspool_enqueue; with it, the failed calls are recorded and the
 * message is enqueued anyway (a producer that ignores errors must still not
 * get the refused value into the spool).
 *
 * Output line: {"id", "calls": [rc...], "failed_call": I or -1, "rc": RC,
 *               "error": MSG, "msg_id": ID or 0}
 * where rc is the first failure's code (or mailspool_enqueue's).
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailspool.h"

/* A string argument: NULL for JSON null or a missing argument. */
static const char *api_enqueue_str(const cJSON *call, int i)
{
    const cJSON *v = cJSON_GetArrayItem(call, i);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static long long api_enqueue_num(const cJSON *call, int i)
{
    const cJSON *v = cJSON_GetArrayItem(call, i);
    if (cJSON_IsString(v))
        return strtoll(v->valuestring, NULL, 10);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

/* Hex digits into a new buffer; *len gets the byte count. */
static unsigned char *api_enqueue_hex(const char *hex, size_t *len)
{
    size_t n = hex ? strlen(hex) / 2 : 0;
    unsigned char *out = malloc(n + 1);
    if (out == NULL)
        abort();
    for (size_t i = 0; i < n; i++) {
        unsigned int b = 0;
        sscanf(hex + 2 * i, "%2x", &b);
        out[i] = (unsigned char)b;
    }
    *len = n;
    return out;
}

/* COUNT recipients "FORMAT" % i; stops at the first refusal. */
static int api_enqueue_repeat_to(mailspool_msg *m, const cJSON *call)
{
    const char *fmt = api_enqueue_str(call, 1);
    long long count = api_enqueue_num(call, 2);
    if (fmt == NULL || strstr(fmt, "%d") == NULL || strchr(strstr(fmt, "%d") + 2, '%'))
        return 64;
    char addr[512];
    for (long long i = 0; i < count; i++) {
        snprintf(addr, sizeof addr, fmt, (int)i);
        int rc = mailspool_msg_add_rcpt(m, MAILSPOOL_TO, addr);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int api_enqueue_attach_data(mailspool_msg *m, const cJSON *call, int null_data)
{
    const char *name = api_enqueue_str(call, 2), *type = api_enqueue_str(call, 3);
    if (null_data)
        return mailspool_msg_attach_data(m, NULL, (size_t)api_enqueue_num(call, 1), name, type);
    size_t len;
    unsigned char *data = api_enqueue_hex(api_enqueue_str(call, 1), &len);
    int rc = mailspool_msg_attach_data(m, data, len, name, type);
    free(data);
    return rc;
}

/* One call; returns its code, or 64 for a call this driver does not know. */
static int api_enqueue_call(mailspool_msg *m, const cJSON *call)
{
    const char *op = api_enqueue_str(call, 0);
    const char *s = api_enqueue_str(call, 1);
    if (op == NULL)
        return 64;
    if (strcmp(op, "area") == 0)
        return mailspool_msg_set_area(m, s);
    if (strcmp(op, "to") == 0)
        return mailspool_msg_add_rcpt(m, MAILSPOOL_TO, s);
    if (strcmp(op, "cc") == 0)
        return mailspool_msg_add_rcpt(m, MAILSPOOL_CC, s);
    if (strcmp(op, "bcc") == 0)
        return mailspool_msg_add_rcpt(m, MAILSPOOL_BCC, s);
    if (strcmp(op, "rcpt") == 0)
        return mailspool_msg_add_rcpt(m, (enum mailspool_rcpt)api_enqueue_num(call, 1),
                                      api_enqueue_str(call, 2));
    if (strcmp(op, "subject") == 0)
        return mailspool_msg_set_subject(m, s);
    if (strcmp(op, "text") == 0)
        return mailspool_msg_set_text(m, s);
    if (strcmp(op, "html") == 0)
        return mailspool_msg_set_html(m, s);
    if (strcmp(op, "reply_to") == 0)
        return mailspool_msg_set_reply_to(m, s);
    if (strcmp(op, "ref") == 0)
        return mailspool_msg_set_ref(m, s);
    if (strcmp(op, "not_before") == 0)
        return mailspool_msg_set_not_before(m, (int64_t)api_enqueue_num(call, 1));
    if (strcmp(op, "expires") == 0)
        return mailspool_msg_set_expires(m, (int64_t)api_enqueue_num(call, 1));
    if (strcmp(op, "priority") == 0)
        return mailspool_msg_set_priority(m, (int)api_enqueue_num(call, 1));
    if (strcmp(op, "header") == 0)
        return mailspool_msg_add_header(m, s, api_enqueue_str(call, 2));
    if (strcmp(op, "attach_file") == 0)
        return mailspool_msg_attach_file(m, s, api_enqueue_str(call, 2), api_enqueue_str(call, 3));
    if (strcmp(op, "attach_data") == 0 || strcmp(op, "attach_data_null") == 0)
        return api_enqueue_attach_data(m, call, strcmp(op, "attach_data_null") == 0);
    if (strcmp(op, "repeat_to") == 0)
        return api_enqueue_repeat_to(m, call);
    return 64;
}

/* Runs one entry and returns its result object. */
static cJSON *api_enqueue_entry(mailspool *ms, const cJSON *in)
{
    cJSON *out = cJSON_CreateObject();
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(in, "id");
    cJSON_AddStringToObject(out, "id", cJSON_IsString(id) ? id->valuestring : "?");
    int go_on = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(in, "continue"));
    cJSON *rcs = cJSON_AddArrayToObject(out, "calls");
    mailspool_msg *m = mailspool_msg_new();
    int rc = 0, failed = -1, i = 0;
    char error[1100] = "";
    const cJSON *call;
    cJSON_ArrayForEach(call, cJSON_GetObjectItemCaseSensitive(in, "calls"))
    {
        int r = api_enqueue_call(m, call);
        cJSON_AddItemToArray(rcs, cJSON_CreateNumber(r));
        if (r != 0 && failed < 0) {
            failed = i;
            rc = r;
            snprintf(error, sizeof error, "%s", mailspool_msg_errmsg(m));
        }
        i++;
        if (r != 0 && !go_on)
            break;
    }
    long long msg_id = 0;
    if (failed < 0 || go_on) {
        int r = mailspool_enqueue(ms, m, &msg_id);
        if (r != 0) {
            msg_id = 0;
            if (failed < 0) {
                rc = r;
                snprintf(error, sizeof error, "%s", mailspool_msg_errmsg(m));
            }
        }
        cJSON_AddNumberToObject(out, "enqueue_rc", r);
    }
    mailspool_msg_free(m);
    cJSON_AddNumberToObject(out, "failed_call", failed);
    cJSON_AddNumberToObject(out, "rc", rc);
    cJSON_AddStringToObject(out, "error", error);
    cJSON_AddNumberToObject(out, "msg_id", (double)msg_id);
    return out;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: api_enqueue SPOOL < calls.jsonl\n");
        return 64;
    }
    mailspool *ms;
    if (mailspool_open(argv[1], 0, &ms) != 0) {
        fprintf(stderr, "api_enqueue: %s\n", mailspool_errmsg(ms));
        mailspool_close(ms);
        return 74;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int status = 0;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        cJSON *in = cJSON_ParseWithLength(line, (size_t)n);
        if (in == NULL) {
            fprintf(stderr, "api_enqueue: input line is not JSON\n");
            status = 65;
            continue;
        }
        cJSON *out = api_enqueue_entry(ms, in);
        char *text = cJSON_PrintUnformatted(out);
        printf("%s\n", text);
        fflush(stdout);
        free(text);
        cJSON_Delete(out);
        cJSON_Delete(in);
    }
    free(line);
    mailspool_close(ms);
    return status;
}
