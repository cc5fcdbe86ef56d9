/* api_client.c - HTTPS requests to antennad through one reused libcurl handle.
 * Must never print, exit or follow redirects; transport errors are returned as messages. */
#include "api_client.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#ifndef ANTENNA_VERSION
#define ANTENNA_VERSION "0.1.0"
#endif

#define BODY_MAX ((size_t)64 * 1024 * 1024)

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

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    transfer *t = userdata;
    size_t n = size * nmemb;
    static const char name[] = "x-antenna-job-state:";
    const size_t name_len = sizeof name - 1;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        t->resp->job_state[0] = '\0'; /* a new answer (after 1xx) starts */
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

int api_client_request(api_client *c, const char *method, const char *path, const char *json_body,
                       FILE *sink, api_client_response *resp, int *failure, char *err,
                       size_t errlen)
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
    if (rc == -ENOMEM) snprintf(err, errlen, "out of memory");
    free(url);
    return rc;
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
