/*
 * cli — the `mailspool` command line: shared context of the commands.
 *
 * Owns: struct cli (the -c/-s choices, the configuration as far as it is
 * readable, the resolved spool path) and the commands' entry points.
 * Never: loads secrets (producers need no access to them) or exits outside
 * main.
 */
#ifndef MAILSPOOL_CLI_H
#define MAILSPOOL_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "config.h"
#include "err.h"
#include "spool.h"

enum cli_config_state {
    CLI_CONFIG_UNLOADED = 0,
    CLI_CONFIG_VALID,
    CLI_CONFIG_UNREADABLE, /* missing or no permission: producers may lack it */
    CLI_CONFIG_INVALID,    /* readable but with errors */
};

struct cli {
    const char *config_opt; /* -c */
    const char *spool_opt;  /* -s */
    const char *config_path;
    enum cli_config_state config_state;
    struct config *cfg; /* only when CLI_CONFIG_VALID */
    struct diags diags;
    char *spool_salvaged; /* [spool] path of an invalid config, once looked up */
    /* How enqueue stores a message: cli_spool_enqueue in the full CLI,
     * cli_front_enqueue in the front (see cli_front.c). */
    int (*store)(struct cli *c, const struct message *m, int64_t *id, bool *existing,
                 struct err *e);
    char **argv;           /* main's, for the front to hand over to the full CLI */
    struct buf stdin_copy; /* what enqueue read from standard input (the front replays it) */
    bool stdin_read;
};

/* cli_spool.c (full CLI only: it loads SQLite): the spool at the path
 * cli_util_spool_path resolves, and the direct enqueue. */
int cli_spool_open(struct cli *c, int flags, struct spool **sp, struct err *e);
int cli_spool_enqueue(struct cli *c, const struct message *m, int64_t *id, bool *existing,
                      struct err *e);

/* cli_front.c (front only): enqueue through the daemon, else by the full
 * CLI; and running the full CLI for every other command. */
int cli_front_enqueue(struct cli *c, const struct message *m, int64_t *id, bool *existing,
                      struct err *e);
/* Replaces this process by the full CLI with main's arguments (and the
 * standard input enqueue read, replayed); returns only on failure (-1, e). */
int cli_front_exec(struct cli *c, struct err *e);

/* cli_submit.c: enqueues m through the daemon's submission socket. 0 with
 * *id and *existing; -1 with e (what a direct enqueue would say); 1: no
 * daemon took it and it is certainly not stored: enqueue directly. */
int cli_submit_enqueue(const char *spool_path, const struct message *m, int64_t *id, bool *existing,
                       struct err *e);

/* cli_util.c */
/* Loads the configuration once (without secrets); returns its state. */
enum cli_config_state cli_util_config(struct cli *c);
/* -s, $MAILSPOOL_SPOOL, [spool] path of a readable config, else the default.
 * A readable config with errors elsewhere still gives its [spool] path (with
 * a note): a broken profile must not stop producers. One whose [spool]
 * section itself is wrong is EX_CONFIG: guessing the default could put mail
 * into a spool no daemon reads. */
int cli_util_spool_path(struct cli *c, const char **out, struct err *e);
/* Prints "mailspool: MESSAGE" to stderr; returns e->code (EX_SOFTWARE if 0). */
int cli_util_fail(const struct err *e);
/* Prints "mailspool CMD: text" and a hint to stderr; returns EX_USAGE. */
int cli_util_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The usage error for the option getopt_long just refused ('?'). */
int cli_util_bad_option(const char *cmd, char **argv);
/* Reads a whole file ("-": standard input) as NUL-terminated text.
 * EX_NOINPUT naming what and the path when it cannot be read. */
int cli_util_read_file(const char *path, const char *what, char **out, size_t *len, struct err *e);
/* Parses a message id (positive decimal); -1 when it is not one. */
int cli_util_parse_id(const char *s, int64_t *id);
/* Prints the cJSON value (pretty) and a newline to stdout; frees it. */
void cli_util_print_json(cJSON *v);
void cli_util_free(struct cli *c);

struct spool_row;
/* cli_list.c: the JSON object of a listed row (show adds to it). */
cJSON *cli_list_row_json(const struct spool_row *r);

/* Commands: argv[0] is the command name; they return an exit code. */
int cli_enqueue_main(struct cli *c, int argc, char **argv);
int cli_list_main(struct cli *c, int argc, char **argv);
int cli_show_main(struct cli *c, int argc, char **argv);
int cli_render_main(struct cli *c, int argc, char **argv);
int cli_admin_retry(struct cli *c, int argc, char **argv);
int cli_admin_cancel(struct cli *c, int argc, char **argv);
int cli_admin_purge(struct cli *c, int argc, char **argv);
int cli_status_main(struct cli *c, int argc, char **argv);
int cli_test_main(struct cli *c, int argc, char **argv);

#endif
