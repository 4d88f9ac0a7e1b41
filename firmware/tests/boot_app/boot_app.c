/* SPDX-License-Identifier: MIT */
/*
 * Bootloader test application: says which version runs and the boot-control state
 * over the UART, confirms itself when built with SG_TESTAPP_CONFIRM=1, and obeys
 * one-byte commands: 'i' info, 'c' confirm, 'p' request an upgrade, 'r' reset, 't' the time
 * ("TIME ms=XXXXXXXX us=XXXXXXXX", millis read before micros).
 * Lines: "BOOTAPP v=XXXXXXXX state=S confirmed=C crc=XXXXXXXX build=XXXXXXXX" (v from
 * the primary image header, build from the compiled SG_FW_VERSION).
 */
#include <stdint.h>
#include <string.h>

#include "sg_board.h"
#include "sg_bootctl.h"

#ifndef SG_FW_VERSION
#define SG_FW_VERSION 0x000100u
#endif
#ifndef SG_TESTAPP_CONFIRM
#define SG_TESTAPP_CONFIRM 1
#endif

static void put(const char *s)
{
    sg_board_uart_write((const uint8_t *)s, strlen(s));
}

static void put_hex(uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    uint8_t out[8];
    int i;
    for (i = 7; i >= 0; --i) {
        out[i] = (uint8_t)digits[v & 15u];
        v >>= 4;
    }
    sg_board_uart_write(out, sizeof out);
}

static void info(void)
{
    sg_boot_info bi;
    uint8_t s[2];
    sg_bootctl_info(&bi);
    put("BOOTAPP v=");
    put_hex(bi.fw_version);
    put(" state=");
    s[0] = (uint8_t)('0' + bi.state);
    s[1] = (uint8_t)' ';
    sg_board_uart_write(s, 2);
    put("confirmed=");
    s[0] = (uint8_t)('0' + bi.confirmed);
    sg_board_uart_write(s, 1);
    put(" crc=");
    put_hex(bi.fw_crc);
    put(" build=");
    put_hex(SG_FW_VERSION);
    put("\n");
}

static void result(const char *what, int rc)
{
    put(what);
    put(rc == 0 ? " ok\n" : " failed\n");
}

int main(void)
{
    sg_board_init();
    info();
    if (SG_TESTAPP_CONFIRM) {
        result("CONFIRM", sg_bootctl_confirm());
        info();
    }
    for (;;) {
        uint8_t c;
        if (sg_board_uart_read(&c, 1) == 0) {
            sg_board_idle();
            continue;
        }
        if (c == 'i') {
            info();
        } else if (c == 'c') {
            result("CONFIRM", sg_bootctl_confirm());
        } else if (c == 'p') {
            result("PENDING", sg_bootctl_request_upgrade());
        } else if (c == 't') {
            uint32_t ms = sg_board_millis();
            uint32_t us = sg_board_micros();
            put("TIME ms=");
            put_hex(ms);
            put(" us=");
            put_hex(us);
            put("\n");
        } else if (c == 'r') {
            put("RESET\n");
            sg_board_uart_flush();
            sg_board_reset();
        }
    }
}
