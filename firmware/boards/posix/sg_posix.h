/* SPDX-License-Identifier: MIT */
/*
 * The POSIX board (the desktop "emulated device"): flash is a file mapped into memory,
 * the UART is a TCP server socket or a pseudo-terminal, a reset restarts the
 * application. Set up with sg_posix_flash_open() and one of the UART openers, then
 * sg_posix_main() or your own loop around sg_app_init()/sg_app_poll().
 */
#ifndef SG_POSIX_H
#define SG_POSIX_H

#include <stddef.h>
#include <stdint.h>

#define SG_POSIX_FLASH_SIZE (4u * 1024u * 1024u)
#define SG_POSIX_SECTOR_SIZE 4096u
#define SG_POSIX_SLOT_SIZE (512u * 1024u)
/* Two boot-control sectors after the slots: no bootloader here, but the boot-selection
 * record (which model slot `pysg device activate` chose) lives there on every board. */
#define SG_POSIX_BOOTCTL_ADDR (2u * SG_POSIX_SLOT_SIZE)

/* Fault injection for the power-cut tests: with this environment variable set to N >= 1,
 * flash operation N (erase or program, counted from the start) does the first half of its
 * work and the process ends at once with status SG_POSIX_CUT_EXIT, as at a power cut
 * (the flash file keeps what was written). */
#define SG_POSIX_CUT_ENV "SG_POSIX_CUT_AT"
#define SG_POSIX_CUT_EXIT 75

/** Map @p path as the flash (created and filled with 0xFF when missing) and lock it for
 *  this process; 0, -2 when another device holds it, -1 for any other failure. */
int sg_posix_flash_open(const char *path);

/** Listen on 127.0.0.1:@p port (0: any free port); *bound gets the port. 0 or -1. */
int sg_posix_uart_tcp(uint16_t port, uint16_t *bound);

/** Open a pseudo-terminal; its slave path (what a host opens) goes to @p path. 0 or -1. */
int sg_posix_uart_pty(char *path, size_t path_size);

/** Close the UART and unmap the flash. */
void sg_posix_close(void);

/**
 * The emulated device's command line: `--flash FILE (--tcp PORT | --pty)`. Prints the
 * URL to connect to as the first line on stdout, then runs until SIGINT or SIGTERM.
 * Returns 0 after a signal, 2 on bad arguments, 1 when the flash or UART cannot be set up.
 */
int sg_posix_main(int argc, char **argv);

#endif /* SG_POSIX_H */
