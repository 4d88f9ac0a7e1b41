/* SPDX-License-Identifier: MIT */
/*
 * Reset and board services of the device-cost driver on QEMU mps2-an386: vector table,
 * FPU enable, .data copy, .bss clear, stack painting, ARM semihosting calls and SysTick.
 * No C library start-up code runs, so every instruction QEMU counts is ours or the
 * runtime's (plus libgcc/libc helpers the compiler calls, e.g. memset).
 */
#include "dc_port.h"

extern uint32_t __data_start__, __data_end__, __data_load__;
extern uint32_t __bss_start__, __bss_end__;
extern uint32_t __stack_bottom__, __stack_top__;

#define DC_PAINT 0xA5C3E1F7u /* stack fill pattern */
#define DC_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define DC_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define DC_SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define DC_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define DC_SYST_RELOAD 0x00FFFFFFu

/* ARM semihosting operations (ARM IHI 0057 / "Semihosting for AArch32 and AArch64") */
enum { DC_SYS_OPEN = 0x01, DC_SYS_CLOSE = 0x02, DC_SYS_WRITE = 0x05, DC_SYS_EXIT_EXTENDED = 0x20 };
#define DC_ADP_APPLICATION_EXIT 0x20026u

static volatile uint32_t dc_wraps;
static uint8_t dc_ticking;

static int32_t dc_semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

static uint32_t dc_strlen(const char *s)
{
    uint32_t n = 0;
    while (s[n] != '\0') {
        ++n;
    }
    return n;
}

int32_t dc_host_open_write(const char *path)
{
    const uint32_t block[3] = {(uint32_t)(uintptr_t)path, 5u /* "wb" */, dc_strlen(path)};
    return dc_semihost(DC_SYS_OPEN, block);
}

int32_t dc_host_write(int32_t handle, const void *data, uint32_t n)
{
    const uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)data, n};
    return dc_semihost(DC_SYS_WRITE, block); /* bytes NOT written */
}

void dc_host_close(int32_t handle)
{
    const uint32_t block[1] = {(uint32_t)handle};
    (void)dc_semihost(DC_SYS_CLOSE, block);
}

void dc_host_exit(int32_t status)
{
    const uint32_t block[2] = {DC_ADP_APPLICATION_EXIT, (uint32_t)status};
    (void)dc_semihost(DC_SYS_EXIT_EXTENDED, block);
    for (;;) {
    }
}

void dc_ticks_start(void)
{
    DC_SYST_RVR = DC_SYST_RELOAD;
    DC_SYST_CVR = 0u;
    DC_SYST_CSR = 7u; /* core clock, wrap interrupt, enable */
    dc_ticking = 1u;
}

uint64_t dc_ticks(void)
{
    uint32_t hi;
    uint32_t v;
    if (!dc_ticking) {
        return 0u;
    }
    do { /* a wrap between the two reads is seen as a changed wrap count */
        hi = dc_wraps;
        v = DC_SYST_CVR;
    } while (hi != dc_wraps);
    return (uint64_t)hi * (DC_SYST_RELOAD + 1u) + (DC_SYST_RELOAD - v);
}

static void dc_systick(void)
{
    dc_wraps = dc_wraps + 1u;
}

uint32_t dc_stack_size(void)
{
    return (uint32_t)((uintptr_t)&__stack_top__ - (uintptr_t)&__stack_bottom__);
}

uint32_t dc_stack_used(void)
{
    const uint32_t *p = &__stack_bottom__;
    while (p < &__stack_top__ && *p == DC_PAINT) {
        ++p;
    }
    return (uint32_t)((uintptr_t)&__stack_top__ - (uintptr_t)p);
}

/* Plain word loops: keep GCC from turning them into memcpy/memset calls before
 * .data exists. */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) static void dc_init_memory(void)
{
    uint32_t *d = &__data_start__;
    const uint32_t *s = &__data_load__;
    uint32_t *sp;
    while (d < &__data_end__) {
        *d++ = *s++;
    }
    for (d = &__bss_start__; d < &__bss_end__; ++d) {
        *d = 0u;
    }
    /* paint the stack below the reset handler's frame (64 bytes of margin) */
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (d = &__stack_bottom__; d < sp - 16; ++d) {
        *d = DC_PAINT;
    }
}

void dc_reset(void) __attribute__((noreturn));
void dc_reset(void)
{
    DC_CPACR |= 0xFu << 20; /* CP10, CP11: the hard-float code needs the FPU on */
    __asm__ volatile("dsb\n\tisb");
    dc_init_memory();
    dc_host_exit(dc_main());
}

static void dc_fault(void)
{
    dc_host_exit(134); /* like QEMU's lockup status, but reported, not hung */
}

typedef void (*dc_vector)(void);

__attribute__((section(".vectors"), used)) static const dc_vector dc_vectors[16] = {
    (dc_vector)(uintptr_t)&__stack_top__,
    dc_reset,
    dc_fault, /* NMI */
    dc_fault, /* HardFault */
    dc_fault, /* MemManage */
    dc_fault, /* BusFault */
    dc_fault, /* UsageFault */
    0,
    0,
    0,
    0,
    dc_fault, /* SVCall */
    dc_fault, /* DebugMon */
    0,
    dc_fault, /* PendSV */
    dc_systick};
