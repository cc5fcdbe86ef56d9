/* test_api_client.c - unit tests for client/api_client: error descriptions from any server answer,
 * and transport failures (refused connection, a peer that does not speak TLS, a bad CA file).
 * Needs no server: the only peers are sockets this test opens on 127.0.0.1. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_client.h"

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

static void free_and_close_accept_null(void **state)
{
    (void)state;
    api_client_free(NULL);
    api_client_response_close(NULL);
}

int main(void)
{
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
        cmocka_unit_test(free_and_close_accept_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
