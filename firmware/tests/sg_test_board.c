/* SPDX-License-Identifier: MIT */
/* sg_board.h over RAM, for the unit tests and the fuzzer. */
#include "sg_test_board.h"

#include <stdlib.h>
#include <string.h>

#include "sg_board.h"

#define K 1024u
static const sg_flash_layout g_layout = {
    {0, 16 * K},
    {{16 * K, 4 * K}, {20 * K, 4 * K}},
    {64 * K, 48 * K}, /* primary smaller than secondary, as on the STM32F4 (208 vs 256 KB) */
    {128 * K, 64 * K},
    {192 * K, 64 * K},
    {{256 * K, SG_TEST_SLOT_SIZE}, {384 * K, SG_TEST_SLOT_SIZE}},
};

static uint64_t g_flash_words[SG_TEST_FLASH_SIZE / 8u]; /* 8-byte aligned, like real flash */
static uint8_t *const g_flash = (uint8_t *)g_flash_words;
static uint8_t g_out[64u * 1024u];
static size_t g_out_n;
static unsigned g_fail_programs;
static unsigned g_corrupt_programs;
static uint32_t g_baud = 115200u;
static uint32_t g_ticks;

jmp_buf sg_test_reset_point;
int sg_test_reset_armed;
unsigned sg_test_resets;

void sg_test_board_wipe(void)
{
    memset(g_flash, 0xFF, SG_TEST_FLASH_SIZE);
    g_out_n = 0;
    g_fail_programs = 0;
    g_corrupt_programs = 0;
    g_baud = 115200u;
}

const uint8_t *sg_test_uart_output(size_t *n)
{
    *n = g_out_n;
    return g_out;
}

void sg_test_uart_take(void)
{
    g_out_n = 0;
}

uint8_t *sg_test_flash(void)
{
    return g_flash;
}

void sg_test_fail_programs(unsigned n)
{
    g_fail_programs = n;
}

void sg_test_corrupt_programs(unsigned n)
{
    g_corrupt_programs = n;
}

uint32_t sg_test_uart_baud(void)
{
    return g_baud;
}

void sg_board_init(void)
{
    g_ticks = 0;
}

const char *sg_board_name(void)
{
    return "test";
}

void sg_board_device_id(uint8_t id[8])
{
    memcpy(id, "TESTUNIT", 8);
}

size_t sg_board_uart_read(uint8_t *buf, size_t max)
{
    (void)buf;
    (void)max;
    return 0;
}

void sg_board_uart_write(const uint8_t *data, size_t n)
{
    if (n > sizeof g_out - g_out_n) {
        g_out_n = 0; /* a test that never takes its output: keep the newest */
        if (n > sizeof g_out) {
            return;
        }
    }
    memcpy(g_out + g_out_n, data, n);
    g_out_n += n;
}

void sg_board_uart_flush(void) {}

int sg_board_uart_set_baud(uint32_t baud)
{
    if (baud != 115200u && baud != 921600u) {
        return -1;
    }
    g_baud = baud;
    return 0;
}

void sg_board_idle(void) {}

uint32_t sg_board_millis(void)
{
    return g_ticks++;
}

uint32_t sg_board_micros(void)
{
    return 0;
}

const sg_flash_layout *sg_board_flash_layout(void)
{
    return &g_layout;
}

int sg_board_flash_erase(uint32_t addr, uint32_t size)
{
    if (addr % SG_TEST_SECTOR_SIZE != 0u || size % SG_TEST_SECTOR_SIZE != 0u
        || (uint64_t)addr + size > SG_TEST_FLASH_SIZE) {
        return -1;
    }
    memset(g_flash + addr, 0xFF, size);
    return 0;
}

int sg_board_flash_program(uint32_t addr, const void *data, size_t n)
{
    const uint8_t *d = data;
    size_t i;
    if ((uint64_t)addr + n > SG_TEST_FLASH_SIZE) {
        return -1;
    }
    if (g_fail_programs > 0u) {
        g_fail_programs--;
        return -1;
    }
    for (i = 0; i < n; ++i) {
        g_flash[addr + i] &= d[i]; /* NOR: programming only clears bits */
    }
    if (g_corrupt_programs > 0u && n > 0u) {
        g_corrupt_programs--;
        g_flash[addr] &= 0xFEu;
    }
    return 0;
}

const uint8_t *sg_board_flash_ptr(uint32_t addr)
{
    return g_flash + (addr < SG_TEST_FLASH_SIZE ? addr : 0u);
}

void sg_board_reset(void)
{
    sg_test_resets++;
    if (sg_test_reset_armed) {
        longjmp(sg_test_reset_point, 1);
    }
    abort(); /* a reset nobody expected */
}
