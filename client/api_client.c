/* api_client.c - HTTPS requests to antennad through one reused libcurl handle, and the retry of
 * submissions with an Idempotency-Key.
 * Must never print, exit or follow redirects; transport errors are returned as messages. Never
 * retries a request the caller did not declare safe to repeat. */
#include "api_client.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#ifndef ANTENNA_VERSION
#define ANTENNA_VERSION "0.1.0"
#endif

#define BODY_MAX ((size_t)64 * 1024 * 1024)
#define KEY_MAX  255 /* longest Idempotency-Key antennad accepts */

/* The retry schedule (see api_client_retry_delay). */
#define RETRY_FIRST_S       1.0
#define RETRY_MAX_S         16.0
#define RETRY_AFTER_MIN_S   1.0
#define RETRY_AFTER_CAP_S   30.0
#define RETRY_AFTER_LIMIT_S 86400L /* larger Retry-After values are kept as this */

struct api_client {
    CURL *curl;
    char *base;
    char *auth_header;
    char *ca;
    char errbuf[CURL_ERROR_SIZE];
};

/* State of one transfer, shared by the write and header callbacks. */
typedef struct transfer {
    api_client_response *resp;
    FILE *sink;
    CURL *curl;
    size_t cap;
    bool too_big;
    bool sink_failed;
    int sink_errno;
} transfer;

int api_client_new(const char *base_url, const char *token, const char *ca, api_client **out,
                   char *err, size_t errlen)
{
    int rc = -ENOMEM;
    api_client *c = calloc(1, sizeof *c);
    if (c == NULL) goto fail_alloc;
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/')
        n--;
    c->base = strndup(base_url, n);
    if (c->base == NULL) goto fail_strings;
    if (asprintf(&c->auth_header, "Authorization: Bearer %s", token) < 0) {
        c->auth_header = NULL;
        goto fail_strings;
    }
    if (ca != NULL && (c->ca = strdup(ca)) == NULL) goto fail_strings;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = -EIO;
        snprintf(err, errlen, "libcurl could not start");
        goto fail_strings;
    }
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        rc = -EIO;
        snprintf(err, errlen, "libcurl could not create a handle");
        goto fail_curl;
    }
    *out = c;
    return 0;

fail_curl:
    curl_global_cleanup();
fail_strings:
    free(c->ca);
    free(c->auth_header);
    free(c->base);
    free(c);
fail_alloc:
    if (rc == -ENOMEM) snprintf(err, errlen, "out of memory");
    return rc;
}

void api_client_free(api_client *c)
{
    if (c == NULL) return;
    curl_easy_cleanup(c->curl);
    curl_global_cleanup();
    if (c->auth_header) explicit_bzero(c->auth_header, strlen(c->auth_header));
    free(c->auth_header);
    free(c->ca);
    free(c->base);
    free(c);
}

const char *api_client_url(const api_client *c)
{
    return c->base;
}

void api_client_response_init(api_client_response *r)
{
    memset(r, 0, sizeof *r);
    r->retry_after = -1;
}

void api_client_response_close(api_client_response *r)
{
    if (r == NULL) return;
    free(r->body);
    api_client_response_init(r);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    transfer *t = userdata;
    size_t n = size * nmemb;
    if (t->sink != NULL) {
        long status = 0;
        curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
            if (fwrite(data, 1, n, t->sink) != n) {
                t->sink_failed = true;
                t->sink_errno = errno;
                return 0;
            }
            t->resp->streamed += n;
            return n;
        }
    }
    api_client_response *r = t->resp;
    if (r->body_len + n > BODY_MAX) {
        t->too_big = true;
        return 0;
    }
    if (r->body_len + n + 1 > t->cap) {
        size_t cap = t->cap < 4096 ? 4096 : t->cap;
        while (cap < r->body_len + n + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (b == NULL) return 0;
        r->body = b;
        t->cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

/* Parses a Retry-After value (v..e): delay-seconds or an HTTP date. Returns seconds (at most
 * RETRY_AFTER_LIMIT_S, 0 for a date in the past) or -1 when it is neither. */
static long parse_retry_after(const char *v, const char *e)
{
    if (v == e) return -1;
    if (isdigit((unsigned char)*v)) {
        long s = 0;
        for (; v < e; v++) {
            if (!isdigit((unsigned char)*v)) return -1;
            if (s < RETRY_AFTER_LIMIT_S) s = s * 10 + (*v - '0');
        }
        return s < RETRY_AFTER_LIMIT_S ? s : RETRY_AFTER_LIMIT_S;
    }
    char date[64];
    size_t n = (size_t)(e - v);
    if (n >= sizeof date) return -1;
    memcpy(date, v, n);
    date[n] = '\0';
    time_t when = curl_getdate(date, NULL);
    if (when == -1) return -1;
    time_t now = time(NULL);
    if (when <= now) return 0;
    return when - now < RETRY_AFTER_LIMIT_S ? (long)(when - now) : RETRY_AFTER_LIMIT_S;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    transfer *t = userdata;
    size_t n = size * nmemb;
    static const char name[] = "x-antenna-job-state:";
    const size_t name_len = sizeof name - 1;
    static const char ra[] = "retry-after:";
    const size_t ra_len = sizeof ra - 1;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        t->resp->job_state[0] = '\0'; /* a new answer (after 1xx) starts */
        t->resp->retry_after = -1;
    } else if (n > ra_len && strncasecmp(data, ra, ra_len) == 0) {
        const char *v = data + ra_len;
        const char *e = data + n;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && isspace((unsigned char)e[-1]))
            e--;
        t->resp->retry_after = parse_retry_after(v, e);
    } else if (n > name_len && strncasecmp(data, name, name_len) == 0) {
        const char *v = data + name_len;
        const char *e = data + n;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && isspace((unsigned char)e[-1]))
            e--;
        size_t k = 0;
        for (; v < e && k + 1 < sizeof t->resp->job_state; v++)
            if (isalnum((unsigned char)*v) || *v == '_' || *v == '-') t->resp->job_state[k++] = *v;
        t->resp->job_state[k] = '\0';
    }
    return n;
}

static bool is_tls_error(CURLcode code)
{
    switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
        return true;
    default:
        return false;
    }
}

/* Builds the message for a failed transfer and returns the errno-style code. */
static int transport_error(api_client *c, const transfer *t, CURLcode code, const char *url,
                           int *failure, char *err, size_t errlen)
{
    long os_errno = 0;
    curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
    t->resp->net = t->sink_failed || t->too_big ? API_CLIENT_NET_OTHER
                                                : api_client_net_classify(code, (int)os_errno);
    if (t->sink_failed) {
        snprintf(err, errlen, "cannot write the output: %s", strerror(t->sink_errno));
        return t->sink_errno == EPIPE ? -EPIPE : -EIO;
    }
    if (t->too_big) {
        snprintf(err, errlen, "the answer from %s is larger than %zu MiB; refusing it", url,
                 BODY_MAX >> 20);
        return -EFBIG;
    }
    const char *what = curl_easy_strerror(code);
    const char *detail = c->errbuf[0] && strcmp(c->errbuf, what) != 0 ? c->errbuf : NULL;
    char curl_msg[CURL_ERROR_SIZE + 128];
    if (detail)
        snprintf(curl_msg, sizeof curl_msg, "%s (%s)", what, detail);
    else
        snprintf(curl_msg, sizeof curl_msg, "%s", what);
    if (is_tls_error(code)) {
        if (failure) *failure = API_CLIENT_FAIL_TLS;
        if (code == CURLE_SSL_CACERT_BADFILE && c->ca != NULL)
            snprintf(err, errlen,
                     "TLS error with %s: %s; the CA file \"%s\" could not be used: point "
                     "ANTENNA_CA (or \"ca =\" in the config file, or --ca) at a readable PEM "
                     "certificate",
                     url, curl_msg, c->ca);
        else
            snprintf(err, errlen,
                     "TLS error with %s: %s; if the server's certificate comes from a private CA, "
                     "set ANTENNA_CA (or \"ca =\" in the config file, or --ca) to that CA's "
                     "certificate file",
                     url, curl_msg);
        return -EPROTO;
    }
    if (failure) *failure = API_CLIENT_FAIL_CONNECT;
    if (code == CURLE_OUT_OF_MEMORY) {
        snprintf(err, errlen, "out of memory talking to %s", url);
        return -ENOMEM;
    }
    snprintf(err, errlen,
             "cannot reach %s: %s; check that antennad runs there and that ANTENNA_URL (or "
             "\"url =\" in the config file, or --url) is right",
             url, curl_msg);
    return code == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -EIO;
}

/* api_client_request with an optional extra header line ("Name: value", or NULL). */
static int perform(api_client *c, const char *method, const char *path, const char *json_body,
                   const char *extra_header, FILE *sink, api_client_response *resp, int *failure,
                   char *err, size_t errlen)
{
    int rc = -ENOMEM;
    if (failure) *failure = 0;
    api_client_response_close(resp);
    resp->body = malloc(1);
    char *url = NULL;
    struct curl_slist *headers = NULL, *h;
    if (resp->body == NULL) goto fail_url;
    resp->body[0] = '\0';
    if (asprintf(&url, "%s%s", c->base, path) < 0) {
        url = NULL;
        goto fail_url;
    }
    static const char *const fixed[] = {"Accept: application/json", "Expect:"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if ((h = curl_slist_append(headers, fixed[i])) == NULL) goto fail_headers;
        headers = h;
    }
    if ((h = curl_slist_append(headers, c->auth_header)) == NULL) goto fail_headers;
    headers = h;
    if (json_body != NULL) {
        if ((h = curl_slist_append(headers, "Content-Type: application/json")) == NULL)
            goto fail_headers;
        headers = h;
    }
    if (extra_header != NULL) {
        if ((h = curl_slist_append(headers, extra_header)) == NULL) goto fail_headers;
        headers = h;
    }

    transfer t = {.resp = resp, .sink = sink, .curl = c->curl, .cap = 1};
    CURL *k = c->curl;
    curl_easy_reset(k); /* keeps the live connection for keep-alive */
    c->errbuf[0] = '\0';
    curl_easy_setopt(k, CURLOPT_URL, url);
    curl_easy_setopt(k, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(k, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(k, CURLOPT_USERAGENT, "antenna/" ANTENNA_VERSION);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(k, CURLOPT_PROTOCOLS_STR, "https");
#else
    curl_easy_setopt(k, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
    curl_easy_setopt(k, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(k, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(k, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(k, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(k, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(k, CURLOPT_FOLLOWLOCATION, 0L);
    if (c->ca != NULL) curl_easy_setopt(k, CURLOPT_CAINFO, c->ca);
    curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(k, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(k, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(k, CURLOPT_HEADERDATA, &t);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(k, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(k, CURLOPT_POST, 1L);
        curl_easy_setopt(k, CURLOPT_POSTFIELDS, json_body ? json_body : "");
        curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(json_body ? strlen(json_body) : 0));
    } else {
        curl_easy_setopt(k, CURLOPT_CUSTOMREQUEST, method);
        if (json_body != NULL) {
            curl_easy_setopt(k, CURLOPT_POSTFIELDS, json_body);
            curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json_body));
        }
    }
    CURLcode code = curl_easy_perform(k);
    if (code != CURLE_OK) {
        rc = transport_error(c, &t, code, url, failure, err, errlen);
        resp->status = 0;
        goto fail_perform;
    }
    curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &resp->status);
    rc = 0;

fail_perform:
    /* The handle keeps pointers to these until the next reset: clear them before freeing. */
    curl_easy_setopt(k, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(k, CURLOPT_ERRORBUFFER, NULL);
fail_headers:
    curl_slist_free_all(headers);
fail_url:
    if (rc == -ENOMEM) {
        snprintf(err, errlen, "out of memory");
        if (resp->net == API_CLIENT_NET_NONE && resp->status == 0) resp->net = API_CLIENT_NET_OTHER;
    }
    free(url);
    return rc;
}

int api_client_request(api_client *c, const char *method, const char *path, const char *json_body,
                       FILE *sink, api_client_response *resp, int *failure, char *err,
                       size_t errlen)
{
    return perform(c, method, path, json_body, NULL, sink, resp, failure, err, errlen);
}

/* ---- idempotency keys and retries ---- */

/* Reads n random bytes into buf. Returns 0 or -EIO. */
static int random_bytes(unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = getrandom(buf + got, n - got, 0);
        if (k > 0) {
            got += (size_t)k;
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else if (k < 0 && errno == ENOSYS) {
            break; /* a kernel older than 3.17: fall back to the device */
        } else {
            return -EIO;
        }
    }
    if (got == n) return 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -EIO;
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k > 0)
            got += (size_t)k;
        else if (!(k < 0 && errno == EINTR))
            break;
    }
    close(fd);
    return got == n ? 0 : -EIO;
}

int api_client_idempotency_key_new(char *key, size_t keylen)
{
    if (keylen <= API_CLIENT_KEY_LEN) return -EINVAL;
    unsigned char raw[API_CLIENT_KEY_LEN / 2];
    if (random_bytes(raw, sizeof raw) != 0) return -EIO;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        key[2 * i] = hex[raw[i] >> 4];
        key[2 * i + 1] = hex[raw[i] & 0xf];
    }
    key[API_CLIENT_KEY_LEN] = '\0';
    explicit_bzero(raw, sizeof raw);
    return 0;
}

int api_client_idempotency_key_check(const char *key, char *err, size_t errlen)
{
    size_t n = strlen(key);
    if (n == 0) {
        snprintf(err, errlen,
                 "the idempotency key is empty; give 1 to %d printable ASCII "
                 "characters without spaces, or leave it out for a fresh one",
                 KEY_MAX);
        return -EINVAL;
    }
    if (n > KEY_MAX) {
        snprintf(err, errlen, "the idempotency key has %zu characters; at most %d are allowed", n,
                 KEY_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)key[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            snprintf(err, errlen,
                     "the idempotency key has %s at position %zu; use only printable ASCII "
                     "characters without spaces (letters, digits, '-', '_' ...)",
                     ch == ' '    ? "a space"
                     : ch >= 0x80 ? "a non-ASCII byte"
                                  : "a control character",
                     i + 1);
            return -EINVAL;
        }
    }
    return 0;
}

int api_client_net_classify(int curl_code, int os_errno)
{
    switch ((CURLcode)curl_code) {
    case CURLE_OK:
        return API_CLIENT_NET_NONE;
    /* Nothing was sent: the server is not listening (yet, or any more) or not reachable. */
    case CURLE_COULDNT_CONNECT:
        return os_errno == EHOSTUNREACH || os_errno == ENETUNREACH ? API_CLIENT_NET_UNREACHABLE
                                                                   : API_CLIENT_NET_REFUSED;
    /* A connect timeout, or the answer stalled (CURLOPT_LOW_SPEED_*): the request may have
     * arrived. */
    case CURLE_OPERATION_TIMEDOUT:
        return API_CLIENT_NET_TIMEOUT;
    /* The connection broke while sending or receiving: a TCP reset, or a TLS error mid-request
     * or mid-answer (with OpenSSL, libcurl reports a failed SSL_write/SSL_read as these). */
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        return API_CLIENT_NET_LOST;
    /* The server closed the connection without a byte of answer: the request may have arrived. */
    case CURLE_GOT_NOTHING:
        return API_CLIENT_NET_EMPTY;
    /* The status arrived but the body was cut short (fewer bytes than Content-Length). */
    case CURLE_PARTIAL_FILE:
        return API_CLIENT_NET_CUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return API_CLIENT_NET_RESOLVE;
    /* A handshake that broke because the peer reset the connection (antennad stopping) is a lost
     * connection; any other handshake failure (no TLS there, a bad certificate) is the
     * configuration's, and the request was never sent. */
    case CURLE_SSL_CONNECT_ERROR:
        if (os_errno == ECONNRESET || os_errno == EPIPE || os_errno == ECONNABORTED)
            return API_CLIENT_NET_LOST;
        return API_CLIENT_NET_TLS;
    default:
        return is_tls_error((CURLcode)curl_code) ? API_CLIENT_NET_TLS : API_CLIENT_NET_OTHER;
    }
}

const char *api_client_net_name(int net)
{
    switch (net) {
    case API_CLIENT_NET_NONE:
        return "answered";
    case API_CLIENT_NET_REFUSED:
        return "connection refused";
    case API_CLIENT_NET_UNREACHABLE:
        return "host unreachable";
    case API_CLIENT_NET_TIMEOUT:
        return "timed out";
    case API_CLIENT_NET_LOST:
        return "connection lost";
    case API_CLIENT_NET_EMPTY:
        return "empty reply";
    case API_CLIENT_NET_CUT:
        return "answer cut short";
    case API_CLIENT_NET_RESOLVE:
        return "host name not found";
    case API_CLIENT_NET_TLS:
        return "TLS error";
    default:
        return "transport error";
    }
}

double api_client_retry_delay(const api_client_response *resp, unsigned attempt, double elapsed,
                              double retry_for)
{
    double left = retry_for - elapsed;
    if (retry_for <= 0 || left <= 0) return -1;
    bool retry_after = false;
    switch (resp->net) {
    case API_CLIENT_NET_NONE:
        if (resp->status != 503) return -1;
        retry_after = resp->retry_after >= 0;
        break;
    case API_CLIENT_NET_REFUSED:
    case API_CLIENT_NET_UNREACHABLE:
    case API_CLIENT_NET_TIMEOUT:
    case API_CLIENT_NET_LOST:
    case API_CLIENT_NET_EMPTY:
    case API_CLIENT_NET_CUT:
        break;
    default:
        return -1;
    }
    if (retry_after) {
        double d = (double)resp->retry_after;
        d = d < RETRY_AFTER_MIN_S   ? RETRY_AFTER_MIN_S
            : d > RETRY_AFTER_CAP_S ? RETRY_AFTER_CAP_S
                                    : d;
        return d <= left ? d : -1;
    }
    double d = RETRY_FIRST_S;
    for (unsigned i = 1; i < attempt && d < RETRY_MAX_S; i++)
        d *= 2;
    if (d > RETRY_MAX_S) d = RETRY_MAX_S;
    return d <= left ? d : left;
}

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_for(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int api_client_request_retry(api_client *c, const char *method, const char *path,
                             const char *json_body, const char *idempotency_key, double retry_for,
                             api_client_retry_notify *notify, void *ctx, api_client_response *resp,
                             int *failure, char *err, size_t errlen)
{
    char header[sizeof "Idempotency-Key: " + KEY_MAX];
    if (idempotency_key != NULL) {
        if (failure) *failure = 0;
        if (api_client_idempotency_key_check(idempotency_key, err, errlen) != 0) return -EINVAL;
        snprintf(header, sizeof header, "Idempotency-Key: %s", idempotency_key);
    }
    const char *extra = idempotency_key != NULL ? header : NULL;
    double start = monotonic_seconds();
    for (unsigned attempt = 1;; attempt++) {
        int rc = perform(c, method, path, json_body, extra, NULL, resp, failure, err, errlen);
        double delay =
            api_client_retry_delay(resp, attempt, monotonic_seconds() - start, retry_for);
        if (delay < 0) return rc;
        if (notify != NULL) notify(ctx, resp, attempt, delay);
        sleep_for(delay);
    }
}

json_t *api_client_response_json(const api_client_response *resp)
{
    if (resp->body == NULL || resp->body_len == 0) return NULL;
    json_t *j = json_loadb(resp->body, resp->body_len, 0, NULL);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Copies the start of `s` (n bytes) into out[len] with control characters as spaces. */
static void snippet(const char *s, size_t n, char *out, size_t len)
{
    if (len == 0) return;
    size_t k = 0, i = 0;
    for (; i < n && k + 1 < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            if (k > 0 && out[k - 1] == ' ') continue; /* a CR LF or tab run becomes one space */
            ch = ' ';
        }
        out[k++] = (char)ch;
    }
    if (i < n && len >= 4) { /* cut: end with "..." */
        if (k > len - 4) k = len - 4;
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = '\0';
}

void api_client_response_error(const api_client_response *resp, char *code, size_t codelen,
                               char *msg, size_t msglen)
{
    json_t *j = api_client_response_json(resp);
    json_t *e = j ? json_object_get(j, "error") : NULL;
    const char *c = e ? json_string_value(json_object_get(e, "code")) : NULL;
    const char *m = e ? json_string_value(json_object_get(e, "message")) : NULL;
    if (c != NULL && m != NULL) {
        snippet(c, strlen(c), code, codelen);
        snippet(m, strlen(m), msg, msglen);
    } else {
        snprintf(code, codelen, "http_%ld", resp->status);
        char start[160];
        size_t n = resp->body ? resp->body_len : 0;
        snippet(resp->body ? resp->body : "", n, start, sizeof start);
        if (n == 0)
            snprintf(msg, msglen, "the server answered HTTP %ld with an empty body", resp->status);
        else if (j != NULL)
            snprintf(msg, msglen, "the server answered HTTP %ld with unexpected JSON: %s",
                     resp->status, start);
        else
            snprintf(msg, msglen, "the server answered HTTP %ld without a JSON error: %s",
                     resp->status, start);
    }
    json_decref(j);
}
