/* SPDX-License-Identifier: MIT */
/* What every Cortex-M board shares: the system part of the vector table and the reset. */
#ifndef SG_CORTEXM_H
#define SG_CORTEXM_H

#include <stdint.h>

typedef void (*sg_vector)(void);

/*
 * The 16 system vectors: initial stack pointer, reset, then NMI, HardFault, MemManage,
 * BusFault, UsageFault, 4 reserved, SVC, DebugMon, reserved, PendSV, SysTick.
 */
#define SG_CORTEXM_SYSTEM_VECTORS(stack_top, reset, fault, systick)                                        \
    (sg_vector)(uintptr_t)(stack_top), (reset), (fault), (fault), (fault), (fault), (fault), 0, 0, 0, 0,  \
        (fault), (fault), 0, (fault), (systick)

/** System reset through the SCB (the bootloader runs next); does not return. */
__attribute__((noreturn)) static inline void sg_cortexm_system_reset(void)
{
    __asm__ volatile("dsb");
    *(volatile uint32_t *)0xE000ED0Cu = 0x05FA0004u; /* SCB AIRCR: VECTKEY | SYSRESETREQ */
    __asm__ volatile("dsb");
    for (;;) {
    }
}

#endif /* SG_CORTEXM_H */
