/* SPDX-License-Identifier: MIT */
/* sg_board.h on POSIX: mmap'ed flash file, TCP or pty UART, clock_gettime ticks. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 600
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sg_board.h"
#include "sg_posix.h"
#include "sg_posix_internal.h"

#define SG_POSIX_IDLE_MS 10    /* longest sleep in sg_board_idle: a reply is never later */
#define SG_POSIX_STALL_MS 5000 /* a client that takes nothing for this long is dropped */
/* A host waiting to connect takes the line over from a client that has sent nothing for
 * this long (a forgotten or hung connection must not lock everyone out); an active client
 * keeps it, and the newcomer waits in the listen queue. */
#define SG_POSIX_TAKEOVER_MS 2000

static const sg_flash_layout g_layout = {
    {0, 0},
    {{SG_POSIX_BOOTCTL_ADDR, SG_POSIX_SECTOR_SIZE}, {SG_POSIX_BOOTCTL_ADDR + SG_POSIX_SECTOR_SIZE, SG_POSIX_SECTOR_SIZE}},
    {0, 0}, {0, 0}, {0, 0},
    {{0, SG_POSIX_SLOT_SIZE}, {SG_POSIX_SLOT_SIZE, SG_POSIX_SLOT_SIZE}},
};

static unsigned long g_cut_at; /* SG_POSIX_CUT_ENV: the flash operation that is cut, 0 none */
static unsigned long g_flash_ops;

static uint8_t *g_flash;       /* SG_POSIX_FLASH_SIZE bytes, MAP_SHARED: writes reach the file */
static int g_flash_fd = -1;    /* kept open: it holds the flash file's lock */
static int g_listen_fd = -1;   /* TCP mode: the server socket */
static int g_client_fd = -1;   /* TCP mode: the connected host, -1 while none */
static uint64_t g_client_seen_us; /* TCP mode: when the client connected or last sent bytes */
static int g_pty_fd = -1;      /* pty mode: the master */
static int g_pty_slave_fd = -1;/* kept open so the master survives a host closing the port */
static struct timespec g_boot;

jmp_buf sg_posix_reset_point;
int sg_posix_reset_armed;

/* ---------------------------------------------------------------- the pty's line rate
 * A pty has one termios for both ends (Linux applies the master's to the slave), set by the
 * host's serial library (pyserial: at open and at each baudrate change). The device keeps
 * its own UART rate here; when the two differ, bytes are lost both ways, as on a real line
 * where a UART at another rate sees only framing errors. SET_BAUD changes the device's
 * rate after its reply (sg_app.c), so the host must switch too, as with a real board. */
#define SG_POSIX_BOOT_BAUD 115200u

static const struct {
    uint32_t baud;
    speed_t speed;
} g_rates[] = {
    {9600u, B9600}, {19200u, B19200}, {38400u, B38400}, {57600u, B57600}, {115200u, B115200},
    {230400u, B230400},
#ifdef B460800
    {460800u, B460800},
#endif
#ifdef B921600
    {921600u, B921600},
#endif
#ifdef B1000000
    {1000000u, B1000000},
#endif
#ifdef B2000000
    {2000000u, B2000000},
#endif
};

static uint32_t g_uart_baud = SG_POSIX_BOOT_BAUD; /* pty mode: the device's UART rate */

static int rate_speed(uint32_t baud, speed_t *speed)
{
    size_t i;
    for (i = 0; i < sizeof g_rates / sizeof g_rates[0]; ++i) {
        if (g_rates[i].baud == baud) {
            *speed = g_rates[i].speed;
            return 0;
        }
    }
    return -1;
}

/* The host's side of the line matches the device's rate (always, off a pty). */
static int line_in_step(void)
{
    struct termios t;
    speed_t want;
    if (g_pty_fd < 0) {
        return 1;
    }
    if (tcgetattr(g_pty_slave_fd, &t) != 0 || rate_speed(g_uart_baud, &want) != 0) {
        return 0;
    }
    return cfgetospeed(&t) == want;
}

/* ---------------------------------------------------------------- setup */

int sg_posix_flash_open(const char *path)
{
    struct stat sb;
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    int fresh;
    void *p;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    /* One device per flash file: a second one would interleave writes into the same
     * slots (advisory lock, released when this process ends, however it ends). */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return errno == EWOULDBLOCK ? -2 : -1;
    }
    fresh = sb.st_size == 0;
    if ((!fresh && sb.st_size != (off_t)SG_POSIX_FLASH_SIZE)
        || (fresh && ftruncate(fd, (off_t)SG_POSIX_FLASH_SIZE) != 0)) {
        close(fd);
        return -1;
    }
    p = mmap(NULL, SG_POSIX_FLASH_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        close(fd);
        return -1;
    }
    g_flash = p;
    g_flash_fd = fd;
    {
        const char *cut = getenv(SG_POSIX_CUT_ENV);
        g_cut_at = cut != NULL ? strtoul(cut, NULL, 10) : 0ul;
        g_flash_ops = 0;
    }
    if (fresh) {
        memset(g_flash, 0xFF, SG_POSIX_FLASH_SIZE); /* erased NOR flash */
    }
    return 0;
}

int sg_posix_uart_tcp(uint16_t port, uint16_t *bound)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0
        || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1) != 0
        || getsockname(fd, (struct sockaddr *)&a, &len) != 0
        || fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        close(fd);
        return -1;
    }
    g_listen_fd = fd;
    *bound = ntohs(a.sin_port);
    return 0;
}

int sg_posix_uart_pty(char *path, size_t path_size)
{
    struct termios t;
    const char *name;
    int fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (fd < 0) {
        return -1;
    }
    if (grantpt(fd) != 0 || unlockpt(fd) != 0 || (name = ptsname(fd)) == NULL
        || strlen(name) >= path_size || fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        close(fd);
        return -1;
    }
    strcpy(path, name);
    g_pty_slave_fd = open(path, O_RDWR | O_NOCTTY);
    /* Raw bytes both ways: no echo, no line editing, no CR/LF translation. */
    if (g_pty_slave_fd < 0 || tcgetattr(g_pty_slave_fd, &t) != 0) {
        close(fd);
        return -1;
    }
    cfmakeraw(&t);
    /* the line starts at the device's boot rate (a pty's default is 38400) */
    if (cfsetispeed(&t, B115200) != 0 || cfsetospeed(&t, B115200) != 0
        || tcsetattr(g_pty_slave_fd, TCSANOW, &t) != 0) {
        close(fd);
        return -1;
    }
    g_pty_fd = fd;
    return 0;
}

static void drop_client(void)
{
    if (g_client_fd >= 0) {
        close(g_client_fd);
        g_client_fd = -1;
    }
}

void sg_posix_close(void)
{
    drop_client();
    if (g_listen_fd >= 0) {
        close(g_listen_fd);
        g_listen_fd = -1;
    }
    if (g_pty_fd >= 0) {
        close(g_pty_fd);
        g_pty_fd = -1;
    }
    if (g_pty_slave_fd >= 0) {
        close(g_pty_slave_fd);
        g_pty_slave_fd = -1;
    }
    if (g_flash != NULL) {
        munmap(g_flash, SG_POSIX_FLASH_SIZE);
        g_flash = NULL;
    }
    if (g_flash_fd >= 0) {
        close(g_flash_fd); /* and its lock */
        g_flash_fd = -1;
    }
}

/* ---------------------------------------------------------------- board interface */

void sg_board_init(void)
{
    clock_gettime(CLOCK_MONOTONIC, &g_boot);
    g_uart_baud = SG_POSIX_BOOT_BAUD; /* a reset device is back at its boot rate */
}

const char *sg_board_name(void)
{
    return "posix";
}

void sg_board_device_id(uint8_t id[8])
{
    static const uint8_t fixed[8] = {'p', 's', 'g', 'p', 'o', 's', 'i', 'x'};
    memcpy(id, fixed, sizeof fixed);
}

static uint64_t micros_since_boot(void);

/* A host is waiting in the listen queue. */
static int host_waiting(void)
{
    struct pollfd p;
    p.fd = g_listen_fd;
    p.events = POLLIN;
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

/* The fd bytes come from, accepting a waiting host in TCP mode; -1 while none. */
static int uart_fd(void)
{
    if (g_pty_fd >= 0) {
        return g_pty_fd;
    }
    if (g_client_fd >= 0 && g_listen_fd >= 0
        && micros_since_boot() - g_client_seen_us >= (uint64_t)SG_POSIX_TAKEOVER_MS * 1000u && host_waiting()) {
        drop_client(); /* idle line, someone else waiting: the newcomer gets it, device state kept */
    }
    if (g_client_fd < 0 && g_listen_fd >= 0) {
        int fd = accept(g_listen_fd, NULL, NULL);
        int one = 1;
        if (fd >= 0) {
            if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
                close(fd);
                return -1;
            }
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            g_client_fd = fd;
            g_client_seen_us = micros_since_boot();
        }
    }
    return g_client_fd;
}

size_t sg_board_uart_read(uint8_t *buf, size_t max)
{
    int fd = uart_fd();
    ssize_t n;
    if (fd < 0) {
        return 0;
    }
    n = read(fd, buf, max);
    if (n > 0) {
        if (fd == g_client_fd) {
            g_client_seen_us = micros_since_boot();
        }
        return line_in_step() ? (size_t)n : 0u; /* at another rate: framing errors, nothing usable */
    }
    if (fd == g_client_fd && (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))) {
        drop_client(); /* the host hung up: wait for the next one, state kept */
    }
    return 0;
}

void sg_board_uart_write(const uint8_t *data, size_t n)
{
    int fd = g_pty_fd >= 0 ? g_pty_fd : g_client_fd;
    if (!line_in_step()) {
        return; /* the host listens at another rate: what we send never arrives intact */
    }
    while (n > 0u && fd >= 0) {
        ssize_t w = fd == g_client_fd ? send(fd, data, n, MSG_NOSIGNAL) : write(fd, data, n);
        if (w > 0) {
            data += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            struct pollfd p;
            p.fd = fd;
            p.events = POLLOUT;
            if (poll(&p, 1, SG_POSIX_STALL_MS) == 0) {
                if (fd == g_client_fd) {
                    drop_client();
                }
                return; /* nobody takes bytes: like a UART with no one listening */
            }
        } else {
            if (fd == g_client_fd) {
                drop_client();
            }
            return;
        }
    }
}

void sg_board_uart_flush(void)
{
    if (g_pty_fd >= 0) {
        (void)tcdrain(g_pty_fd); /* before a rate change: the reply leaves at the old rate */
    }
}

int sg_board_uart_set_baud(uint32_t baud)
{
    speed_t speed;
    if (g_pty_fd < 0 || rate_speed(baud, &speed) != 0) {
        return -1; /* a socket has no rate; a pty takes the termios rates */
    }
    g_uart_baud = baud;
    return 0;
}

void sg_board_idle(void)
{
    struct pollfd p;
    p.fd = g_pty_fd >= 0 ? g_pty_fd : (g_client_fd >= 0 ? g_client_fd : g_listen_fd);
    p.events = POLLIN;
    if (p.fd < 0) {
        struct timespec ts = {0, SG_POSIX_IDLE_MS * 1000000L};
        nanosleep(&ts, NULL);
        return;
    }
    (void)poll(&p, 1, SG_POSIX_IDLE_MS);
}

static uint64_t micros_since_boot(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)(now.tv_sec - g_boot.tv_sec) * 1000000u
           + (uint64_t)((now.tv_nsec - g_boot.tv_nsec) / 1000);
}

uint32_t sg_board_millis(void)
{
    return (uint32_t)(micros_since_boot() / 1000u);
}

uint32_t sg_board_micros(void)
{
    return (uint32_t)micros_since_boot();
}

const sg_flash_layout *sg_board_flash_layout(void)
{
    return &g_layout;
}

/* [addr, addr + size) inside one region of the layout. */
static int in_region(uint32_t addr, uint32_t size)
{
    const sg_flash_region *r[] = {&g_layout.boot_ctl[0], &g_layout.boot_ctl[1], &g_layout.model[0],
                                  &g_layout.model[1]};
    unsigned i;
    for (i = 0; i < sizeof r / sizeof r[0]; ++i) {
        if (addr >= r[i]->addr && (uint64_t)addr + size <= (uint64_t)r[i]->addr + r[i]->size) {
            return 1;
        }
    }
    return 0;
}

int sg_board_flash_erase(uint32_t addr, uint32_t size)
{
    if (g_flash == NULL || addr % SG_POSIX_SECTOR_SIZE != 0u || size % SG_POSIX_SECTOR_SIZE != 0u
        || !in_region(addr, size)) {
        return -1;
    }
    if (++g_flash_ops == g_cut_at) { /* a power cut half way through the erase */
        memset(g_flash + addr, 0xFF, size / 2u);
        _exit(SG_POSIX_CUT_EXIT);
    }
    memset(g_flash + addr, 0xFF, size);
    return 0;
}

int sg_board_flash_program(uint32_t addr, const void *data, size_t n)
{
    const uint8_t *d = data;
    size_t i;
    if (g_flash == NULL || n > SG_POSIX_FLASH_SIZE || !in_region(addr, (uint32_t)n)) {
        return -1;
    }
    /* NOR flash only clears bits: programming over unerased bytes shows in the read-back. */
    if (++g_flash_ops == g_cut_at) { /* a power cut half way through the program */
        for (i = 0; i < n / 2u; ++i) {
            g_flash[addr + i] &= d[i];
        }
        _exit(SG_POSIX_CUT_EXIT);
    }
    for (i = 0; i < n; ++i) {
        g_flash[addr + i] &= d[i];
    }
    return 0;
}

const uint8_t *sg_board_flash_ptr(uint32_t addr)
{
    return g_flash + (addr < SG_POSIX_FLASH_SIZE ? addr : 0u);
}

void sg_board_reset(void)
{
    if (sg_posix_reset_armed) {
        longjmp(sg_posix_reset_point, 1); /* back to sg_posix_main: the app boots again */
    }
    sg_posix_close();
    _Exit(0);
}
