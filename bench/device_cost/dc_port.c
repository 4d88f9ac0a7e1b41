/* SPDX-License-Identifier: MIT */
/*
 * Board services of the device-cost driver on QEMU mps2-an386 (dc_port.h): ARM
 * semihosting calls, SysTick, stack painting and its high-water mark, and main(). The
 * vector table and reset path are the firmware's one board port
 * (firmware/boards/qemu-mps2-an386/startup.c, linked with semihost.ld); it runs no C
 * library start-up code, so every instruction QEMU counts is ours or the runtime's (plus
 * libgcc/libc helpers the compiler calls, e.g. memset).
 */
#include "dc_port.h"

extern uint32_t __stack_bottom__, __stack_top__;
void sg_mps2_systick_irq(void);
void sg_mps2_fault(void);
void sg_mps2_exit(int status);
int main(void);

#define DC_PAINT 0xA5C3E1F7u /* stack fill pattern */
#define DC_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define DC_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define DC_SYST_CVR (*(volatile uint32_t *)0xE000E018u)
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

/* the board port's SysTick vector */
void sg_mps2_systick_irq(void)
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

/* Paint the stack below the caller's frame (64 bytes of margin); a plain word loop, not
 * memset, which would paint its own frame. */
static void dc_paint_stack(void)
{
    uint32_t *d;
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (d = &__stack_bottom__; d < sp - 16; ++d) {
        *d = DC_PAINT;
    }
}

/* The board port's fault vector: report it (QEMU exits like on a lockup), do not hang. */
void sg_mps2_fault(void)
{
    dc_host_exit(134);
}

/* The board port's exit: main()'s status to QEMU. */
void sg_mps2_exit(int status)
{
    dc_host_exit(status);
}

/* Called by the board port's reset after .data/.bss set-up (a tail call into dc_main:
 * the stack high-water mark counts no frame of its own). */
int main(void)
{
    dc_paint_stack();
    return dc_main();
}
