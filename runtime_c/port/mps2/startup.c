/* SPDX-License-Identifier: MIT */
/*
 * Minimal Cortex-M4 vector table for QEMU's mps2-an386 (tests only): the reset handler
 * enables the FPU and jumps to newlib's semihosting crt0 (_start, --specs=rdimon.specs),
 * which clears .bss, runs constructors, calls main and reports its status through
 * semihosting exit.
 */
#include <stdint.h>

extern void _start(void);
extern uint32_t __stack_top;

static void fault(void)
{
    for (;;) {
    }
}

static void reset(void)
{
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
    __asm__ volatile("dsb\n\tisb");
    _start();
}

typedef void (*sg_vector)(void);

__attribute__((section(".vectors"), used)) static const sg_vector vectors[16] = {
    (sg_vector)(uintptr_t)&__stack_top,
    reset,
    fault,
    fault,
    fault,
    fault,
    fault,
    0,
    0,
    0,
    0,
    fault,
    fault,
    0,
    fault,
    fault};
