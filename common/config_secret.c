/*
 * config_secret — the secret values Passwort and 365Secret: literal,
 * file:PATH (first line of that file) or credential:NAME (systemd's
 * $CREDENTIALS_DIRECTORY/NAME), and the warnings about who can read them.
 *
 * Secrets are read only when the caller asks (CONFIG_RESOLVE_SECRETS: the
 * daemon and --check); producers never touch the secret files. Buffers that
 * held a secret are wiped before they are freed.
 * Never: puts a secret value into a diag; messages name the profile, the
 * key and the path or credential name only.
 */
#include "config_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xmalloc.h"

#define SECRET_MAX 65536

bool config_secret_is_literal(const char *raw)
{
    return strncmp(raw, "file:", 5) != 0 && strncmp(raw, "credential:", 11) != 0;
}

void config_secret_free(char *secret)
{
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}

/* The first line of path, CR/LF stripped, in *out; errno-style result. */
static int read_first_line(const char *path, char **out, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errno;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        int e = S_ISREG(st->st_mode) ? errno : EINVAL;
        close(fd);
        return e;
    }
    char *buf = xmalloc(SECRET_MAX + 1);
    size_t len = 0;
    while (len < SECRET_MAX && memchr(buf, '\n', len) == NULL) {
        ssize_t n = read(fd, buf + len, SECRET_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            explicit_bzero(buf, len);
            free(buf);
            return e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    char *nl = memchr(buf, '\n', len);
    size_t n = nl ? (size_t)(nl - buf) : len;
    while (n > 0 && (buf[n - 1] == '\r' || buf[n - 1] == '\n'))
        n--;
    *out = xstrndup(buf, strnlen(buf, n));
    explicit_bzero(buf, len);
    free(buf);
    return 0;
}

/* Reads path for key, or reports why not; ref is how the config names it. */
static char *read_secret(const struct profile *p, const char *key, int line, const char *path,
                         struct diags *d)
{
    char *v = NULL;
    struct stat st = {0};
    int e = read_first_line(path, &v, &st);
    if (e != 0) {
        const char *why = e == EINVAL ? "not a regular file" : strerror(e);
        config_diag(d, p->file, line, false, p->name,
                    "key %s: cannot read secret file %s: %s: make it readable by the mailspool "
                    "user only (chown mailspool %s; chmod 600 %s), or use credential:",
                    key, path, why, path, path);
        return NULL;
    }
    if (v[0] == '\0') {
        config_diag(d, p->file, line, false, p->name,
                    "key %s: secret file %s is empty: put the secret on its first line", key, path);
        free(v);
        return NULL;
    }
    if (st.st_mode & S_IROTH)
        config_diag(d, p->file, line, true, p->name,
                    "key %s: secret file %s is readable by others: run chmod 600 %s (owner "
                    "mailspool; producers must not read secrets)",
                    key, path, path);
    return v;
}

static bool credential_name_ok(const char *n)
{
    return n[0] != '\0' && strchr(n, '/') == NULL && strcmp(n, ".") != 0 && strcmp(n, "..") != 0;
}

char *config_secret_get(const struct profile *p, const struct cfg_section *s, enum cfg_key_id id,
                        int flags, struct diags *d)
{
    const char *raw = s->vals[id].raw, *key = config_keys[id].name;
    int line = s->vals[id].line;
    bool resolve = (flags & CONFIG_RESOLVE_SECRETS) != 0;
    if (strncmp(raw, "file:", 5) == 0) {
        const char *path = raw + 5;
        if (path[0] != '/') {
            config_diag(d, p->file, line, false, p->name,
                        "key %s: file:%s is not an absolute path: write "
                        "file:/etc/mailspool/secrets/%s",
                        key, path, p->name);
            return NULL;
        }
        return resolve ? read_secret(p, key, line, path, d) : NULL;
    }
    if (strncmp(raw, "credential:", 11) == 0) {
        const char *name = raw + 11;
        if (!credential_name_ok(name)) {
            config_diag(d, p->file, line, false, p->name,
                        "key %s: credential:%s is not a credential name: write credential:NAME "
                        "as in the unit's LoadCredential=NAME:PATH (no '/')",
                        key, name);
            return NULL;
        }
        if (!resolve)
            return NULL;
        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        if (dir == NULL || dir[0] == '\0') {
            config_diag(d, p->file, line, false, p->name,
                        "key %s: credential:%s needs $CREDENTIALS_DIRECTORY, which is not set: "
                        "start mailspoold from systemd with LoadCredential=%s:PATH, or use "
                        "file:PATH",
                        key, name, name);
            return NULL;
        }
        char *path = xasprintf("%s/%s", dir, name);
        char *v = read_secret(p, key, line, path, d);
        free(path);
        return v;
    }
    return resolve ? xstrdup(raw) : NULL;
}

void config_secret_check_mode(const char *path, const struct stat *st, const struct cfg_file *cf,
                              struct diags *d)
{
    if (!(st->st_mode & S_IROTH))
        return;
    static const enum cfg_key_id keys[] = {K_PASSWORT, K_365_SECRET};
    for (size_t i = 0; i < cf->nsecs; i++) {
        const struct cfg_section *s = &cf->secs[i];
        if (s->kind != CK_PROFILE)
            continue;
        for (size_t k = 0; k < 2; k++) {
            if (!config_val_given(s, keys[k]) || !config_secret_is_literal(s->vals[keys[k]].raw))
                continue;
            config_diag(d, path, s->vals[keys[k]].line, true, s->name,
                        "key %s: %s is readable by others and holds this literal secret: run "
                        "chmod 640 %s, and better move the secret into a file: or credential: "
                        "(producers in group mailspool may read this file, never the secrets)",
                        config_keys[keys[k]].name, path, path);
            return; /* one warning per file is enough */
        }
    }
}
