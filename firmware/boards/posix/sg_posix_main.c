/* SPDX-License-Identifier: MIT */
/* The emulated device's command line and run loop (host code: it may print). */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sg_app.h"
#include "sg_posix.h"
#include "sg_posix_internal.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: sg_posix_device --flash FILE (--tcp PORT | --pty)\n"
                    "  --flash FILE  flash image (4 MiB, created if missing; models persist in it)\n"
                    "  --tcp PORT    serve the UART on 127.0.0.1:PORT (0: any free port)\n"
                    "  --pty         serve the UART on a new pseudo-terminal\n"
                    "Prints the URL to connect to on the first line of stdout.\n");
    return 2;
}

int sg_posix_main(int argc, char **argv)
{
    const char *flash = NULL;
    long port = -1;
    int pty = 0, i, rc;
    char url[128];
    struct sigaction sa, old_int, old_term;

    for (i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--flash") == 0 && i + 1 < argc) {
            flash = argv[++i];
        } else if (strcmp(argv[i], "--tcp") == 0 && i + 1 < argc) {
            char *end;
            port = strtol(argv[++i], &end, 10);
            if (*end != '\0' || port < 0 || port > 65535) {
                fprintf(stderr, "sg_posix_device: --tcp %s: not a port number (0..65535)\n", argv[i]);
                return usage();
            }
        } else if (strcmp(argv[i], "--pty") == 0) {
            pty = 1;
        } else {
            return usage();
        }
    }
    if (flash == NULL || (pty == (port >= 0))) {
        return usage();
    }
    rc = sg_posix_flash_open(flash);
    if (rc == -2) {
        fprintf(stderr, "sg_posix_device: %s is in use by another emulated device (one device per flash file)\n",
                flash);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "sg_posix_device: cannot use %s as flash (must be missing, empty or exactly %u bytes)\n",
                flash, SG_POSIX_FLASH_SIZE);
        return 1;
    }
    if (pty) {
        if (sg_posix_uart_pty(url, sizeof url) != 0) {
            fprintf(stderr, "sg_posix_device: cannot open a pseudo-terminal\n");
            sg_posix_close();
            return 1;
        }
    } else {
        uint16_t bound = 0;
        if (sg_posix_uart_tcp((uint16_t)port, &bound) != 0) {
            fprintf(stderr, "sg_posix_device: cannot listen on 127.0.0.1:%ld (in use by another program? "
                            "choose another port, or --tcp 0 for any free one)\n", port);
            sg_posix_close();
            return 1;
        }
        snprintf(url, sizeof url, "socket://127.0.0.1:%u", (unsigned)bound);
    }
    printf("%s\n", url);
    fflush(stdout);

    g_stop = 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    /* A RESET request jumps back here: the application boots again, the flash file stays. */
    setjmp(sg_posix_reset_point);
    sg_posix_reset_armed = 1;
    sg_app_init();
    while (!g_stop) {
        sg_app_poll();
    }
    sg_posix_reset_armed = 0;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sg_posix_close();
    return 0;
}
