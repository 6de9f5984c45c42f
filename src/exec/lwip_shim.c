/* closefuzz's boundary to lwIP 2.1.3 (Debian's liblwip-dev), compiled by build.rs.
 *
 * lwIP's structs (netif, sockaddr with its options, ip addresses) depend on the
 * lwipopts.h the library was built with, so everything that touches them is here, in
 * C, against /usr/include/lwip. The Rust side (src/exec/lwip.rs) sees plain ints:
 * descriptors, byte counts, and results as -CF_E* codes (an explicit table, below).
 *
 * Time: lwIP asks sys_now() for the time (timeouts.c, through the PLT); closefuzz
 * defines sys_now itself, so lwIP's clock is virtual and moves only in cf_advance (a
 * `sleep` step). No TCP timer fires between two steps, as the model assumes.
 *
 * Delivery: traffic to the netif's own addresses is looped back by lwIP
 * (netif_loop_output queues it and asks the tcpip thread to run netif_poll). cf_settle
 * runs netif_poll itself, under the core lock, until the loop queue is empty: after
 * it, every segment a step put on the wire has arrived, and every answer too. */
#include <lwip/tcpip.h>
#include <lwip/sockets.h>
#include <lwip/netif.h>
#include <lwip/timeouts.h>
#include <lwip/priv/tcp_priv.h>
#include <lwip/priv/sockets_priv.h>
#include <lwip/api.h>
#include <netif/etharp.h>
#include <lwip/ethip6.h>
#include <string.h>
#include <errno.h>
#ifndef POLLRDHUP
#define POLLRDHUP 0x2000 /* Linux's value, as a program written for Linux asks it */
#endif
#include <pthread.h>
#include <dlfcn.h>

/* Result codes, the same numbers as the table in src/exec/lwip.rs. */
enum {
    CF_EOTHER = 1, CF_EPIPE, CF_ECONNRESET, CF_ENOTCONN, CF_EAGAIN, CF_EBADF, CF_EINVAL,
    CF_ECONNREFUSED, CF_ECONNABORTED, CF_ETIMEDOUT, CF_EOPNOTSUPP, CF_EISCONN,
    CF_EINPROGRESS, CF_EALREADY, CF_EHOSTUNREACH, CF_EIO, CF_ENOBUFS, CF_ENOMEM,
    CF_ENOPROTOOPT, CF_EADDRINUSE, CF_ENOSYS, CF_ENFILE, CF_EMSGSIZE, CF_ENOTSOCK,
    CF_EAFNOSUPPORT, CF_EADDRNOTAVAIL, CF_ENETUNREACH, CF_ESHUTDOWN
};

static int cf_code(int e)
{
    switch (e) {
    case EPIPE: return CF_EPIPE;
    case ECONNRESET: return CF_ECONNRESET;
    case ENOTCONN: return CF_ENOTCONN;
    case EAGAIN: return CF_EAGAIN;
    case EBADF: return CF_EBADF;
    case EINVAL: return CF_EINVAL;
    case ECONNREFUSED: return CF_ECONNREFUSED;
    case ECONNABORTED: return CF_ECONNABORTED;
    case ETIMEDOUT: return CF_ETIMEDOUT;
    case EOPNOTSUPP: return CF_EOPNOTSUPP;
    case EISCONN: return CF_EISCONN;
    case EINPROGRESS: return CF_EINPROGRESS;
    case EALREADY: return CF_EALREADY;
    case EHOSTUNREACH: return CF_EHOSTUNREACH;
    case EIO: return CF_EIO;
    case ENOBUFS: return CF_ENOBUFS;
    case ENOMEM: return CF_ENOMEM;
    case ENOPROTOOPT: return CF_ENOPROTOOPT;
    case EADDRINUSE: return CF_EADDRINUSE;
    case ENOSYS: return CF_ENOSYS;
    case ENFILE: return CF_ENFILE;
    case EMSGSIZE: return CF_EMSGSIZE;
    case ENOTSOCK: return CF_ENOTSOCK;
    case EAFNOSUPPORT: return CF_EAFNOSUPPORT;
    case EADDRNOTAVAIL: return CF_EADDRNOTAVAIL;
    case ENETUNREACH: return CF_ENETUNREACH;
    case ESHUTDOWN: return CF_ESHUTDOWN;
    default: return CF_EOTHER;
    }
}

/* The call's result: r itself, or -CF_E* for lwIP's errno. */
static long cf_ret(long r)
{
    return r < 0 ? -(long)cf_code(errno) : r;
}

static volatile u32_t virtual_ms = 1000000;

/* lwIP's clock (see the top of the file). */
u32_t sys_now(void)
{
    return virtual_ms;
}

/* netif_loop_output asks the tcpip thread to run netif_poll for every first segment
 * it queues (LWIP_NETIF_LOOPBACK_MULTITHREADING): a wake-up of that thread, which then
 * waits for the core lock cf_settle holds. cf_settle runs netif_poll itself, so that
 * request is answered here, in the caller, by doing nothing; every other callback goes
 * to lwIP's own tcpip_try_callback. */
err_t tcpip_try_callback(tcpip_callback_fn fn, void *ctx)
{
    static err_t (*real)(tcpip_callback_fn, void *);
    if (fn == (tcpip_callback_fn)netif_poll)
        return ERR_OK;
    if (real == NULL)
        real = (err_t (*)(tcpip_callback_fn, void *))dlsym(RTLD_NEXT, "tcpip_try_callback");
    return real != NULL ? real(fn, ctx) : ERR_VAL;
}

static struct netif nif;
static ip4_addr_t own4;
static ip6_addr_t own6;

/* The link drops everything: only looped-back traffic (to our own addresses) moves. */
static err_t drop_out(struct netif *n, struct pbuf *p)
{
    (void)n;
    (void)p;
    return ERR_OK;
}

static err_t nif_init(struct netif *n)
{
    n->name[0] = 'c';
    n->name[1] = 'f';
    n->output = etharp_output;
    n->output_ip6 = ethip6_output;
    n->linkoutput = drop_out;
    n->mtu = 1500;
    n->flags = NETIF_FLAG_UP | NETIF_FLAG_LINK_UP;
    return ERR_OK;
}

static sys_sem_t init_done;
static void on_init(void *arg)
{
    (void)arg;
    sys_sem_signal(&init_done);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_result = -1;

static void init_once(void)
{
    if (sys_sem_new(&init_done, 0) != ERR_OK)
        return;
    tcpip_init(on_init, NULL);
    sys_sem_wait(&init_done);
    IP4_ADDR(&own4, 10, 0, 0, 1);
    ip4_addr_t mask, gw;
    IP4_ADDR(&mask, 255, 255, 255, 0);
    IP4_ADDR(&gw, 0, 0, 0, 0);
    LOCK_TCPIP_CORE();
    if (netif_add(&nif, &own4, &mask, &gw, NULL, nif_init, tcpip_input) == NULL) {
        UNLOCK_TCPIP_CORE();
        return;
    }
    netif_set_default(&nif);
    netif_set_up(&nif);
    netif_set_link_up(&nif);
    /* fd00::1, preferred at once: no duplicate address detection on a link that
     * drops everything. */
    IP6_ADDR(&own6, PP_HTONL(0xfd000000UL), 0, 0, PP_HTONL(1));
    s8_t idx = -1;
    if (netif_add_ip6_address(&nif, &own6, &idx) != ERR_OK || idx < 0) {
        UNLOCK_TCPIP_CORE();
        return;
    }
    netif_ip6_addr_set_state(&nif, idx, IP6_ADDR_PREFERRED);
    UNLOCK_TCPIP_CORE();
    init_result = 0;
}

/* 0 when lwIP runs; -1 when it could not start; -2 when lwIP would not use our clock
 * (sys_now not in the executable's dynamic symbols: build.rs exports it); -3 when it
 * would not use our tcpip_try_callback (the same). */
int cf_init(void)
{
    if (dlsym(RTLD_DEFAULT, "sys_now") != (void *)sys_now)
        return -2;
    if (dlsym(RTLD_DEFAULT, "tcpip_try_callback") != (void *)tcpip_try_callback)
        return -3;
    pthread_once(&once, init_once);
    return init_result;
}

/* Delivers everything looped back, and everything sent in answer, until nothing is
 * left; bounded (a segment storm would be a bug in lwIP or here). Returns the rounds
 * it took, or -1 when the bound was reached. */
int cf_settle(void)
{
    for (int round = 0; round < 10000; round++) {
        LOCK_TCPIP_CORE();
        int empty = nif.loop_first == NULL;
        if (!empty)
            netif_poll(&nif);
        UNLOCK_TCPIP_CORE();
        if (empty)
            return round;
    }
    return -1;
}

/* Lets `ms` of lwIP's time pass, running its timers as they fall due (at most 10 ms
 * at a time, so that a cyclic timer runs as often as it would in real time) and
 * delivering what they send. */
int cf_advance(u32_t ms)
{
    while (ms > 0) {
        u32_t step = ms < 10 ? ms : 10;
        LOCK_TCPIP_CORE();
        virtual_ms += step;
        sys_check_timeouts();
        UNLOCK_TCPIP_CORE();
        if (cf_settle() < 0)
            return -1;
        ms -= step;
    }
    return 0;
}

static void fill_addr(struct sockaddr_storage *ss, socklen_t *len, int v6, u16_t port)
{
    memset(ss, 0, sizeof *ss);
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = lwip_htons(port);
        inet6_addr_from_ip6addr(&a->sin6_addr, &own6);
        *len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = lwip_htons(port);
        a->sin_addr.s_addr = own4.addr;
        *len = sizeof *a;
    }
}

long cf_socket(int v6)
{
    return cf_ret(lwip_socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0));
}

/* Binds to an ephemeral port of our own address and listens; the port in *port. */
long cf_listen(int fd, int v6, int backlog, u16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    fill_addr(&ss, &len, v6, 0);
    if (lwip_bind(fd, (struct sockaddr *)&ss, len) < 0)
        return cf_ret(-1);
    if (lwip_listen(fd, backlog) < 0)
        return cf_ret(-1);
    socklen_t l2 = sizeof ss;
    if (lwip_getsockname(fd, (struct sockaddr *)&ss, &l2) < 0)
        return cf_ret(-1);
    *port = lwip_ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                          : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

long cf_connect(int fd, int v6, u16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    fill_addr(&ss, &len, v6, port);
    return cf_ret(lwip_connect(fd, (struct sockaddr *)&ss, len));
}

long cf_accept(int fd)
{
    return cf_ret(lwip_accept(fd, NULL, NULL));
}

/* flags: 1 MSG_OOB, 2 MSG_NOSIGNAL. */
long cf_send(int fd, const void *buf, size_t n, int flags)
{
    return cf_ret(lwip_send(fd, buf, n, ((flags & 1) ? MSG_OOB : 0) |
                                          ((flags & 2) ? MSG_NOSIGNAL : 0)));
}

long cf_recv(int fd, void *buf, size_t n, int peek, int oob)
{
    return cf_ret(lwip_recv(fd, buf, n, (peek ? MSG_PEEK : 0) | (oob ? MSG_OOB : 0)));
}

long cf_shutdown(int fd, int rd, int wr)
{
    int how = rd && wr ? SHUT_RDWR : rd ? SHUT_RD : SHUT_WR;
    return cf_ret(lwip_shutdown(fd, how));
}

/* lwIP 2.1.3's lwip_netconn_do_close_internal reads pcb->unsent and pcb->unacked of a
 * listening netconn with SO_LINGER set, fields a struct tcp_pcb_listen does not have:
 * a read past the end of its allocation, which can make it tcp_abort the listen pcb
 * ("don't call tcp_abort/tcp_abandon for listen-pcbs", found by a campaign). SO_LINGER
 * does nothing else on an lwIP listener (an accepted netconn starts with linger off),
 * so it is switched off before a listener is closed. */
static int live(struct tcp_pcb *pcb);

static void unlinger_listener(int fd)
{
    int listening = 0;
    LOCK_TCPIP_CORE();
    struct lwip_sock *sock = lwip_socket_dbg_get_socket(fd);
    if (sock != NULL && sock->conn != NULL && sock->conn->pcb.tcp != NULL &&
        live(sock->conn->pcb.tcp))
        listening = sock->conn->pcb.tcp->state == LISTEN;
    UNLOCK_TCPIP_CORE();
    if (listening) {
        struct linger off = {0, 0};
        lwip_setsockopt(fd, SOL_SOCKET, SO_LINGER, &off, sizeof off);
    }
}

long cf_close(int fd)
{
    unlinger_listener(fd);
    return cf_ret(lwip_close(fd));
}

long cf_linger(int fd, int on, int secs)
{
    struct linger lg = {on, secs};
    return cf_ret(lwip_setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
}

long cf_nonblocking(int fd)
{
    int fl = lwip_fcntl(fd, F_GETFL, 0);
    if (fl < 0)
        return cf_ret(-1);
    return cf_ret(lwip_fcntl(fd, F_SETFL, fl | O_NONBLOCK));
}

long cf_nodelay(int fd)
{
    int one = 1;
    return cf_ret(lwip_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
}

/* SO_RCVBUF (rcv != 0) or SO_SNDBUF, as asked: lwIP answers what it supports. */
long cf_setbuf(int fd, int rcv, int n)
{
    return cf_ret(lwip_setsockopt(fd, SOL_SOCKET, rcv ? SO_RCVBUF : SO_SNDBUF, &n, sizeof n));
}

/* SO_ERROR: 0, or the pending error as a CF_E* code in *code. */
long cf_so_error(int fd, int *code)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (lwip_getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        return cf_ret(-1);
    *code = e == 0 ? 0 : cf_code(e);
    return 0;
}

/* FIONREAD (Linux's SIOCINQ). */
long cf_inq(int fd, int *n)
{
    return cf_ret(lwip_ioctl(fd, FIONREAD, n));
}

/* Linux's SIOCOUTQ request number, as a program written for Linux passes it. */
long cf_outq(int fd, int *n)
{
    return cf_ret(lwip_ioctl(fd, 0x5411, n));
}

/* Zero-timeout poll for IN, OUT and RDHUP; revents as bits 1 IN, 2 OUT, 4 ERR, 8 HUP,
 * 16 RDHUP, 32 NVAL. */
long cf_poll(int fd)
{
    struct pollfd p = {fd, POLLIN | POLLOUT | POLLRDHUP, 0};
    if (lwip_poll(&p, 1, 0) < 0)
        return cf_ret(-1);
    return ((p.revents & POLLIN) ? 1 : 0) | ((p.revents & POLLOUT) ? 2 : 0) |
           ((p.revents & POLLERR) ? 4 : 0) | ((p.revents & POLLHUP) ? 8 : 0) |
           ((p.revents & POLLRDHUP) ? 16 : 0) | ((p.revents & POLLNVAL) ? 32 : 0);
}

static int in_list(struct tcp_pcb *list, struct tcp_pcb *pcb)
{
    for (struct tcp_pcb *p = list; p != NULL; p = p->next)
        if (p == pcb)
            return 1;
    return 0;
}

static int live(struct tcp_pcb *pcb)
{
    return in_list(tcp_active_pcbs, pcb) || in_list(tcp_tw_pcbs, pcb) ||
           in_list(tcp_bound_pcbs, pcb) ||
           in_list((struct tcp_pcb *)tcp_listen_pcbs.listen_pcbs, pcb);
}

/* The connection's TCP state (lwIP's enum tcp_state, CLOSED .. TIME_WAIT) and its
 * ports, for an open descriptor: its netconn's pcb, looked up in lwIP's pcb lists
 * first (a TIME_WAIT pcb is freed by tcp_slowtmr without telling its netconn).
 * Returns 0 with *state = 0 (CLOSED) when the netconn has no live pcb; -CF_EBADF for
 * a descriptor lwIP does not know. */
long cf_tcp_state(int fd, int *state, u16_t *local, u16_t *remote)
{
    long r = 0;
    LOCK_TCPIP_CORE();
    struct lwip_sock *sock = lwip_socket_dbg_get_socket(fd);
    if (sock == NULL || sock->conn == NULL) {
        r = -CF_EBADF;
    } else {
        struct tcp_pcb *pcb = sock->conn->pcb.tcp;
        *state = CLOSED;
        if (pcb != NULL && live(pcb)) {
            *state = pcb->state;
            *local = pcb->local_port;
            *remote = pcb->state == LISTEN ? 0 : pcb->remote_port;
        }
    }
    UNLOCK_TCPIP_CORE();
    return r;
}

/* The state of the connection between these ports, wherever lwIP keeps it (active or
 * TIME_WAIT list), or -1 when it holds none: what is left after the fd was closed. */
int cf_tuple_state(u16_t local, u16_t remote)
{
    int st = -1;
    LOCK_TCPIP_CORE();
    for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL && st < 0; p = p->next)
        if (p->local_port == local && p->remote_port == remote)
            st = p->state;
    for (struct tcp_pcb *p = tcp_tw_pcbs; p != NULL && st < 0; p = p->next)
        if (p->local_port == local && p->remote_port == remote)
            st = p->state;
    UNLOCK_TCPIP_CORE();
    return st;
}

static int count(struct tcp_pcb *list)
{
    int n = 0;
    for (struct tcp_pcb *p = list; p != NULL; p = p->next)
        n++;
    return n;
}

/* How many pcbs lwIP holds, in every list: 0 between cases. */
int cf_pcbs(void)
{
    LOCK_TCPIP_CORE();
    int n = count(tcp_active_pcbs) + count(tcp_tw_pcbs) + count(tcp_bound_pcbs) +
            count((struct tcp_pcb *)tcp_listen_pcbs.listen_pcbs);
    UNLOCK_TCPIP_CORE();
    return n;
}

/* Ends every connection a case left behind (orphans, TIME_WAIT): tcp_abort sends
 * their RSTs, which are delivered to nobody; returns how many it ended. */
int cf_abort_all(void)
{
    int n = 0;
    for (int round = 0; round < 1000; round++) {
        LOCK_TCPIP_CORE();
        struct tcp_pcb *p = tcp_active_pcbs != NULL ? tcp_active_pcbs : tcp_tw_pcbs;
        if (p != NULL)
            tcp_abort(p);
        UNLOCK_TCPIP_CORE();
        if (p == NULL)
            break;
        n++;
        cf_settle();
    }
    return n;
}
