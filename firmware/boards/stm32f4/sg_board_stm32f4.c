/* SPDX-License-Identifier: MIT */
/*
 * sg_board.h for the STM32F407 (STM32F4DISCOVERY: 8 MHz HSE, USART2 on PA2/PA3),
 * register level, no vendor headers (RM0090 is the reference for every address and
 * bit below). 168 MHz from the PLL, SysTick at 1 kHz, flash driver with sector erase
 * and byte programming, device id = FNV-1a 64 of the 96-bit unique ID.
 *
 * Flash (1 MB, sectors 0-3 16 KB, 4 64 KB, 5-11 128 KB):
 *   boot        sector 0          0x08000000  16 KB
 *   boot_ctl    sectors 1, 2      0x08004000, 0x08008000
 *   app primary sectors 3-5       0x0800C000  208 KB
 *   secondary   sectors 6-7       0x08040000  256 KB
 *   backup      sectors 8-9       0x08080000  256 KB
 *   model A, B  sectors 10, 11    0x080C0000, 0x080E0000  128 KB each
 */
#include <string.h>

#include "sg_board.h"
#include "sg_cortexm.h"
#include "sg_rx_ring.h"

#ifndef SG_BOARD_BAUD
#define SG_BOARD_BAUD 115200u
#endif

#define SG_REG(a) (*(volatile uint32_t *)(a))

#define RCC 0x40023800u
#define RCC_CR SG_REG(RCC + 0x00u)
#define RCC_PLLCFGR SG_REG(RCC + 0x04u)
#define RCC_CFGR SG_REG(RCC + 0x08u)
#define RCC_AHB1ENR SG_REG(RCC + 0x30u)
#define RCC_APB1ENR SG_REG(RCC + 0x40u)
#define PWR_CR SG_REG(0x40007000u)

#define GPIOA 0x40020000u
#define GPIOA_MODER SG_REG(GPIOA + 0x00u)
#define GPIOA_PUPDR SG_REG(GPIOA + 0x0Cu)
#define GPIOA_AFRL SG_REG(GPIOA + 0x20u)

#define USART2 0x40004400u
#define USART_SR SG_REG(USART2 + 0x00u) /* bit 3 ORE, 5 RXNE, 6 TC, 7 TXE */
#define USART_DR SG_REG(USART2 + 0x04u)
#define USART_BRR SG_REG(USART2 + 0x08u)
#define USART_CR1 SG_REG(USART2 + 0x0Cu) /* bit 2 RE, 3 TE, 5 RXNEIE, 13 UE */

#define FLASH_R 0x40023C00u
#define FLASH_ACR SG_REG(FLASH_R + 0x00u)
#define FLASH_KEYR SG_REG(FLASH_R + 0x04u)
#define FLASH_SR SG_REG(FLASH_R + 0x0Cu)
#define FLASH_CR SG_REG(FLASH_R + 0x10u)
#define FLASH_SR_BSY (1u << 16)
#define FLASH_SR_ERRORS 0xF2u /* PGSERR PGPERR PGAERR WRPERR OPERR */
#define FLASH_CR_PG (1u << 0)
#define FLASH_CR_SER (1u << 1)
#define FLASH_CR_PSIZE_X32 (2u << 8)
#define FLASH_CR_STRT (1u << 16)
#define FLASH_CR_LOCK (1u << 31)
#define FLASH_ACR_DCEN (1u << 10)
#define FLASH_ACR_DCRST (1u << 12)

#define SYST_CSR SG_REG(0xE000E010u)
#define SYST_RVR SG_REG(0xE000E014u)
#define SYST_CVR SG_REG(0xE000E018u)
#define NVIC_ISER1 SG_REG(0xE000E104u)
#define SG_UID_ADDR 0x1FFF7A10u

#define SG_HSE_TIMEOUT 500000u
#define SG_FLASH_BASE 0x08000000u
#define SG_FLASH_END 0x08100000u
#define SG_RX_RING 1024u /* power of two */

static const sg_flash_layout sg_layout = {
    {0x08000000u, 0x4000u},  {{0x08004000u, 0x4000u}, {0x08008000u, 0x4000u}},
    {0x0800C000u, 0x34000u}, {0x08040000u, 0x40000u},
    {0x08080000u, 0x40000u}, {{0x080C0000u, 0x20000u}, {0x080E0000u, 0x20000u}},
};

static volatile uint8_t sg_rx_buf[SG_RX_RING];
static sg_rx_ring sg_rx = {sg_rx_buf, SG_RX_RING - 1u, 0u, 0u};
static volatile uint32_t sg_ms;
static uint32_t sg_hclk = 16000000u; /* HSI until sg_board_init */
static uint32_t sg_pclk1 = 16000000u;

void sg_stm32_usart2_irq(void)
{
    /* reading SR then DR clears RXNE and an overrun */
    while (USART_SR & ((1u << 5) | (1u << 3))) {
        uint8_t c = (uint8_t)USART_DR;
        sg_rx_ring_push(&sg_rx, c); /* full: dropped, the protocol resends */
    }
}

void sg_stm32_systick_irq(void)
{
    sg_ms = sg_ms + 1u;
}

/* 168 MHz from the 8 MHz HSE (PLL M 8, N 336, P 2, Q 7); stays on HSI without HSE. */
static void sg_clock_init(void)
{
    uint32_t i;
    RCC_CR |= 1u << 16; /* HSEON */
    for (i = 0; i < SG_HSE_TIMEOUT && !(RCC_CR & (1u << 17)); ++i) {
    }
    if (!(RCC_CR & (1u << 17))) {
        return;
    }
    RCC_APB1ENR |= 1u << 28;                                    /* PWREN */
    PWR_CR |= 1u << 14;                                         /* VOS: scale 1 for 168 MHz */
    FLASH_ACR = 5u | (1u << 8) | (1u << 9) | FLASH_ACR_DCEN;    /* 5 wait states, caches */
    RCC_CFGR = (RCC_CFGR & ~0xFCF0u) | (5u << 10) | (4u << 13); /* AHB /1, APB1 /4, APB2 /2 */
    RCC_PLLCFGR = 8u | (336u << 6) | (0u << 16) | (1u << 22) | (7u << 24);
    RCC_CR |= 1u << 24; /* PLLON */
    while (!(RCC_CR & (1u << 25))) {
    }
    RCC_CFGR = (RCC_CFGR & ~3u) | 2u; /* system clock: PLL */
    while (((RCC_CFGR >> 2) & 3u) != 2u) {
    }
    sg_hclk = 168000000u;
    sg_pclk1 = 42000000u;
}

void sg_board_init(void)
{
    sg_clock_init();
    RCC_AHB1ENR |= 1u << 0;                                   /* GPIOA */
    RCC_APB1ENR |= 1u << 17;                                  /* USART2 */
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 4)) | (0xAu << 4); /* PA2, PA3 alternate */
    GPIOA_AFRL = (GPIOA_AFRL & ~(0xFFu << 8)) | (0x77u << 8); /* AF7: USART2 */
    GPIOA_PUPDR = (GPIOA_PUPDR & ~(3u << 6)) | (1u << 6);     /* RX pull-up */
    USART_BRR = (sg_pclk1 + SG_BOARD_BAUD / 2u) / SG_BOARD_BAUD;
    USART_CR1 = (1u << 13) | (1u << 3) | (1u << 2) | (1u << 5);
    NVIC_ISER1 = 1u << (38 - 32);
    SYST_RVR = sg_hclk / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = 0x7u; /* processor clock, interrupt, enable */
}

const char *sg_board_name(void)
{
    return "stm32f407-disco";
}

void sg_board_device_id(uint8_t id[8])
{
    const volatile uint8_t *uid = (const volatile uint8_t *)SG_UID_ADDR;
    uint64_t h = 0xCBF29CE484222325u; /* FNV-1a 64 */
    int i;
    for (i = 0; i < 12; ++i) {
        h = (h ^ uid[i]) * 0x100000001B3u;
    }
    for (i = 0; i < 8; ++i) {
        id[i] = (uint8_t)(h >> (8 * i));
    }
}

size_t sg_board_uart_read(uint8_t *buf, size_t max)
{
    return sg_rx_ring_pop(&sg_rx, buf, max);
}

void sg_board_uart_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        while (!(USART_SR & (1u << 7))) {
        }
        USART_DR = data[i];
    }
}

void sg_board_uart_flush(void)
{
    while (!(USART_SR & (1u << 6))) {
    }
}

int sg_board_uart_set_baud(uint32_t baud)
{
    uint32_t brr;
    if (baud == 0u) {
        return -1;
    }
    brr = (sg_pclk1 + baud / 2u) / baud;
    if (brr < 16u || brr > 0xFFFFu) { /* oversampling by 16: USARTDIV >= 1 */
        return -1;
    }
    sg_board_uart_flush();
    USART_CR1 &= ~(1u << 13);
    USART_BRR = brr;
    USART_CR1 |= 1u << 13;
    return 0;
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
    return sg_cortexm_micros(&sg_ms, sg_hclk / 1000u);
}

const sg_flash_layout *sg_board_flash_layout(void)
{
    return &sg_layout;
}

/* Sector number of the sector starting at @p addr, -1 when no sector starts there. */
static int sg_sector_at(uint32_t addr)
{
    uint32_t off = addr - SG_FLASH_BASE;
    if (addr < SG_FLASH_BASE || addr >= SG_FLASH_END) {
        return -1;
    }
    if (off < 0x10000u) {
        return off % 0x4000u == 0u ? (int)(off / 0x4000u) : -1;
    }
    if (off < 0x20000u) {
        return off == 0x10000u ? 4 : -1;
    }
    return off % 0x20000u == 0u ? (int)(4u + off / 0x20000u) : -1;
}

static uint32_t sg_sector_size(int sector)
{
    return sector < 4 ? 0x4000u : (sector == 4 ? 0x10000u : 0x20000u);
}

/* Inside one writable region (never the bootloader's). */
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

static void sg_flash_unlock(void)
{
    if (FLASH_CR & FLASH_CR_LOCK) {
        FLASH_KEYR = 0x45670123u;
        FLASH_KEYR = 0xCDEF89ABu;
    }
}

/* Wait for the end of an operation; 0 when it ended without an error flag. */
static int sg_flash_wait(void)
{
    uint32_t sr;
    while (FLASH_SR & FLASH_SR_BSY) {
    }
    sr = FLASH_SR;
    FLASH_SR = sr & (FLASH_SR_ERRORS | 1u); /* write 1 to clear errors and EOP */
    return (sr & FLASH_SR_ERRORS) ? -1 : 0;
}

/* The data cache may hold what an erased sector read before. */
static void sg_flash_dcache_reset(void)
{
    FLASH_ACR &= ~FLASH_ACR_DCEN;
    FLASH_ACR |= FLASH_ACR_DCRST;
    FLASH_ACR &= ~FLASH_ACR_DCRST;
    FLASH_ACR |= FLASH_ACR_DCEN;
}

int sg_board_flash_erase(uint32_t addr, uint32_t size)
{
    uint32_t a = addr, end = addr + size;
    int rc = 0;
    if (size == 0u || !sg_in_region(addr, size)) {
        return -1;
    }
    /* both ends on sector boundaries (the end may be the end of flash) */
    if (sg_sector_at(addr) < 0 || (end != SG_FLASH_END && sg_sector_at(end) < 0)) {
        return -1;
    }
    sg_flash_unlock();
    (void)sg_flash_wait();
    while (a < end && rc == 0) {
        int s = sg_sector_at(a);
        FLASH_CR = FLASH_CR_PSIZE_X32 | FLASH_CR_SER | ((uint32_t)s << 3);
        FLASH_CR |= FLASH_CR_STRT;
        rc = sg_flash_wait();
        a += sg_sector_size(s);
    }
    FLASH_CR = FLASH_CR_LOCK;
    sg_flash_dcache_reset();
    return rc;
}

int sg_board_flash_program(uint32_t addr, const void *data, size_t n)
{
    const uint8_t *src = (const uint8_t *)data;
    volatile uint8_t *dst = (volatile uint8_t *)(uintptr_t)addr;
    size_t i;
    int rc = 0;
    if (data == NULL || n > SG_FLASH_END - SG_FLASH_BASE || !sg_in_region(addr, (uint32_t)n)) {
        return -1;
    }
    sg_flash_unlock();
    (void)sg_flash_wait();
    FLASH_CR = FLASH_CR_PG; /* PSIZE x8: byte programming works at any supply voltage */
    for (i = 0; i < n && rc == 0; ++i) {
        dst[i] = src[i];
        __asm__ volatile("dsb");
        rc = sg_flash_wait();
    }
    FLASH_CR = FLASH_CR_LOCK;
    if (rc == 0 && memcmp((const void *)(uintptr_t)addr, data, n) != 0) {
        rc = -1;
    }
    return rc;
}

const uint8_t *sg_board_flash_ptr(uint32_t addr)
{
    return (const uint8_t *)(uintptr_t)addr;
}

void sg_board_reset(void)
{
    sg_cortexm_system_reset();
}
