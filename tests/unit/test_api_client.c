/* test_api_client.c - unit tests for client/api_client: error descriptions from any server answer,
 * transport failures (refused connection, a peer that does not speak TLS, a bad CA file), the
 * submit retry policy (pure), idempotency keys, and retries against a scripted TLS server thread
 * that drops connections or answers 503 - through the library and through the `antenna` binary
 * (BUILD/antenna, found next to this test's BUILD/tests/ directory; skipped when absent).
 * Needs no antennad: the only peers are sockets this test opens on 127.0.0.1. Run from the
 * repository root (it makes its certificate with deploy/make-cert.sh).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/ssl.h>

#include "api_client.h"

static char cert_dir[PATH_MAX];
static char ca_file[PATH_MAX + 16];
static char cert_file[PATH_MAX + 16];
static char key_file[PATH_MAX + 16];
static char antenna_bin[PATH_MAX + 16]; /* BUILD/antenna, "" when not found */

static api_client_response answer(long status, const char *body)
{
    api_client_response r;
    api_client_response_init(&r);
    r.status = status;
    r.body = strdup(body);
    r.body_len = strlen(body);
    return r;
}

static void error_comes_from_the_api_error_object(void **state)
{
    (void)state;
    api_client_response r =
        answer(400, "{\"error\":{\"code\":\"invalid_gpus\",\"message\":\"gpus must "
                    "be between 0 and 8 (got 12); ask for fewer GPUs\"}}");
    char code[64], msg[256];
    api_client_response_error(&r, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "invalid_gpus");
    assert_string_equal(msg, "gpus must be between 0 and 8 (got 12); ask for fewer GPUs");
    api_client_response_close(&r);
}

static void error_message_cannot_carry_terminal_escapes(void **state)
{
    (void)state;
    api_client_response r = answer(
        409, "{\"error\":{\"code\":\"con\\u001bflict\",\"message\":\"job ended\\u001b[2J\\n\"}}");
    char code[64], msg[256];
    api_client_response_error(&r, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "con flict");
    assert_string_equal(msg, "job ended [2J ");
    api_client_response_close(&r);
}

static void error_of_a_non_json_answer_quotes_the_body_safely(void **state)
{
    (void)state;
    api_client_response r = answer(502, "<html>\r\n<body>Bad\tgateway</body></html>");
    char code[64], msg[256];
    api_client_response_error(&r, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "http_502");
    assert_string_equal(msg, "the server answered HTTP 502 without a JSON error: <html> <body>Bad "
                             "gateway</body></html>");
    api_client_response_close(&r);
}

static void error_of_an_empty_or_odd_json_answer_says_so(void **state)
{
    (void)state;
    char code[64], msg[256];
    api_client_response r = answer(503, "");
    api_client_response_error(&r, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "http_503");
    assert_non_null(strstr(msg, "empty body"));
    api_client_response_close(&r);

    r = answer(500, "{\"error\":\"boom\"}");
    api_client_response_error(&r, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "http_500");
    assert_non_null(strstr(msg, "unexpected JSON"));
    api_client_response_close(&r);

    api_client_response_init(&r); /* no body at all */
    r.status = 404;
    api_client_response_error(&r, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "http_404");
}

static void error_of_a_huge_body_is_cut(void **state)
{
    (void)state;
    char *big = malloc(100001);
    memset(big, 'x', 100000);
    big[100000] = '\0';
    api_client_response r = answer(500, big);
    free(big);
    char code[64], msg[256];
    api_client_response_error(&r, code, sizeof code, msg, sizeof msg);
    assert_true(strlen(msg) < sizeof msg);
    assert_non_null(strstr(msg, "..."));
    api_client_response_close(&r);
}

static void response_json_returns_objects_only(void **state)
{
    (void)state;
    api_client_response r = answer(200, "{\"id\":7}");
    json_t *j = api_client_response_json(&r);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 7);
    json_decref(j);
    api_client_response_close(&r);

    static const char *const not_objects[] = {"[1,2]", "\"x\"", "42", "<html>", "{\"a\":", ""};
    for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0]; i++) {
        r = answer(200, not_objects[i]);
        assert_null(api_client_response_json(&r));
        api_client_response_close(&r);
    }
}

/* Binds a TCP socket on 127.0.0.1 (listening or not) and returns it; *port gets its port. */
static int local_socket(bool listening, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    if (listening) assert_int_equal(listen(fd, 4), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void refused_connection_names_the_url_and_the_setting(void **state)
{
    (void)state;
    int port;
    int fd = local_socket(false, &port); /* bound, not listening: connections are refused */
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", port);
    api_client *c = NULL;
    char err[1024] = "";
    assert_int_equal(api_client_new(url, "ant_x", NULL, &c, err, sizeof err), 0);
    char base[64];
    snprintf(base, sizeof base, "https://127.0.0.1:%d", port);
    assert_string_equal(api_client_url(c), base); /* trailing slash dropped */
    api_client_response r;
    api_client_response_init(&r);
    int failure = 0;
    int rc = api_client_request(c, "GET", "/v1/jobs", NULL, NULL, &r, &failure, err, sizeof err);
    assert_int_equal(rc, -ECONNREFUSED);
    assert_int_equal(failure, API_CLIENT_FAIL_CONNECT);
    char want[96];
    snprintf(want, sizeof want, "cannot reach https://127.0.0.1:%d/v1/jobs", port);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "ANTENNA_URL"));
    assert_int_equal(r.status, 0);
    api_client_response_close(&r);
    api_client_free(c);
    close(fd);
}

/* Forks a peer that accepts one connection on fd, answers plain HTTP (not TLS) and exits. */
static pid_t plain_http_peer(int fd)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int c = accept(fd, NULL, NULL);
        if (c >= 0) {
            char buf[512];
            ssize_t n = read(c, buf, sizeof buf);
            (void)n;
            static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            n = write(c, reply, sizeof reply - 1);
            close(c);
        }
        _exit(0);
    }
    return pid;
}

static void peer_without_tls_is_a_tls_error_hinting_at_antenna_ca(void **state)
{
    (void)state;
    int port;
    int fd = local_socket(true, &port);
    pid_t pid = plain_http_peer(fd);
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%d", port);
    api_client *c = NULL;
    char err[1024] = "";
    assert_int_equal(api_client_new(url, "ant_x", NULL, &c, err, sizeof err), 0);
    api_client_response r;
    api_client_response_init(&r);
    int failure = 0;
    int rc = api_client_request(c, "GET", "/v1/jobs", NULL, NULL, &r, &failure, err, sizeof err);
    assert_int_equal(rc, -EPROTO);
    assert_int_equal(failure, API_CLIENT_FAIL_TLS);
    assert_non_null(strstr(err, "TLS error with https://127.0.0.1:"));
    assert_non_null(strstr(err, "ANTENNA_CA"));
    api_client_response_close(&r);
    api_client_free(c);
    close(fd);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void unreadable_ca_file_is_named(void **state)
{
    (void)state;
    int port;
    int fd = local_socket(true, &port);
    pid_t pid = plain_http_peer(fd);
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%d", port);
    api_client *c = NULL;
    char err[1024] = "";
    assert_int_equal(
        api_client_new(url, "ant_x", "/nonexistent/antenna-ca.pem", &c, err, sizeof err), 0);
    api_client_response r;
    api_client_response_init(&r);
    int failure = 0;
    int rc = api_client_request(c, "GET", "/healthz", NULL, NULL, &r, &failure, err, sizeof err);
    assert_int_equal(rc, -EPROTO);
    assert_int_equal(failure, API_CLIENT_FAIL_TLS);
    assert_non_null(strstr(err, "/nonexistent/antenna-ca.pem"));
    api_client_response_close(&r);
    api_client_free(c);
    close(fd);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* ---- the retry policy (pure) ------------------------------------------------------------- */

static api_client_response lost(int net)
{
    api_client_response r;
    api_client_response_init(&r);
    r.net = net;
    return r;
}

static api_client_response status(long code, long retry_after)
{
    api_client_response r;
    api_client_response_init(&r);
    r.status = code;
    r.retry_after = retry_after;
    return r;
}

static void retry_policy_retries_lost_answers_and_503_only(void **state)
{
    (void)state;
    static const int retried[] = {API_CLIENT_NET_REFUSED, API_CLIENT_NET_UNREACHABLE,
                                  API_CLIENT_NET_TIMEOUT, API_CLIENT_NET_LOST,
                                  API_CLIENT_NET_EMPTY,   API_CLIENT_NET_CUT};
    for (size_t i = 0; i < sizeof retried / sizeof retried[0]; i++) {
        api_client_response r = lost(retried[i]);
        assert_true(api_client_retry_delay(&r, 1, 0.0, 60.0) == 1.0);
    }
    static const int final[] = {API_CLIENT_NET_RESOLVE, API_CLIENT_NET_TLS, API_CLIENT_NET_OTHER};
    for (size_t i = 0; i < sizeof final / sizeof final[0]; i++) {
        api_client_response r = lost(final[i]);
        assert_true(api_client_retry_delay(&r, 1, 0.0, 60.0) < 0);
    }
    static const long statuses[] = {200, 201, 202, 400, 401, 403, 404,
                                    409, 413, 422, 429, 500, 502, 504};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        api_client_response r = status(statuses[i], 5); /* even with a Retry-After */
        assert_true(api_client_retry_delay(&r, 1, 0.0, 60.0) < 0);
    }
    api_client_response r = status(503, -1);
    assert_true(api_client_retry_delay(&r, 1, 0.0, 60.0) == 1.0);
}

static void retry_policy_backs_off_exponentially_within_the_budget(void **state)
{
    (void)state;
    api_client_response r = lost(API_CLIENT_NET_EMPTY);
    static const double schedule[] = {1, 2, 4, 8, 16, 16, 16};
    for (unsigned a = 1; a <= 7; a++)
        assert_true(api_client_retry_delay(&r, a, 0.0, 1000.0) == schedule[a - 1]);
    assert_true(api_client_retry_delay(&r, 1000000, 0.0, 1000.0) == 16.0); /* no overflow */
    /* Run the schedule with a 60 s budget: attempts start at 0 1 3 7 15 31 47 and a last one at
     * 60 (the 16 s wait shortened to 13 s), then it stops. */
    double t = 0.0;
    unsigned attempts = 1;
    double d;
    while ((d = api_client_retry_delay(&r, attempts, t, 60.0)) >= 0) {
        assert_true(d > 0);
        t += d;
        attempts++;
        assert_true(attempts < 100);
    }
    assert_int_equal(attempts, 8);
    assert_true(t == 60.0);
    /* No budget, or none left: the answer is final. */
    assert_true(api_client_retry_delay(&r, 1, 0.0, 0.0) < 0);
    assert_true(api_client_retry_delay(&r, 1, 0.0, -1.0) < 0);
    assert_true(api_client_retry_delay(&r, 3, 61.0, 60.0) < 0);
    assert_true(api_client_retry_delay(&r, 3, 59.5, 60.0) == 0.5);
}

static void retry_policy_honours_retry_after_within_bounds(void **state)
{
    (void)state;
    api_client_response r = status(503, 5);
    assert_true(api_client_retry_delay(&r, 1, 0.0, 60.0) == 5.0);
    assert_true(api_client_retry_delay(&r, 6, 0.0, 60.0) == 5.0); /* not the backoff */
    r.retry_after = 0;
    assert_true(api_client_retry_delay(&r, 1, 0.0, 60.0) == 1.0); /* never a busy loop */
    r.retry_after = 3600;
    assert_true(api_client_retry_delay(&r, 1, 0.0, 60.0) == 30.0); /* capped */
    r.retry_after = 10;
    assert_true(api_client_retry_delay(&r, 1, 55.0, 60.0) < 0); /* does not fit: stop */
    assert_true(api_client_retry_delay(&r, 1, 50.0, 60.0) == 10.0);
}

static void curl_results_map_to_retry_classes(void **state)
{
    (void)state;
    static const struct {
        CURLcode code;
        int os_errno;
        int net;
    } cases[] = {
        {CURLE_OK, 0, API_CLIENT_NET_NONE},
        {CURLE_COULDNT_CONNECT, ECONNREFUSED, API_CLIENT_NET_REFUSED},
        {CURLE_COULDNT_CONNECT, 0, API_CLIENT_NET_REFUSED},
        {CURLE_COULDNT_CONNECT, EHOSTUNREACH, API_CLIENT_NET_UNREACHABLE},
        {CURLE_COULDNT_CONNECT, ENETUNREACH, API_CLIENT_NET_UNREACHABLE},
        {CURLE_OPERATION_TIMEDOUT, 0, API_CLIENT_NET_TIMEOUT},
        {CURLE_SEND_ERROR, EPIPE, API_CLIENT_NET_LOST},
        {CURLE_RECV_ERROR, ECONNRESET, API_CLIENT_NET_LOST},
        {CURLE_RECV_ERROR, 0, API_CLIENT_NET_LOST}, /* a TLS error mid-answer */
        {CURLE_GOT_NOTHING, 0, API_CLIENT_NET_EMPTY},
        {CURLE_PARTIAL_FILE, 0, API_CLIENT_NET_CUT},
        {CURLE_SSL_CONNECT_ERROR, ECONNRESET, API_CLIENT_NET_LOST},
        {CURLE_SSL_CONNECT_ERROR, 0, API_CLIENT_NET_TLS}, /* e.g. no TLS on that port */
        {CURLE_PEER_FAILED_VERIFICATION, 0, API_CLIENT_NET_TLS},
        {CURLE_SSL_CACERT_BADFILE, 0, API_CLIENT_NET_TLS},
        {CURLE_COULDNT_RESOLVE_HOST, 0, API_CLIENT_NET_RESOLVE},
        {CURLE_WEIRD_SERVER_REPLY, 0, API_CLIENT_NET_OTHER},
        {CURLE_OUT_OF_MEMORY, 0, API_CLIENT_NET_OTHER},
        {CURLE_URL_MALFORMAT, 0, API_CLIENT_NET_OTHER},
        {CURLE_WRITE_ERROR, 0, API_CLIENT_NET_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = api_client_net_classify((int)cases[i].code, cases[i].os_errno);
        if (got != cases[i].net)
            fail_msg("curl code %d (errno %d): got class %d, want %d", (int)cases[i].code,
                     cases[i].os_errno, got, cases[i].net);
    }
    assert_string_equal(api_client_net_name(API_CLIENT_NET_REFUSED), "connection refused");
    assert_string_equal(api_client_net_name(API_CLIENT_NET_EMPTY), "empty reply");
    assert_non_null(api_client_net_name(12345));
}

/* ---- idempotency keys ------------------------------------------------------------------- */

static bool is_fresh_key(const char *k)
{
    if (strlen(k) != API_CLIENT_KEY_LEN) return false;
    for (const char *p = k; *p; p++)
        if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f')) return false;
    return true;
}

static void idempotency_keys_are_fresh_128_bit_hex(void **state)
{
    (void)state;
    char a[API_CLIENT_KEY_LEN + 1], b[64];
    assert_int_equal(api_client_idempotency_key_new(a, sizeof a), 0);
    assert_int_equal(api_client_idempotency_key_new(b, sizeof b), 0);
    assert_true(is_fresh_key(a));
    assert_true(is_fresh_key(b));
    assert_string_not_equal(a, b);
    char err[256];
    assert_int_equal(api_client_idempotency_key_check(a, err, sizeof err), 0);
    char small[API_CLIENT_KEY_LEN];
    assert_int_equal(api_client_idempotency_key_new(small, sizeof small), -EINVAL);
    /* 64 keys: every hex digit turns up, so the bits are spread (not a fixed pattern). */
    bool seen[16] = {false};
    for (int i = 0; i < 64; i++) {
        assert_int_equal(api_client_idempotency_key_new(a, sizeof a), 0);
        for (const char *p = a; *p; p++)
            seen[isdigit((unsigned char)*p) ? *p - '0' : *p - 'a' + 10] = true;
    }
    for (int i = 0; i < 16; i++)
        assert_true(seen[i]);
}

static void idempotency_key_check_follows_antennad(void **state)
{
    (void)state;
    char err[256], key[300];
    assert_int_equal(api_client_idempotency_key_check("x", err, sizeof err), 0);
    assert_int_equal(api_client_idempotency_key_check("run-42_retry.2024:~!{}", err, sizeof err),
                     0);
    memset(key, 'k', 255);
    key[255] = '\0';
    assert_int_equal(api_client_idempotency_key_check(key, err, sizeof err), 0);
    key[255] = 'k';
    key[256] = '\0';
    assert_int_equal(api_client_idempotency_key_check(key, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "256 characters"));
    assert_int_equal(api_client_idempotency_key_check("", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(api_client_idempotency_key_check("two words", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "a space at position 4"));
    static const char *const bad[] = {"tab\there", "nl\n", "del\x7f", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(api_client_idempotency_key_check(bad[i], err, sizeof err), -EINVAL);
        assert_non_null(strstr(err, "printable ASCII"));
    }
}

/* ---- a scripted TLS server thread ------------------------------------------------------ */

enum step_kind {
    STEP_DROP,   /* read the request, close without answering (as if antennad died) */
    STEP_RESET,  /* read the request, reset the connection */
    STEP_ANSWER, /* answer with `answer` (status line, headers, blank line, body) */
};

typedef struct step {
    enum step_kind kind;
    const char *answer;
} step;

#define MAX_STEPS 4
#define REQ_MAX   16384

/* One server: accepts one connection per step, records each request. The listening socket is
 * closed once the steps are done, so any further attempt is refused rather than left hanging. */
typedef struct server {
    int lfd, port;
    SSL_CTX *ctx;
    pthread_t thread;
    step steps[MAX_STEPS];
    int nsteps;
    char req[MAX_STEPS][REQ_MAX];
    int nreq;
} server;

/* Reads one HTTP request (headers and Content-Length bytes of body) into buf. */
static void read_request(SSL *ssl, char *buf, size_t cap)
{
    size_t n = 0;
    size_t want = 0;
    for (;;) {
        int k = SSL_read(ssl, buf + n, (int)(cap - 1 - n));
        if (k <= 0) break;
        n += (size_t)k;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL) continue;
        if (want == 0) {
            want = (size_t)(end + 4 - buf);
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            if (cl != NULL && cl < end) want += (size_t)strtoul(cl + 17, NULL, 10);
        }
        if (n >= want || n + 1 >= cap) break;
    }
    buf[n] = '\0';
}

static void *server_main(void *arg)
{
    server *s = arg;
    for (int i = 0; i < s->nsteps; i++) {
        struct pollfd p = {.fd = s->lfd, .events = POLLIN};
        if (poll(&p, 1, 15000) != 1) break; /* the client never came: give up */
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) break;
        struct timeval tv = {10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        SSL *ssl = SSL_new(s->ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
            read_request(ssl, s->req[s->nreq], sizeof s->req[s->nreq]);
            s->nreq++;
            if (s->steps[i].kind == STEP_ANSWER) {
                const char *a = s->steps[i].answer;
                SSL_write(ssl, a, (int)strlen(a));
                SSL_shutdown(ssl);
            } else if (s->steps[i].kind == STEP_RESET) {
                struct linger l = {1, 0};
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            }
        }
        SSL_free(ssl);
        close(fd);
    }
    close(s->lfd);
    s->lfd = -1;
    return NULL;
}

/* Starts a server thread on 127.0.0.1 that plays the n `steps`, one connection each. */
static server *server_start(const step *steps, int n)
{
    server *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_true(n <= MAX_STEPS);
    memcpy(s->steps, steps, (size_t)n * sizeof *steps);
    s->nsteps = n;
    s->lfd = local_socket(true, &s->port);
    s->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(s->ctx);
    assert_int_equal(SSL_CTX_use_certificate_chain_file(s->ctx, cert_file), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(s->ctx, key_file, SSL_FILETYPE_PEM), 1);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
    return s;
}

/* Waits for the server to finish its steps and frees it; returns how many requests it read. */
static int server_stop(server *s, char req[][REQ_MAX])
{
    pthread_join(s->thread, NULL);
    int n = s->nreq;
    for (int i = 0; i < n; i++)
        memcpy(req[i], s->req[i], REQ_MAX);
    SSL_CTX_free(s->ctx);
    free(s);
    return n;
}

/* Copies the value of header `name` in raw request `req` into out[len]; "" when absent. */
static const char *header_of(const char *req, const char *name, char *out, size_t len)
{
    out[0] = '\0';
    char pat[64];
    snprintf(pat, sizeof pat, "\r\n%s:", name);
    const char *h = strcasestr(req, pat);
    const char *end = strstr(req, "\r\n\r\n");
    if (h == NULL || (end != NULL && h > end)) return out;
    h += strlen(pat);
    while (*h == ' ')
        h++;
    size_t n = strcspn(h, "\r\n");
    snprintf(out, len, "%.*s", (int)n, h);
    return out;
}

/* Formats an HTTP answer into buf[len]: `status` ("202 Accepted"), extra header lines (each ending
 * in CRLF, or ""), then a Content-Length for `body` and the body. */
static const char *reply(char *buf, size_t len, const char *status, const char *headers,
                         const char *body)
{
    int n = snprintf(buf, len,
                     "HTTP/1.1 %s\r\n%sContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\nConnection: close\r\n\r\n%s",
                     status, headers, strlen(body), body);
    assert_true(n > 0 && (size_t)n < len);
    return buf;
}

static char job_202[256];

static api_client *client_for(const server *s)
{
    char url[64], err[512];
    snprintf(url, sizeof url, "https://127.0.0.1:%d", s->port);
    api_client *c = NULL;
    assert_int_equal(api_client_new(url, "ant_x", ca_file, &c, err, sizeof err), 0);
    return c;
}

/* Records the calls of api_client_request_retry's notify. */
typedef struct notes {
    int calls;
    int net[8];
    long status[8];
    double delay[8];
} notes;

static void note(void *ctx, const api_client_response *r, unsigned attempt, double delay)
{
    notes *n = ctx;
    assert_int_equal(attempt, n->calls + 1);
    if (n->calls < 8) {
        n->net[n->calls] = r->net;
        n->status[n->calls] = r->status;
        n->delay[n->calls] = delay;
    }
    n->calls++;
}

static const char job_body[] = "{\"script\":\"#!/bin/sh\\necho hi\\n\"}";

static void lost_answers_are_retried_with_the_same_key(void **state)
{
    (void)state;
    const step steps[] = {{STEP_DROP, NULL}, {STEP_RESET, NULL}, {STEP_ANSWER, job_202}};
    server *s = server_start(steps, 3);
    api_client *c = client_for(s);
    char key[API_CLIENT_KEY_LEN + 1], err[1024] = "";
    assert_int_equal(api_client_idempotency_key_new(key, sizeof key), 0);
    api_client_response r;
    api_client_response_init(&r);
    notes n = {0};
    int failure = -1;
    int rc = api_client_request_retry(c, "POST", "/v1/jobs", job_body, key, 20.0, note, &n, &r,
                                      &failure, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(failure, 0);
    assert_int_equal(r.status, 202);
    assert_int_equal(r.net, API_CLIENT_NET_NONE);
    assert_string_equal(r.body, "{\"id\":42,\"state\":\"queued\"}");
    assert_int_equal(n.calls, 2);
    assert_true(n.net[0] == API_CLIENT_NET_EMPTY || n.net[0] == API_CLIENT_NET_LOST);
    assert_int_equal(n.net[1], API_CLIENT_NET_LOST);
    assert_true(n.delay[0] == 1.0 && n.delay[1] == 2.0);
    api_client_response_close(&r);
    api_client_free(c);

    static char req[MAX_STEPS][REQ_MAX];
    assert_int_equal(server_stop(s, req), 3);
    for (int i = 0; i < 3; i++) {
        char got[300];
        assert_non_null(strstr(req[i], "POST /v1/jobs HTTP/1.1\r\n"));
        assert_string_equal(header_of(req[i], "Idempotency-Key", got, sizeof got), key);
        assert_string_equal(header_of(req[i], "Authorization", got, sizeof got), "Bearer ant_x");
        assert_non_null(strstr(req[i], job_body)); /* the same body each time */
    }
}

static void answer_503_waits_retry_after_then_gets_the_job(void **state)
{
    (void)state;
    char a503[512];
    const step steps[] = {
        {STEP_ANSWER,
         reply(a503, sizeof a503, "503 Service Unavailable", "Retry-After: 1\r\n",
               "{\"error\":{\"code\":\"unavailable\",\"message\":\"antennad is stopping\"}}")},
        {STEP_ANSWER, job_202},
    };
    server *s = server_start(steps, 2);
    api_client *c = client_for(s);
    char err[1024] = "";
    api_client_response r;
    api_client_response_init(&r);
    notes n = {0};
    int rc = api_client_request_retry(c, "POST", "/v1/jobs", job_body, "my-key-1", 20.0, note, &n,
                                      &r, NULL, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, 202);
    assert_int_equal(n.calls, 1);
    assert_int_equal(n.status[0], 503);
    assert_true(n.delay[0] == 1.0);
    api_client_response_close(&r);
    api_client_free(c);
    static char req[MAX_STEPS][REQ_MAX];
    assert_int_equal(server_stop(s, req), 2);
    char k0[300], k1[300];
    assert_string_equal(header_of(req[0], "Idempotency-Key", k0, sizeof k0), "my-key-1");
    assert_string_equal(header_of(req[1], "Idempotency-Key", k1, sizeof k1), "my-key-1");
}

static void other_answers_are_final(void **state)
{
    (void)state;
    /* 422 idempotency_key_reused, with a Retry-After (an HTTP date in the past) that must not
     * make it retried; then a 500 with a date 100 s ahead. */
    char a422[512], a500[512], date[64], hdr[96];
    time_t ahead = time(NULL) + 100;
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime(&ahead));
    snprintf(hdr, sizeof hdr, "Retry-After: %s\r\n", date);
    const step steps[] = {
        {STEP_ANSWER, reply(a422, sizeof a422, "422 Unprocessable Entity",
                            "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n",
                            "{\"error\":{\"code\":\"idempotency_key_reused\",\"message\":\"x\"}}")},
        {STEP_ANSWER, reply(a500, sizeof a500, "500 Internal Server Error", hdr, "")},
    };
    server *s = server_start(steps, 2);
    api_client *c = client_for(s);
    char err[1024] = "";
    api_client_response r;
    api_client_response_init(&r);
    notes n = {0};
    int rc = api_client_request_retry(c, "POST", "/v1/jobs", job_body, "k", 20.0, note, &n, &r,
                                      NULL, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, 422);
    assert_int_equal(r.retry_after, 0);
    rc = api_client_request_retry(c, "GET", "/v1/jobs", NULL, NULL, 20.0, note, &n, &r, NULL, err,
                                  sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, 500);
    assert_true(r.retry_after >= 97 && r.retry_after <= 100);
    assert_int_equal(n.calls, 0);
    api_client_response_close(&r);
    api_client_free(c);
    static char req[MAX_STEPS][REQ_MAX];
    assert_int_equal(server_stop(s, req), 2);
    char got[300];
    assert_string_equal(header_of(req[1], "Idempotency-Key", got, sizeof got), ""); /* no key */
}

static void refused_connection_is_retried_for_the_budget_only(void **state)
{
    (void)state;
    int port;
    int fd = local_socket(false, &port); /* bound, not listening: connections are refused */
    char url[64], err[1024] = "";
    snprintf(url, sizeof url, "https://127.0.0.1:%d", port);
    api_client *c = NULL;
    assert_int_equal(api_client_new(url, "ant_x", NULL, &c, err, sizeof err), 0);
    api_client_response r;
    api_client_response_init(&r);
    notes n = {0};
    int failure = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = api_client_request_retry(c, "POST", "/v1/jobs", job_body, "k", 1.5, note, &n, &r,
                                      &failure, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_int_equal(rc, -ECONNREFUSED);
    assert_int_equal(failure, API_CLIENT_FAIL_CONNECT);
    assert_int_equal(r.net, API_CLIENT_NET_REFUSED);
    assert_non_null(strstr(err, "cannot reach")); /* the last attempt's message, as without retry */
    assert_int_equal(n.calls, 2); /* after 1 s, then the 2 s wait cut to what is left */
    assert_true(n.delay[0] == 1.0 && n.delay[1] > 0.3 && n.delay[1] < 0.55);
    assert_true(took >= 1.45 && took < 3.0);
    /* retry_for 0: one attempt, no notify. */
    n.calls = 0;
    rc = api_client_request_retry(c, "POST", "/v1/jobs", job_body, "k", 0, note, &n, &r, &failure,
                                  err, sizeof err);
    assert_int_equal(rc, -ECONNREFUSED);
    assert_int_equal(n.calls, 0);
    api_client_response_close(&r);
    api_client_free(c);
    close(fd);
}

static void bad_key_is_refused_before_anything_is_sent(void **state)
{
    (void)state;
    int port;
    int fd = local_socket(false, &port);
    char url[64], err[1024] = "";
    snprintf(url, sizeof url, "https://127.0.0.1:%d", port);
    api_client *c = NULL;
    assert_int_equal(api_client_new(url, "ant_x", NULL, &c, err, sizeof err), 0);
    api_client_response r;
    api_client_response_init(&r);
    int failure = -1;
    int rc = api_client_request_retry(c, "POST", "/v1/jobs", job_body, "has space", 10.0, NULL,
                                      NULL, &r, &failure, err, sizeof err);
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(failure, 0);
    assert_non_null(strstr(err, "space"));
    api_client_response_close(&r);
    api_client_free(c);
    close(fd);
}

static void tls_errors_are_not_retried(void **state)
{
    (void)state;
    int port;
    int fd = local_socket(true, &port);
    pid_t pid = plain_http_peer(fd);
    char url[64], err[1024] = "";
    snprintf(url, sizeof url, "https://127.0.0.1:%d", port);
    api_client *c = NULL;
    assert_int_equal(api_client_new(url, "ant_x", NULL, &c, err, sizeof err), 0);
    api_client_response r;
    api_client_response_init(&r);
    notes n = {0};
    int failure = 0;
    int rc = api_client_request_retry(c, "POST", "/v1/jobs", job_body, "k", 30.0, note, &n, &r,
                                      &failure, err, sizeof err);
    assert_int_equal(rc, -EPROTO);
    assert_int_equal(r.net, API_CLIENT_NET_TLS);
    assert_int_equal(n.calls, 0);
    api_client_response_close(&r);
    api_client_free(c);
    close(fd);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* ---- the antenna binary -------------------------------------------------------------------- */

static char tmp_dir[PATH_MAX];

/* Runs BUILD/antenna with argv (NULL-terminated, without argv[0]) against `port`; its stdout and
 * stderr go to out[outlen] and errout[errlen]. Returns its exit status. */
static int run_antenna(int port, const char *const *args, char *out, size_t outlen, char *errout,
                       size_t errlen)
{
    char url[64], ca[PATH_MAX + 32], cfg[PATH_MAX + 32], o[PATH_MAX + 16], e[PATH_MAX + 16];
    snprintf(url, sizeof url, "ANTENNA_URL=https://127.0.0.1:%d", port);
    snprintf(ca, sizeof ca, "ANTENNA_CA=%s", ca_file);
    snprintf(cfg, sizeof cfg, "ANTENNA_CONFIG=%s/no-config", tmp_dir);
    snprintf(o, sizeof o, "%s/out", tmp_dir);
    snprintf(e, sizeof e, "%s/err", tmp_dir);
    char *envp[] = {url, ca, cfg, "ANTENNA_TOKEN=ant_test", "PATH=/usr/bin:/bin", NULL};
    const char *argv[16] = {antenna_bin};
    int k = 1;
    for (; args[k - 1] != NULL && k < 15; k++)
        argv[k] = args[k - 1];
    argv[k] = NULL;
    int ofd = open(o, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int efd = open(e, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(ofd >= 0 && efd >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(ofd, 1);
        dup2(efd, 2);
        execve(antenna_bin, (char *const *)argv, envp);
        _exit(127);
    }
    close(ofd);
    close(efd);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    FILE *f = fopen(o, "r");
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    fclose(f);
    f = fopen(e, "r");
    n = fread(errout, 1, errlen - 1, f);
    errout[n] = '\0';
    fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *script_file(void)
{
    static char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/train.sh", tmp_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("#!/bin/bash\n#SBATCH --time=10\necho hi\n", f);
    fclose(f);
    return path;
}

static void cli_submit_resends_a_lost_job_with_the_same_fresh_key(void **state)
{
    (void)state;
    if (antenna_bin[0] == '\0') skip();
    const step steps[] = {{STEP_DROP, NULL}, {STEP_ANSWER, job_202}};
    server *s = server_start(steps, 2);
    const char *args[] = {"submit", script_file(), NULL};
    char out[4096], err[4096];
    int rc = run_antenna(s->port, args, out, sizeof out, err, sizeof err);
    static char req[MAX_STEPS][REQ_MAX];
    int nreq = server_stop(s, req);
    if (rc != 0) fail_msg("antenna exited %d; stderr: %s", rc, err);
    assert_string_equal(out, "Submitted job 42\n");
    assert_int_equal(nreq, 2);
    char k0[300], k1[300];
    header_of(req[0], "Idempotency-Key", k0, sizeof k0);
    header_of(req[1], "Idempotency-Key", k1, sizeof k1);
    assert_true(is_fresh_key(k0));
    assert_string_equal(k0, k1);
    char want[400];
    snprintf(want, sizeof want, "retrying in 1 s with the same Idempotency-Key %s\n", k0);
    assert_non_null(strstr(err, "antenna: no answer from antennad ("));
    assert_non_null(strstr(err, want));
    assert_null(strchr(strchr(err, '\n') + 1, '\n')); /* exactly one line */
    /* A second submit gets another key. */
    const step again[] = {{STEP_ANSWER, job_202}};
    s = server_start(again, 1);
    rc = run_antenna(s->port, args, out, sizeof out, err, sizeof err);
    assert_int_equal(server_stop(s, req), 1);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
    header_of(req[0], "Idempotency-Key", k1, sizeof k1);
    assert_true(is_fresh_key(k1));
    assert_string_not_equal(k0, k1);
}

static void cli_submit_takes_a_key_and_dry_run_sends_none(void **state)
{
    (void)state;
    if (antenna_bin[0] == '\0') skip();
    char quote[256];
    const step steps[] = {
        {STEP_ANSWER, job_202},
        {STEP_ANSWER, reply(quote, sizeof quote, "200 OK", "", "{\"admitted\":true}")},
    };
    server *s = server_start(steps, 2);
    const char *script = script_file();
    const char *keyed[] = {"submit", "--idempotency-key=nightly-2024-05-01", script, NULL};
    char out[4096], err[4096];
    int rc = run_antenna(s->port, keyed, out, sizeof out, err, sizeof err);
    if (rc != 0) fail_msg("antenna exited %d; stderr: %s", rc, err);
    const char *dry[] = {"submit", "--dry-run", "--json", script, NULL};
    rc = run_antenna(s->port, dry, out, sizeof out, err, sizeof err);
    if (rc != 0) fail_msg("antenna --dry-run exited %d; stderr: %s", rc, err);
    static char req[MAX_STEPS][REQ_MAX];
    assert_int_equal(server_stop(s, req), 2);
    char got[300];
    assert_string_equal(header_of(req[0], "Idempotency-Key", got, sizeof got),
                        "nightly-2024-05-01");
    assert_string_equal(header_of(req[1], "Idempotency-Key", got, sizeof got), "");
    assert_non_null(strstr(req[1], "\"dry_run\":true"));
}

static void cli_submit_refuses_bad_flags(void **state)
{
    (void)state;
    if (antenna_bin[0] == '\0') skip();
    const char *script = script_file();
    static const struct {
        const char *flag, *value, *says;
    } cases[] = {
        {"--idempotency-key", "two words", "a space at position 4"},
        {"--idempotency-key", "", "empty"},
        {"--retry-for", "-1", "--retry-for must be a whole number of seconds"},
        {"--retry-for", "3601", "to 3600"},
        {"--retry-for", "1.5", "got '1.5'"},
    };
    char out[4096], err[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[] = {"submit", cases[i].flag, cases[i].value, script, NULL};
        assert_int_equal(run_antenna(1, args, out, sizeof out, err, sizeof err), 2);
        if (strstr(err, cases[i].says) == NULL)
            fail_msg("%s '%s': stderr lacks \"%s\": %s", cases[i].flag, cases[i].value,
                     cases[i].says, err);
    }
    const char *dry[] = {"submit", "--dry-run", "--idempotency-key", "k", script, NULL};
    assert_int_equal(run_antenna(1, dry, out, sizeof out, err, sizeof err), 2);
    assert_non_null(strstr(err, "--dry-run cannot be combined with --idempotency-key"));
}

static void cli_submit_gives_up_with_the_key_to_reuse(void **state)
{
    (void)state;
    if (antenna_bin[0] == '\0') skip();
    const step steps[] = {{STEP_DROP, NULL}}; /* then the port is closed: refused */
    server *s = server_start(steps, 1);
    const char *args[] = {"submit", "--retry-for", "2", "--idempotency-key",
                          "abc",    script_file(), NULL};
    char out[4096], err[8192];
    int rc = run_antenna(s->port, args, out, sizeof out, err, sizeof err);
    static char req[MAX_STEPS][REQ_MAX];
    assert_int_equal(server_stop(s, req), 1);
    assert_int_equal(rc, 3);
    assert_string_equal(out, "");
    assert_non_null(strstr(err, "(connection refused); retrying in 1 s with the same "
                                "Idempotency-Key abc\n"));
    assert_non_null(strstr(err, "antenna: error: cannot reach https://127.0.0.1:"));
    assert_non_null(strstr(err, "rerun the same command with --idempotency-key abc"));
}

static void free_and_close_accept_null(void **state)
{
    (void)state;
    api_client_free(NULL);
    api_client_response_close(NULL);
}

/* Makes the certificate the TLS server threads use, and a scratch directory. */
static int setup(void **state)
{
    (void)state;
    snprintf(cert_dir, sizeof cert_dir, "/tmp/antenna-test-api-client-XXXXXX");
    if (!mkdtemp(cert_dir)) return -1;
    snprintf(tmp_dir, sizeof tmp_dir, "%s", cert_dir);
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "deploy/make-cert.sh '%s' >/dev/null", cert_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "deploy/make-cert.sh failed (run the tests from the repository root)\n");
        return -1;
    }
    snprintf(ca_file, sizeof ca_file, "%s/ca.pem", cert_dir);
    snprintf(cert_file, sizeof cert_file, "%s/server.pem", cert_dir);
    snprintf(key_file, sizeof key_file, "%s/server.key", cert_dir);
    reply(job_202, sizeof job_202, "202 Accepted", "", "{\"id\":42,\"state\":\"queued\"}");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cert_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Finds BUILD/antenna from this binary's path, BUILD/tests/test_api_client. */
static void find_antenna(const char *argv0)
{
    char self[PATH_MAX];
    antenna_bin[0] = '\0';
    if (realpath(argv0, self) == NULL) return;
    char *slash = strrchr(self, '/');
    if (slash == NULL) return;
    *slash = '\0';
    snprintf(antenna_bin, sizeof antenna_bin, "%s/../antenna", self);
    if (access(antenna_bin, X_OK) != 0) {
        fprintf(stderr, "note: %s not built; the antenna binary tests are skipped\n", antenna_bin);
        antenna_bin[0] = '\0';
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    signal(SIGPIPE, SIG_IGN); /* a server thread writing to a client that left */
    find_antenna(argv[0]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_comes_from_the_api_error_object),
        cmocka_unit_test(error_message_cannot_carry_terminal_escapes),
        cmocka_unit_test(error_of_a_non_json_answer_quotes_the_body_safely),
        cmocka_unit_test(error_of_an_empty_or_odd_json_answer_says_so),
        cmocka_unit_test(error_of_a_huge_body_is_cut),
        cmocka_unit_test(response_json_returns_objects_only),
        cmocka_unit_test(refused_connection_names_the_url_and_the_setting),
        cmocka_unit_test(peer_without_tls_is_a_tls_error_hinting_at_antenna_ca),
        cmocka_unit_test(unreadable_ca_file_is_named),
        cmocka_unit_test(retry_policy_retries_lost_answers_and_503_only),
        cmocka_unit_test(retry_policy_backs_off_exponentially_within_the_budget),
        cmocka_unit_test(retry_policy_honours_retry_after_within_bounds),
        cmocka_unit_test(curl_results_map_to_retry_classes),
        cmocka_unit_test(idempotency_keys_are_fresh_128_bit_hex),
        cmocka_unit_test(idempotency_key_check_follows_antennad),
        cmocka_unit_test(lost_answers_are_retried_with_the_same_key),
        cmocka_unit_test(answer_503_waits_retry_after_then_gets_the_job),
        cmocka_unit_test(other_answers_are_final),
        cmocka_unit_test(refused_connection_is_retried_for_the_budget_only),
        cmocka_unit_test(bad_key_is_refused_before_anything_is_sent),
        cmocka_unit_test(tls_errors_are_not_retried),
        cmocka_unit_test(cli_submit_resends_a_lost_job_with_the_same_fresh_key),
        cmocka_unit_test(cli_submit_takes_a_key_and_dry_run_sends_none),
        cmocka_unit_test(cli_submit_refuses_bad_flags),
        cmocka_unit_test(cli_submit_gives_up_with_the_key_to_reuse),
        cmocka_unit_test(free_and_close_accept_null),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
