/* loadgen.c - the bench's own HTTP/1.1 load generator, used for both antennad (HTTPS over TCP) and
 * slurmrestd (plain HTTP over a unix socket), so that both sides are measured by the same client.
 * Keeps C keep-alive connections busy (one request in flight on each, no pipelining) from T
 * threads (one epoll loop each) for a duration or for a number of requests, and prints one JSON
 * object: requests, requests/s, status counts, errors, latency percentiles. Never retries a
 * request, never sends to anything but the URL it is given (the bench points it at loopback or a
 * unix socket).
 *
 *   loadgen [-c 64] [-t 2] (-d SECONDS | -n COUNT) [-m GET] -p PATH [-b BODY] [-H 'K: V']...
 *           [--cacert FILE | -k] [--ids LO-HI] [--seq-start N] [--max-time S] [--label L]
 *           [-o FILE] URL
 *   URL: https://HOST:PORT, http://HOST:PORT or unix:/path/to/socket
 *   PATH, BODY and header values may hold {id} (cycles LO..HI), {seq} (a run-wide sequence) and
 *   {key} (a fresh UUID-like key per request, for an Idempotency-Key header).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MAX_HEADERS 16
#define MAX_SEGS    64
#define MAX_STATUS  600
/* latency histogram: 64 linear sub-buckets per power of two of microseconds (~1.6 % wide) */
#define SUB_BITS 6
#define SUB      (1 << SUB_BITS)
#define NBUCKETS (SUB + 40 * SUB)

enum seg_kind { SEG_LIT, SEG_ID, SEG_SEQ, SEG_KEY };

typedef struct seg {
    enum seg_kind kind;
    const char *s;
    size_t len;
} seg;

typedef struct tmpl {
    seg segs[MAX_SEGS];
    int n;
    bool dynamic;
} tmpl;

typedef struct stats {
    uint64_t hist[NBUCKETS];
    uint64_t requests, ok, bytes_in, lat_sum_us, lat_max_us;
    uint64_t status[MAX_STATUS];
    uint64_t err_connect, err_io, err_parse, err_timeout, reconnects;
} stats;

enum conn_state { ST_DOWN, ST_SEND, ST_RECV, ST_DONE };

typedef struct worker worker;

typedef struct conn {
    worker *w;
    int fd;
    SSL *ssl;
    enum conn_state st;
    uint32_t events; /* epoll interest now */
    char *out;
    size_t out_len, out_off, out_cap;
    char *in;
    size_t in_len, in_cap;
    size_t hdr_end; /* 0 = headers not complete yet */
    long long content_length;
    bool chunked, close_after;
    int status;
    uint64_t t_start;
} conn;

struct worker {
    pthread_t th;
    int ep;
    conn *conns;
    int nconns;
    stats st;
    char fatal[512];
};

/* --- options and shared run state ------------------------------------------------------- */

static struct {
    int conns, threads;
    double duration;
    long long count;
    const char *method, *path, *body, *url, *cacert, *label, *outfile;
    const char *headers[MAX_HEADERS];
    int nheaders;
    bool insecure, tls, is_unix;
    char host[64], port[8], unix_path[108];
    long long id_lo, id_hi, seq_start;
    double max_time;
} opt = {.conns = 64,
         .threads = 2,
         .method = "GET",
         .path = "/",
         .id_lo = 1,
         .id_hi = 1,
         .seq_start = 1,
         .max_time = 900,
         .label = ""};

static tmpl t_path, t_body, t_headers[MAX_HEADERS];
static SSL_CTX *ssl_ctx;
static struct addrinfo *tcp_addr;
static atomic_llong next_id, next_seq, claimed;
static uint32_t key_prefix[2];
static pthread_barrier_t barrier;
static uint64_t t0_ns, deadline_ns, hard_deadline_ns;
static atomic_bool stop_all;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void json_str(FILE *f, const char *s);

static void die(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    FILE *f = opt.outfile ? fopen(opt.outfile, "w") : NULL;
    if (f == NULL) f = stdout;
    fprintf(f, "{\"label\": ");
    json_str(f, opt.label);
    fprintf(f, ", \"error\": ");
    json_str(f, msg);
    fprintf(f, "}\n");
    if (f != stdout) fclose(f);
    fprintf(stderr, "loadgen: %s\n", msg);
    exit(1);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* --- templates ---------------------------------------------------------------------------- */

static void tmpl_parse(tmpl *t, const char *s)
{
    static const struct {
        const char *name;
        enum seg_kind kind;
    } vars[] = {{"{id}", SEG_ID}, {"{seq}", SEG_SEQ}, {"{key}", SEG_KEY}};
    t->n = 0;
    t->dynamic = false;
    const char *lit = s;
    for (const char *p = s; *p;) {
        bool matched = false;
        for (size_t v = 0; v < sizeof vars / sizeof vars[0]; v++) {
            size_t vl = strlen(vars[v].name);
            if (strncmp(p, vars[v].name, vl) != 0) continue;
            if (t->n + 2 > MAX_SEGS) die("template too complex: %.60s", s);
            if (p > lit) t->segs[t->n++] = (seg){SEG_LIT, lit, (size_t)(p - lit)};
            t->segs[t->n++] = (seg){vars[v].kind, NULL, 0};
            t->dynamic = true;
            p += vl;
            lit = p;
            matched = true;
            break;
        }
        if (!matched) p++;
    }
    size_t rest = strlen(lit);
    if (rest > 0) {
        if (t->n + 1 > MAX_SEGS) die("template too complex: %.60s", s);
        t->segs[t->n++] = (seg){SEG_LIT, lit, rest};
    }
}

/* Values drawn once per request, shared by every template of that request. */
typedef struct req_vars {
    long long id, seq;
    char key[40];
} req_vars;

static void vars_draw(req_vars *v)
{
    long long span = opt.id_hi - opt.id_lo + 1;
    v->id = opt.id_lo + atomic_fetch_add(&next_id, 1) % (span > 0 ? span : 1);
    v->seq = atomic_fetch_add(&next_seq, 1);
    unsigned long long s = (unsigned long long)v->seq;
    snprintf(v->key, sizeof v->key, "%08x-%04x-4%03x-a%03x-%012llx", key_prefix[0],
             key_prefix[1] & 0xffff, (key_prefix[1] >> 16) & 0xfff, (unsigned)(s >> 48) & 0xfff,
             s & 0xffffffffffffull);
}

/* Appends to the connection's output buffer. */
static void out_put(conn *c, const char *s, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 1024;
        while (cap < c->out_len + n)
            cap *= 2;
        char *p = realloc(c->out, cap);
        if (p == NULL) die("out of memory");
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
}

static void out_tmpl(conn *c, const tmpl *t, const req_vars *v)
{
    char num[32];
    for (int i = 0; i < t->n; i++) {
        const seg *g = &t->segs[i];
        switch (g->kind) {
        case SEG_LIT:
            out_put(c, g->s, g->len);
            break;
        case SEG_ID:
            out_put(c, num, (size_t)snprintf(num, sizeof num, "%lld", v->id));
            break;
        case SEG_SEQ:
            out_put(c, num, (size_t)snprintf(num, sizeof num, "%lld", v->seq));
            break;
        case SEG_KEY:
            out_put(c, v->key, strlen(v->key));
            break;
        }
    }
}

static size_t tmpl_len(const tmpl *t, const req_vars *v)
{
    char num[32];
    size_t n = 0;
    for (int i = 0; i < t->n; i++) {
        const seg *g = &t->segs[i];
        if (g->kind == SEG_LIT) n += g->len;
        if (g->kind == SEG_ID) n += (size_t)snprintf(num, sizeof num, "%lld", v->id);
        if (g->kind == SEG_SEQ) n += (size_t)snprintf(num, sizeof num, "%lld", v->seq);
        if (g->kind == SEG_KEY) n += strlen(v->key);
    }
    return n;
}

static void render_request(conn *c)
{
    req_vars v;
    char line[64];
    vars_draw(&v);
    c->out_len = c->out_off = 0;
    out_put(c, opt.method, strlen(opt.method));
    out_put(c, " ", 1);
    out_tmpl(c, &t_path, &v);
    out_put(c, " HTTP/1.1\r\nHost: ", 17);
    out_put(c, opt.is_unix ? "localhost" : opt.host, strlen(opt.is_unix ? "localhost" : opt.host));
    out_put(c, "\r\n", 2);
    for (int i = 0; i < opt.nheaders; i++) {
        out_tmpl(c, &t_headers[i], &v);
        out_put(c, "\r\n", 2);
    }
    if (opt.body) {
        out_put(c, line,
                (size_t)snprintf(line, sizeof line, "Content-Length: %zu\r\n\r\n",
                                 tmpl_len(&t_body, &v)));
        out_tmpl(c, &t_body, &v);
    } else {
        out_put(c, "\r\n", 2);
    }
}

/* --- connections ------------------------------------------------------------------------- */

static void conn_close(conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd); /* also leaves the epoll set */
        c->fd = -1;
    }
    c->st = ST_DOWN;
    c->events = 0;
}

/* Blocking connect (and TLS handshake), then non-blocking. Returns 0 or -1 with why. */
static int conn_open(conn *c, char *why, size_t len)
{
    int fd;
    if (opt.is_unix) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", opt.unix_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            snprintf(why, len, "connect %s: %s", opt.unix_path, strerror(errno));
            if (fd >= 0) close(fd);
            return -1;
        }
    } else {
        fd = socket(tcp_addr->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, tcp_addr->ai_addr, tcp_addr->ai_addrlen) < 0) {
            snprintf(why, len, "connect %s:%s: %s", opt.host, opt.port, strerror(errno));
            if (fd >= 0) close(fd);
            return -1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    c->fd = fd;
    if (opt.tls) {
        c->ssl = SSL_new(ssl_ctx);
        if (c->ssl == NULL) {
            snprintf(why, len, "SSL_new failed");
            conn_close(c);
            return -1;
        }
        SSL_set_fd(c->ssl, fd);
        if (!opt.insecure) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
            if (X509_VERIFY_PARAM_set1_ip_asc(vp, opt.host) != 1) {
                SSL_set_tlsext_host_name(c->ssl, opt.host);
                X509_VERIFY_PARAM_set1_host(vp, opt.host, 0);
            }
        }
        if (SSL_connect(c->ssl) != 1) {
            unsigned long e = ERR_get_error();
            snprintf(why, len, "TLS handshake with %s:%s failed: %s", opt.host, opt.port,
                     e ? ERR_error_string(e, NULL) : "connection closed");
            conn_close(c);
            return -1;
        }
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        snprintf(why, len, "cannot make the socket non-blocking: %s", strerror(errno));
        conn_close(c);
        return -1;
    }
    struct epoll_event ev = {.events = 0, .data.ptr = c};
    if (epoll_ctl(c->w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        snprintf(why, len, "epoll_ctl: %s", strerror(errno));
        conn_close(c);
        return -1;
    }
    c->events = 0;
    c->st = ST_DOWN;
    return 0;
}

static void conn_want(conn *c, uint32_t events)
{
    if (c->fd < 0 || c->events == events) return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

/* --- the request cycle ------------------------------------------------------------------- */

static void hist_add(stats *s, uint64_t us)
{
    size_t idx;
    if (us < SUB) {
        idx = (size_t)us;
    } else {
        int e = 63 - __builtin_clzll(us); /* >= SUB_BITS */
        uint64_t sub = (us >> (e - SUB_BITS)) & (SUB - 1);
        idx = SUB + (size_t)(e - SUB_BITS) * SUB + (size_t)sub;
        if (idx >= NBUCKETS) idx = NBUCKETS - 1;
    }
    s->hist[idx]++;
}

/* The middle of bucket idx, in microseconds. */
static double hist_value(size_t idx)
{
    if (idx < SUB) return (double)idx;
    size_t e = (idx - SUB) / SUB + SUB_BITS, sub = (idx - SUB) % SUB;
    double lo = (double)((SUB + sub) << (e - SUB_BITS)), w = (double)(1ull << (e - SUB_BITS));
    return lo + w / 2;
}

/* Claims the right to send one more request; false when the run is over for this connection. */
static bool may_send(void)
{
    if (atomic_load(&stop_all)) return false;
    uint64_t t = now_ns();
    if (t >= hard_deadline_ns) return false;
    if (opt.count > 0) return atomic_fetch_add(&claimed, 1) < opt.count;
    return t < deadline_ns;
}

static void conn_fail(conn *c, uint64_t *counter);
static void conn_do_send(conn *c);

static void conn_start(conn *c)
{
    if (!may_send()) {
        c->st = ST_DONE;
        conn_want(c, 0);
        return;
    }
    if (c->fd < 0) {
        char why[512];
        c->w->st.reconnects++;
        if (conn_open(c, why, sizeof why) < 0) {
            c->w->st.err_connect++;
            c->st = ST_DONE; /* this connection gives up; the others go on */
            return;
        }
    }
    render_request(c);
    c->in_len = 0;
    c->hdr_end = 0;
    c->content_length = -1;
    c->chunked = c->close_after = false;
    c->status = 0;
    c->t_start = now_ns();
    c->st = ST_SEND;
    conn_do_send(c);
}

static void conn_fail(conn *c, uint64_t *counter)
{
    (*counter)++;
    conn_close(c);
    conn_start(c);
}

static void conn_do_send(conn *c)
{
    while (c->out_off < c->out_len) {
        if (c->ssl) {
            int n = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len - c->out_off));
            if (n <= 0) {
                int e = SSL_get_error(c->ssl, n);
                if (e == SSL_ERROR_WANT_WRITE) return conn_want(c, EPOLLOUT);
                if (e == SSL_ERROR_WANT_READ) return conn_want(c, EPOLLIN);
                ERR_clear_error();
                return conn_fail(c, &c->w->st.err_io);
            }
            c->out_off += (size_t)n;
        } else {
            ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return conn_want(c, EPOLLOUT);
            if (n <= 0) return conn_fail(c, &c->w->st.err_io);
            c->out_off += (size_t)n;
        }
    }
    c->st = ST_RECV;
    conn_want(c, EPOLLIN);
}

/* Parses what was received. Returns 1 when a whole response is there, 0 when more is needed,
 * -1 on a malformed response. */
static int parse_response(conn *c)
{
    if (c->hdr_end == 0) {
        if (c->in_len < 12) return 0;
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (end == NULL) return c->in_len > 65536 ? -1 : 0;
        c->hdr_end = (size_t)(end - c->in) + 4;
        if (strncmp(c->in, "HTTP/1.", 7) != 0 || c->in[8] != ' ') return -1;
        c->status = atoi(c->in + 9);
        if (c->status < 100 || c->status >= MAX_STATUS) return -1;
        if (c->in[7] == '0') c->close_after = true;
        for (char *line = memchr(c->in, '\n', c->hdr_end); line && line < end;) {
            line++;
            char *eol = memchr(line, '\n', (size_t)(c->in + c->hdr_end - line));
            if (eol == NULL) break;
            size_t ll = (size_t)(eol - line);
            if (ll > 15 && strncasecmp(line, "content-length:", 15) == 0)
                c->content_length = atoll(line + 15);
            else if (ll > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0)
                c->chunked = memmem(line, ll, "chunked", 7) != NULL;
            else if (ll > 11 && strncasecmp(line, "connection:", 11) == 0) {
                for (char *p = line + 11; p + 5 <= eol; p++)
                    if (strncasecmp(p, "close", 5) == 0) c->close_after = true;
            }
            line = eol;
        }
        if (c->status < 200) { /* 1xx: skip it, the real answer follows */
            memmove(c->in, c->in + c->hdr_end, c->in_len - c->hdr_end);
            c->in_len -= c->hdr_end;
            c->hdr_end = 0;
            return parse_response(c);
        }
    }
    if (c->status == 204 || c->status == 304 || strcmp(opt.method, "HEAD") == 0) return 1;
    if (c->chunked) {
        size_t pos = c->hdr_end;
        for (;;) {
            char *eol = memmem(c->in + pos, c->in_len - pos, "\r\n", 2);
            if (eol == NULL) return 0;
            char *endp;
            unsigned long long size = strtoull(c->in + pos, &endp, 16);
            if (endp == c->in + pos) return -1;
            pos = (size_t)(eol - c->in) + 2;
            if (size == 0)
                return memmem(c->in + pos - 2, c->in_len - pos + 2, "\r\n\r\n", 4) ||
                               (c->in_len >= pos + 2 && c->in[pos] == '\r')
                           ? 1
                           : 0;
            if (c->in_len < pos + size + 2) return 0;
            pos += size + 2;
        }
    }
    if (c->content_length >= 0) return c->in_len >= c->hdr_end + (size_t)c->content_length;
    c->close_after = true;
    return 0; /* the body ends when the server closes */
}

static void response_done(conn *c)
{
    stats *s = &c->w->st;
    uint64_t us = (now_ns() - c->t_start) / 1000;
    s->requests++;
    if (c->status >= 200 && c->status < 300) s->ok++;
    s->status[c->status]++;
    s->bytes_in += c->in_len;
    s->lat_sum_us += us;
    if (us > s->lat_max_us) s->lat_max_us = us;
    hist_add(s, us);
    if (c->close_after) conn_close(c);
    conn_start(c);
}

static void conn_do_recv(conn *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < 4096) {
            size_t cap = c->in_cap ? c->in_cap * 2 : 16384;
            char *p = realloc(c->in, cap);
            if (p == NULL) die("out of memory");
            c->in = p;
            c->in_cap = cap;
        }
        ssize_t n;
        if (c->ssl) {
            int r = SSL_read(c->ssl, c->in + c->in_len, (int)(c->in_cap - c->in_len - 1));
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ) return conn_want(c, EPOLLIN);
                if (e == SSL_ERROR_WANT_WRITE) return conn_want(c, EPOLLOUT);
                ERR_clear_error();
                n = 0;
            } else {
                n = r;
            }
        } else {
            n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1, 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return conn_want(c, EPOLLIN);
        }
        if (n <= 0) {
            /* closed: a complete answer only if it was read-until-close */
            if (c->hdr_end > 0 && c->content_length < 0 && !c->chunked) {
                c->close_after = true;
                return response_done(c);
            }
            return conn_fail(c, &c->w->st.err_io);
        }
        c->in_len += (size_t)n;
        c->in[c->in_len] = '\0';
        int rc = parse_response(c);
        if (rc < 0) return conn_fail(c, &c->w->st.err_parse);
        if (rc > 0) return response_done(c);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    char why[512] = "";
    for (int i = 0; i < w->nconns; i++) {
        conn *c = &w->conns[i];
        c->w = w;
        c->fd = -1;
        if (w->fatal[0] == '\0' && conn_open(c, why, sizeof why) < 0)
            snprintf(w->fatal, sizeof w->fatal, "%s", why);
    }
    pthread_barrier_wait(&barrier); /* every connection is up */
    pthread_barrier_wait(&barrier); /* main has set the clock */
    if (w->fatal[0]) return NULL;
    for (int i = 0; i < w->nconns; i++)
        conn_start(&w->conns[i]);
    struct epoll_event evs[64];
    const uint64_t req_timeout = 30ull * 1000000000ull;
    for (;;) {
        int active = 0;
        uint64_t t = now_ns();
        for (int i = 0; i < w->nconns; i++) {
            conn *c = &w->conns[i];
            if (c->st == ST_DONE) continue;
            active++;
            if ((c->st == ST_SEND || c->st == ST_RECV) && t - c->t_start > req_timeout)
                conn_fail(c, &w->st.err_timeout);
        }
        if (active == 0) break;
        if (t >= hard_deadline_ns || atomic_load(&stop_all)) break;
        /* Duration mode: at the deadline, answers still in flight are not counted. */
        if (opt.count == 0 && t >= deadline_ns) break;
        uint64_t until = opt.count == 0 ? deadline_ns : hard_deadline_ns;
        int wait_ms = (int)((until - t) / 1000000ull) + 1;
        if (wait_ms > 100) wait_ms = 100;
        int n = epoll_wait(w->ep, evs, 64, wait_ms);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c->st == ST_SEND)
                conn_do_send(c);
            else if (c->st == ST_RECV)
                conn_do_recv(c);
            else if (evs[i].events & (EPOLLHUP | EPOLLERR))
                conn_close(c);
        }
    }
    for (int i = 0; i < w->nconns; i++)
        conn_close(&w->conns[i]);
    return NULL;
}

/* --- set-up and report ------------------------------------------------------------------- */

static void parse_url(const char *url)
{
    const char *rest;
    if (strncmp(url, "unix:", 5) == 0) {
        opt.is_unix = true;
        if (strlen(url + 5) >= sizeof opt.unix_path) die("unix socket path too long");
        snprintf(opt.unix_path, sizeof opt.unix_path, "%s", url + 5);
        return;
    }
    if (strncmp(url, "https://", 8) == 0) {
        opt.tls = true;
        rest = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        rest = url + 7;
    } else {
        die("URL must start with https://, http:// or unix: (got %.100s)", url);
    }
    const char *colon = strrchr(rest, ':');
    const char *slash = strchr(rest, '/');
    size_t hl = colon ? (size_t)(colon - rest) : (slash ? (size_t)(slash - rest) : strlen(rest));
    if (hl == 0 || hl >= sizeof opt.host) die("bad host in %.100s", url);
    memcpy(opt.host, rest, hl);
    opt.host[hl] = '\0';
    if (colon) {
        size_t pl = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);
        if (pl == 0 || pl >= sizeof opt.port) die("bad port in %.100s", url);
        memcpy(opt.port, colon + 1, pl);
        opt.port[pl] = '\0';
    } else {
        snprintf(opt.port, sizeof opt.port, "%s", opt.tls ? "443" : "80");
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    int rc = getaddrinfo(opt.host, opt.port, &hints, &tcp_addr);
    if (rc != 0) die("cannot resolve %s:%s: %s", opt.host, opt.port, gai_strerror(rc));
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen [-c CONNS] [-t THREADS] (-d SECONDS | -n COUNT) [-m METHOD] -p PATH\n"
            "               [-b BODY] [-H 'Name: value']... [--cacert FILE | -k] [--ids LO-HI]\n"
            "               [--seq-start N] [--max-time S] [--label L] [-o FILE] URL\n");
    exit(2);
}

static double pct(const stats *s, double q)
{
    if (s->requests == 0) return 0;
    uint64_t want = (uint64_t)ceil(q * (double)s->requests), seen = 0;
    if (want == 0) want = 1;
    for (size_t i = 0; i < NBUCKETS; i++) {
        seen += s->hist[i];
        if (seen >= want) return hist_value(i);
    }
    return (double)s->lat_max_us;
}

int main(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"cacert", required_argument, NULL, 'C'},    {"ids", required_argument, NULL, 'I'},
        {"seq-start", required_argument, NULL, 'S'}, {"max-time", required_argument, NULL, 'T'},
        {"label", required_argument, NULL, 'L'},     {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "c:t:d:n:m:p:b:H:ko:", lopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            opt.conns = atoi(optarg);
            break;
        case 't':
            opt.threads = atoi(optarg);
            break;
        case 'd':
            opt.duration = atof(optarg);
            break;
        case 'n':
            opt.count = atoll(optarg);
            break;
        case 'm':
            opt.method = optarg;
            break;
        case 'p':
            opt.path = optarg;
            break;
        case 'b':
            opt.body = optarg;
            break;
        case 'H':
            if (opt.nheaders == MAX_HEADERS) die("at most %d headers", MAX_HEADERS);
            opt.headers[opt.nheaders++] = optarg;
            break;
        case 'k':
            opt.insecure = true;
            break;
        case 'o':
            opt.outfile = optarg;
            break;
        case 'C':
            opt.cacert = optarg;
            break;
        case 'I':
            if (sscanf(optarg, "%lld-%lld", &opt.id_lo, &opt.id_hi) != 2 || opt.id_hi < opt.id_lo)
                die("--ids wants LO-HI (got %s)", optarg);
            break;
        case 'S':
            opt.seq_start = atoll(optarg);
            break;
        case 'T':
            opt.max_time = atof(optarg);
            break;
        case 'L':
            opt.label = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1) usage();
    opt.url = argv[optind];
    if (opt.conns < 1 || opt.threads < 1) die("-c and -t must be at least 1");
    if (opt.threads > opt.conns) opt.threads = opt.conns;
    if ((opt.duration <= 0) == (opt.count <= 0)) die("give exactly one of -d SECONDS and -n COUNT");
    if (opt.max_time <= 0) die("--max-time must be positive");
    parse_url(opt.url);
    signal(SIGPIPE, SIG_IGN);

    tmpl_parse(&t_path, opt.path);
    if (opt.body) tmpl_parse(&t_body, opt.body);
    for (int i = 0; i < opt.nheaders; i++)
        tmpl_parse(&t_headers[i], opt.headers[i]);
    if (getrandom(key_prefix, sizeof key_prefix, 0) != sizeof key_prefix) {
        key_prefix[0] = (uint32_t)time(NULL);
        key_prefix[1] = (uint32_t)getpid();
    }
    atomic_init(&next_id, 0);
    atomic_init(&next_seq, opt.seq_start);
    atomic_init(&claimed, 0);

    if (opt.tls) {
        ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (ssl_ctx == NULL) die("SSL_CTX_new failed");
        SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
        if (opt.insecure) {
            SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
        } else {
            if (opt.cacert == NULL) die("HTTPS needs --cacert FILE (or -k)");
            if (SSL_CTX_load_verify_locations(ssl_ctx, opt.cacert, NULL) != 1)
                die("cannot load CA %s", opt.cacert);
            SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, NULL);
        }
    }

    worker *ws = calloc((size_t)opt.threads, sizeof *ws);
    conn *cs = calloc((size_t)opt.conns, sizeof *cs);
    if (ws == NULL || cs == NULL) die("out of memory");
    pthread_barrier_init(&barrier, NULL, (unsigned)opt.threads + 1);
    int given = 0;
    for (int i = 0; i < opt.threads; i++) {
        worker *w = &ws[i];
        w->nconns = opt.conns / opt.threads + (i < opt.conns % opt.threads ? 1 : 0);
        w->conns = cs + given;
        given += w->nconns;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (w->ep < 0) die("epoll_create1: %s", strerror(errno));
        if (pthread_create(&w->th, NULL, worker_main, w) != 0) die("pthread_create failed");
    }
    pthread_barrier_wait(&barrier);
    const char *fatal = NULL;
    for (int i = 0; i < opt.threads; i++)
        if (ws[i].fatal[0]) fatal = ws[i].fatal;
    t0_ns = now_ns();
    deadline_ns = t0_ns + (uint64_t)(opt.duration * 1e9);
    hard_deadline_ns = t0_ns + (uint64_t)(opt.max_time * 1e9);
    if (fatal) atomic_store(&stop_all, true);
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < opt.threads; i++)
        pthread_join(ws[i].th, NULL);
    uint64_t t1 = now_ns();
    if (fatal) die("%s", fatal);

    stats tot;
    memset(&tot, 0, sizeof tot);
    for (int i = 0; i < opt.threads; i++) {
        stats *s = &ws[i].st;
        for (size_t b = 0; b < NBUCKETS; b++)
            tot.hist[b] += s->hist[b];
        for (size_t b = 0; b < MAX_STATUS; b++)
            tot.status[b] += s->status[b];
        tot.requests += s->requests;
        tot.ok += s->ok;
        tot.bytes_in += s->bytes_in;
        tot.lat_sum_us += s->lat_sum_us;
        if (s->lat_max_us > tot.lat_max_us) tot.lat_max_us = s->lat_max_us;
        tot.err_connect += s->err_connect;
        tot.err_io += s->err_io;
        tot.err_parse += s->err_parse;
        tot.err_timeout += s->err_timeout;
        tot.reconnects += s->reconnects;
    }
    double secs = opt.count > 0 ? (double)(t1 - t0_ns) / 1e9 : opt.duration;
    if (opt.count == 0 && (double)(t1 - t0_ns) / 1e9 < secs) secs = (double)(t1 - t0_ns) / 1e9;
    FILE *f = opt.outfile ? fopen(opt.outfile, "w") : stdout;
    if (f == NULL) die("cannot write %s: %s", opt.outfile, strerror(errno));
    fprintf(f, "{\"label\": ");
    json_str(f, opt.label);
    fprintf(f, ", \"url\": ");
    json_str(f, opt.url);
    fprintf(f, ", \"method\": ");
    json_str(f, opt.method);
    fprintf(f, ", \"path\": ");
    json_str(f, opt.path);
    fprintf(f,
            ", \"conns\": %d, \"threads\": %d, \"seconds\": %.3f, \"requests\": %llu, \"ok\": %llu,"
            " \"rps\": %.1f, \"ok_rps\": %.1f, \"bytes_in\": %llu",
            opt.conns, opt.threads, secs, (unsigned long long)tot.requests,
            (unsigned long long)tot.ok, secs > 0 ? (double)tot.requests / secs : 0,
            secs > 0 ? (double)tot.ok / secs : 0, (unsigned long long)tot.bytes_in);
    fprintf(f, ", \"status\": {");
    bool first = true;
    for (int b = 0; b < MAX_STATUS; b++) {
        if (tot.status[b] == 0) continue;
        fprintf(f, "%s\"%d\": %llu", first ? "" : ", ", b, (unsigned long long)tot.status[b]);
        first = false;
    }
    fprintf(f,
            "}, \"errors\": {\"connect\": %llu, \"io\": %llu, \"parse\": %llu, \"timeout\": %llu},"
            " \"reconnects\": %llu",
            (unsigned long long)tot.err_connect, (unsigned long long)tot.err_io,
            (unsigned long long)tot.err_parse, (unsigned long long)tot.err_timeout,
            (unsigned long long)tot.reconnects);
    fprintf(f,
            ", \"latency_us\": {\"mean\": %.1f, \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f,"
            " \"p999\": %.1f, \"max\": %llu}}\n",
            tot.requests ? (double)tot.lat_sum_us / (double)tot.requests : 0, pct(&tot, 0.50),
            pct(&tot, 0.90), pct(&tot, 0.99), pct(&tot, 0.999), (unsigned long long)tot.lat_max_us);
    if (f != stdout) fclose(f);
    SSL_CTX_free(ssl_ctx);
    if (tcp_addr) freeaddrinfo(tcp_addr);
    free(cs);
    free(ws);
    return 0;
}
