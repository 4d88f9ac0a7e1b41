/* SPDX-License-Identifier: MIT */
/*
 * The UART receive ring of the interrupt-driven boards: the RX interrupt pushes,
 * sg_board_uart_read pops. One producer (the interrupt) and one consumer (the main
 * loop), so no lock: each side writes only its own index. A full ring drops the byte;
 * the protocol's CRC and resend recover it.
 */
#ifndef SG_RX_RING_H
#define SG_RX_RING_H

#include <stddef.h>
#include <stdint.h>

typedef struct sg_rx_ring {
    volatile uint8_t *buf;  /**< mask + 1 bytes, a power of two */
    uint32_t mask;
    volatile uint32_t head; /**< written by the interrupt */
    uint32_t tail;          /**< written by the main loop */
} sg_rx_ring;

/** From the RX interrupt: store @p c, or drop it when the ring is full. */
static inline void sg_rx_ring_push(sg_rx_ring *r, uint8_t c)
{
    uint32_t h = r->head;
    if (h - r->tail <= r->mask) {
        r->buf[h & r->mask] = c;
        r->head = h + 1u;
    }
}

/** From the main loop: move up to @p max bytes into @p out; returns how many. */
static inline size_t sg_rx_ring_pop(sg_rx_ring *r, uint8_t *out, size_t max)
{
    size_t n = 0;
    while (n < max && r->tail != r->head) {
        out[n++] = r->buf[r->tail & r->mask];
        r->tail++;
    }
    return n;
}

#endif /* SG_RX_RING_H */
