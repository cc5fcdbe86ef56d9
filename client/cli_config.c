/* cli_config.c - the CLI's server settings from config file, environment and flags.
 * Must never print or touch the network; the only file it reads is the config file. */
#include "cli_config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Config files are tiny; anything bigger is refused rather than read. */
#define CONFIG_MAX_BYTES (64 * 1024)

void cli_config_init(cli_config *c)
{
    memset(c, 0, sizeof *c);
}

static void setting_clear(cli_setting *s)
{
    free(s->value);
    free(s->source);
    s->value = NULL;
    s->source = NULL;
}

void cli_config_close(cli_config *c)
{
    if (c == NULL) return;
    setting_clear(&c->url);
    setting_clear(&c->token);
    setting_clear(&c->ca);
    free(c->path);
    cli_config_init(c);
}

/* Sets s to value[0..n) from `source`; an empty value unsets it. Returns 0 or -ENOMEM. */
static int setting_set(cli_setting *s, const char *value, size_t n, const char *source)
{
    if (n == 0) {
        setting_clear(s);
        return 0;
    }
    char *v = strndup(value, n);
    char *src = strdup(source);
    if (v == NULL || src == NULL) {
        free(v);
        free(src);
        return -ENOMEM;
    }
    setting_clear(s);
    s->value = v;
    s->source = src;
    return 0;
}

char *cli_config_default_path(void)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    char *out = NULL;
    if (xdg != NULL && xdg[0] == '/') {
        if (asprintf(&out, "%s/antenna/config", xdg) < 0) return NULL;
        return out;
    }
    const char *home = getenv("HOME");
    if (home == NULL || home[0] == '\0') return NULL;
    if (asprintf(&out, "%s/.config/antenna/config", home) < 0) return NULL;
    return out;
}

static cli_setting *setting_for(cli_config *c, const char *key, size_t n)
{
    if (n == 3 && memcmp(key, "url", 3) == 0) return &c->url;
    if (n == 5 && memcmp(key, "token", 5) == 0) return &c->token;
    if (n == 2 && memcmp(key, "ca", 2) == 0) return &c->ca;
    return NULL;
}

int cli_config_parse(cli_config *c, const char *text, size_t len, const char *path, char *err,
                     size_t errlen)
{
    if (path == NULL) path = "config";
    const char *p = text;
    const char *end = text + len;
    int line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        line++;
        const char *b = p;
        const char *e = eol;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        p = next;
        if (b == e || *b == '#') continue;
        const char *eq = memchr(b, '=', (size_t)(e - b));
        if (eq == NULL) {
            snprintf(err, errlen, "%s:%d: expected \"key = value\" (keys: url, token, ca)", path,
                     line);
            return -EINVAL;
        }
        const char *ke = eq;
        while (ke > b && isspace((unsigned char)ke[-1]))
            ke--;
        cli_setting *s = setting_for(c, b, (size_t)(ke - b));
        if (s == NULL) {
            snprintf(err, errlen, "%s:%d: unknown key \"%.*s\"; the keys are url, token and ca",
                     path, line, (int)(ke - b > 40 ? 40 : ke - b), b);
            return -EINVAL;
        }
        const char *vb = eq + 1;
        while (vb < e && isspace((unsigned char)*vb))
            vb++;
        const char *ve = e;
        if (ve - vb >= 2 && *vb == '"' && ve[-1] == '"') {
            vb++;
            ve--;
        }
        char src[512];
        snprintf(src, sizeof src, "%s:%d", path, line);
        if (setting_set(s, vb, (size_t)(ve - vb), src) != 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            return -ENOMEM;
        }
    }
    return 0;
}

int cli_config_load_file(cli_config *c, const char *path, char *err, size_t errlen)
{
    char *copy = strdup(path);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    free(c->path);
    c->path = copy;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return 0;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -EINVAL;
    }
    int rc;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "cannot read %s: not a regular file of at most %d bytes", path,
                 CONFIG_MAX_BYTES);
        rc = -EINVAL;
        goto fail_stat;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail_stat;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            rc = -EINVAL;
            goto fail_read;
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    rc = cli_config_parse(c, buf, got, path, err, errlen);
    size_t plen = strlen(path);
    bool token_from_file = c->token.value != NULL && strncmp(c->token.source, path, plen) == 0 &&
                           c->token.source[plen] == ':';
    if (rc == 0 && token_from_file && (st.st_mode & 077) != 0) c->token_file_exposed = true;

fail_read:
    free(buf);
fail_stat:
    close(fd);
    return rc;
}

static int apply_env_one(cli_setting *s, const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') return 0;
    return setting_set(s, v, strlen(v), name);
}

int cli_config_apply_env(cli_config *c)
{
    int rc;
    if ((rc = apply_env_one(&c->url, "ANTENNA_URL")) != 0) return rc;
    if ((rc = apply_env_one(&c->token, "ANTENNA_TOKEN")) != 0) return rc;
    return apply_env_one(&c->ca, "ANTENNA_CA");
}

static int apply_flag_one(cli_setting *s, const char *v, const char *flag)
{
    if (v == NULL) return 0;
    return setting_set(s, v, strlen(v), flag);
}

int cli_config_apply_flags(cli_config *c, const char *url, const char *token, const char *ca)
{
    int rc;
    if ((rc = apply_flag_one(&c->url, url, "--url")) != 0) return rc;
    if ((rc = apply_flag_one(&c->token, token, "--token")) != 0) return rc;
    return apply_flag_one(&c->ca, ca, "--ca");
}

int cli_config_check(const cli_config *c, char *err, size_t errlen)
{
    const char *path = c->path ? c->path : "~/.config/antenna/config";
    if (c->url.value == NULL) {
        snprintf(err, errlen,
                 "no server URL: set ANTENNA_URL (e.g. export ANTENNA_URL=https://HOST:PORT), or "
                 "add a line \"url = https://HOST:PORT\" to %s, or pass --url",
                 path);
        return -EINVAL;
    }
    if (strncmp(c->url.value, "https://", 8) != 0 || c->url.value[8] == '\0') {
        snprintf(err, errlen,
                 "the server URL \"%.200s\" (from %s) must start with https:// and name a host; "
                 "fix it there",
                 c->url.value, c->url.source);
        return -EINVAL;
    }
    if (c->token.value == NULL) {
        snprintf(err, errlen,
                 "no API token: set ANTENNA_TOKEN, or add a line \"token = ant_...\" to %s, or "
                 "pass --token (an admin creates one with: antenna token create --user NAME)",
                 path);
        return -EINVAL;
    }
    for (const char *t = c->token.value; *t; t++) {
        if (*t <= ' ' || *t >= 0x7f) {
            snprintf(err, errlen,
                     "the API token from %s holds blanks or non-ASCII characters; copy it again",
                     c->token.source);
            return -EINVAL;
        }
    }
    return 0;
}

int cli_config_resolve(cli_config *c, const char *flag_url, const char *flag_token,
                       const char *flag_ca, char *err, size_t errlen)
{
    const char *env_path = getenv("ANTENNA_CONFIG");
    char *path = env_path && env_path[0] ? strdup(env_path) : cli_config_default_path();
    int rc;
    if (path != NULL) {
        rc = cli_config_load_file(c, path, err, errlen);
        free(path);
        if (rc != 0) return rc;
    }
    if (cli_config_apply_env(c) != 0 || cli_config_apply_flags(c, flag_url, flag_token, flag_ca)) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return cli_config_check(c, err, errlen);
}
