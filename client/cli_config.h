/* cli_config.h - where the CLI finds its server: URL, API token and CA certificate.
 *
 * Sources, weakest first: the config file ($XDG_CONFIG_HOME/antenna/config, by default
 * ~/.config/antenna/config, lines "url = ...", "token = ...", "ca = ...", '#' comments), then the
 * environment (ANTENNA_URL, ANTENNA_TOKEN, ANTENNA_CA), then the command-line flags (--url,
 * --token,
 * --ca). Never prints and never talks to the network; reads only the config file.
 */
#ifndef ANTENNA_CLI_CONFIG_H
#define ANTENNA_CLI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* One setting: its value (heap, NULL = unset) and where it came from ("ANTENNA_URL", "--url" or
 * "PATH:LINE"; heap, NULL when unset). */
typedef struct cli_setting {
    char *value;
    char *source;
} cli_setting;

typedef struct cli_config {
    cli_setting url, token, ca;
    char *path;              /* the config file consulted (it may not exist); NULL if none */
    bool token_file_exposed; /* the file holds a token and others may read it (mode & 077) */
} cli_config;

/* Empties `c` (no settings, no path). */
void cli_config_init(cli_config *c);

/* Frees what `c` holds and empties it again. Accepts NULL. */
void cli_config_close(cli_config *c);

/* Returns the default config file path in a new heap string (caller frees):
 * $XDG_CONFIG_HOME/antenna/config when XDG_CONFIG_HOME is a non-empty absolute path, else
 * $HOME/.config/antenna/config. Returns NULL when neither is set or memory runs out. */
char *cli_config_default_path(void);

/* Parses config-file text (`len` bytes; `path` names it in messages) into `c`, replacing values
 * already set. Blank lines and lines starting with '#' are skipped; other lines must be
 * "key = value" with key url, token or ca (blanks around both trimmed, optional double quotes
 * around the value; an empty value unsets). Returns 0, -EINVAL with "PATH:LINE: ..." in
 * err[errlen] for an unknown key or a line without '=', or -ENOMEM. */
int cli_config_parse(cli_config *c, const char *text, size_t len, const char *path, char *err,
                     size_t errlen);

/* Reads and parses the file at `path` and remembers `path` in c->path. A missing file is not an
 * error (returns 0, nothing set). Sets token_file_exposed when the file sets a token and its mode
 * lets group or others read it. Returns 0, -EINVAL (parse error or unreadable file, message in
 * err[errlen]) or -ENOMEM. */
int cli_config_load_file(cli_config *c, const char *path, char *err, size_t errlen);

/* Overrides settings with the non-empty ANTENNA_URL, ANTENNA_TOKEN and ANTENNA_CA environment
 * variables. Returns 0 or -ENOMEM. */
int cli_config_apply_env(cli_config *c);

/* Overrides settings with the command-line flags that are non-NULL (--url, --token, --ca).
 * Returns 0 or -ENOMEM. */
int cli_config_apply_flags(cli_config *c, const char *url, const char *token, const char *ca);

/* Checks that a URL and a token are set and usable: the URL must start with "https://" and the
 * token must be printable ASCII without blanks. Returns 0, or -EINVAL with a message in err[errlen]
 * that names exactly what to set (the env var, the config key and file, the flag). */
int cli_config_check(const cli_config *c, char *err, size_t errlen);

/* All of the above in order: default path (or $ANTENNA_CONFIG when set), file, environment,
 * flags, check. Returns 0, -EINVAL with err[errlen] filled, or -ENOMEM. */
int cli_config_resolve(cli_config *c, const char *flag_url, const char *flag_token,
                       const char *flag_ca, char *err, size_t errlen);

#endif
