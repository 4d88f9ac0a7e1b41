/* SPDX-License-Identifier: MIT */
/*
 * sg_board.h for QEMU mps2-an386: CMSDK UART0 (RX interrupt into a ring buffer),
 * SysTick at 1 kHz from the 25 MHz system clock, RAM-backed flash in the 4 MB code
 * region with 4 KB sectors, SYSRESETREQ reset. Memory map in sg_board_mps2.h.
 */
#include <string.h>

#include "sg_board.h"
#include "sg_cortexm.h"
#include "sg_rx_ring.h"
#include "sg_board_mps2.h"

#define SG_REG(a) (*(volatile uint32_t *)(a))

#define UART0 0x40004000u
#define UART_DATA SG_REG(UART0 + 0x00u)
#define UART_STATE SG_REG(UART0 + 0x04u) /* bit 0 TX full, bit 1 RX full */
#define UART_CTRL SG_REG(UART0 + 0x08u)  /* bit 0 TX en, 1 RX en, 3 RX int en */
#define UART_INT SG_REG(UART0 + 0x0Cu)   /* status / write 1 to clear; bit 1 RX */
#define UART_BAUDDIV SG_REG(UART0 + 0x10u)

#define SYST_CSR SG_REG(0xE000E010u)
#define SYST_RVR SG_REG(0xE000E014u)
#define SYST_CVR SG_REG(0xE000E018u)
#define NVIC_ISER0 SG_REG(0xE000E100u)

#define SG_MPS2_CLOCK_HZ 25000000u
#define SG_TICKS_PER_MS (SG_MPS2_CLOCK_HZ / 1000u)
#define SG_RX_RING 2048u /* power of two */

static const sg_flash_layout sg_layout = {
    {0x00000000u, SG_MPS2_BOOT_SIZE},
    {{0x00010000u, SG_MPS2_SECTOR}, {0x00011000u, SG_MPS2_SECTOR}},
    {0x00020000u, 0x00080000u},                               /* app primary, 512 KB */
    {0x000A0000u, 0x00080000u},                               /* app secondary */
    {0x00120000u, 0x00080000u},                               /* app backup */
    {{0x001A0000u, 0x00130000u}, {0x002D0000u, 0x00130000u}}, /* models A, B */
};

static volatile uint8_t sg_rx_buf[SG_RX_RING];
static sg_rx_ring sg_rx = {sg_rx_buf, SG_RX_RING - 1u, 0u, 0u};
static volatile uint32_t sg_ms;

void sg_mps2_uart0_rx_irq(void)
{
    /* clear first: clearing after the read can lose the next byte's interrupt */
    UART_INT = 2u;
    while (UART_STATE & 2u) {
        uint8_t c = (uint8_t)UART_DATA;
        sg_rx_ring_push(&sg_rx, c); /* full: dropped, the protocol resends */
    }
}

void sg_mps2_systick_irq(void)
{
    sg_ms = sg_ms + 1u;
}

void sg_board_init(void)
{
    UART_BAUDDIV = SG_MPS2_CLOCK_HZ / 115200u;
    UART_CTRL = 0x1u | 0x2u | 0x8u;
    NVIC_ISER0 = 1u << 0; /* UART0 RX */
    SYST_RVR = SG_TICKS_PER_MS - 1u;
    SYST_CVR = 0;
    SYST_CSR = 0x7u; /* processor clock, interrupt, enable */
}

const char *sg_board_name(void)
{
    return "qemu-mps2-an386";
}

void sg_board_device_id(uint8_t id[8])
{
    static const uint8_t fixed[8] = {'S', 'G', 'Q', 'E', 'M', 'U', 0x00, 0x01};
    memcpy(id, fixed, sizeof fixed);
}

size_t sg_board_uart_read(uint8_t *buf, size_t max)
{
    return sg_rx_ring_pop(&sg_rx, buf, max);
}

void sg_board_uart_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        while (UART_STATE & 1u) {
        }
        UART_DATA = data[i];
    }
}

void sg_board_uart_flush(void)
{
    while (UART_STATE & 1u) {
    }
}

int sg_board_uart_set_baud(uint32_t baud)
{
    (void)baud; /* QEMU's UART has no line rate to change */
    return -1;
}

void sg_board_idle(void)
{
    __asm__ volatile("wfi");
}

uint32_t sg_board_millis(void)
{
    return sg_ms;
}

uint32_t sg_board_micros(void)
{
    return sg_cortexm_micros(&sg_ms, SG_TICKS_PER_MS);
}

const sg_flash_layout *sg_board_flash_layout(void)
{
    return &sg_layout;
}

/* Inside one writable region (the bootloader's own region is not writable). */
static int sg_in_region(uint32_t addr, uint32_t n)
{
    const sg_flash_region *r = &sg_layout.boot_ctl[0];
    const sg_flash_region *end = &sg_layout.model[1] + 1;
    for (; r < end; ++r) {
        if (addr >= r->addr && n <= r->size && addr - r->addr <= r->size - n) {
            return 1;
        }
    }
    return 0;
}

#ifdef SG_BOARD_FAULT_INJECT
/* Returns the bytes of an operation of @p n bytes to perform: all, or half at the cut. */
static uint32_t sg_cut_point(uint32_t n)
{
    volatile sg_mps2_noinit *ni = SG_MPS2_NOINIT;
    ni->ops = ni->ops + 1u;
    return (ni->cut_at != 0u && ni->ops == ni->cut_at) ? n / 2u : n;
}

static void sg_cut_stop(uint32_t done, uint32_t n)
{
    if (done != n) {
        SG_MPS2_NOINIT->cut_hit = SG_MPS2_CUT_MAGIC;
        for (;;) {
            __asm__ volatile("cpsid i\n\twfi");
        }
    }
}
#else
#define sg_cut_point(n) (n)
#define sg_cut_stop(done, n) ((void)(done), (void)(n))
#endif

int sg_board_flash_erase(uint32_t addr, uint32_t size)
{
    uint32_t done;
    if (size == 0u || addr % SG_MPS2_SECTOR != 0u || size % SG_MPS2_SECTOR != 0u ||
        !sg_in_region(addr, size)) {
        return -1;
    }
    done = sg_cut_point(size);
    memset((void *)(uintptr_t)addr, 0xFF, done);
    sg_cut_stop(done, size);
    return 0;
}

int sg_board_flash_program(uint32_t addr, const void *data, size_t n)
{
    volatile uint8_t *dst = (volatile uint8_t *)(uintptr_t)addr;
    const uint8_t *src = (const uint8_t *)data;
    uint32_t i, done;
    if (data == NULL || n > SG_MPS2_FLASH_SIZE || !sg_in_region(addr, (uint32_t)n)) {
        return -1;
    }
    done = sg_cut_point((uint32_t)n);
    /* NOR flash only clears bits: an unerased byte reads back wrong */
    for (i = 0; i < done; ++i) {
        dst[i] = (uint8_t)(dst[i] & src[i]);
    }
    sg_cut_stop(done, (uint32_t)n);
    for (i = 0; i < n; ++i) {
        if (dst[i] != src[i]) {
            return -1;
        }
    }
    return 0;
}

const uint8_t *sg_board_flash_ptr(uint32_t addr)
{
    return (const uint8_t *)(uintptr_t)addr;
}

void sg_board_reset(void)
{
    sg_cortexm_system_reset();
}

#ifdef SG_BOARD_BOOTLOADER
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void sg_mps2_cold_start(void)
{
    volatile sg_mps2_noinit *ni = SG_MPS2_NOINIT;
    uint32_t *dst = (uint32_t *)(uintptr_t)SG_MPS2_BOOT_SIZE;
    const uint32_t *src = (const uint32_t *)(uintptr_t)(SG_MPS2_STAGING + SG_MPS2_BOOT_SIZE);
    uint32_t i, words = (SG_MPS2_FLASH_SIZE - SG_MPS2_BOOT_SIZE) / 4u;
    if (ni->warm == SG_MPS2_WARM_MAGIC) {
        ni->boots = ni->boots + 1u;
        return;
    }
    /* a staging image starts with a bootloader's initial stack pointer; none: erased */
    if (*(const volatile uint32_t *)(uintptr_t)SG_MPS2_STAGING != 0u) {
        for (i = 0; i < words; ++i) {
            dst[i] = src[i];
        }
    } else {
        for (i = 0; i < words; ++i) {
            dst[i] = 0xFFFFFFFFu;
        }
    }
    ni->cut_at = *(const volatile uint32_t *)(uintptr_t)SG_MPS2_CUT_ARG;
    ni->ops = 0;
    ni->cut_hit = 0;
    ni->boots = 1;
    ni->warm = SG_MPS2_WARM_MAGIC;
}
#endif
