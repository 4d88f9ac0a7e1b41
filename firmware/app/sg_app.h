/* SPDX-License-Identifier: MIT */
/*
 * The pysg device application (docs/PROTOCOL.md): portable over sg_board.h. A board's
 * main() calls sg_app_init() once per boot, then sg_app_run() (or sg_app_poll() in its
 * own loop). Buffers are static; sizes come from macros a board may override.
 */
#ifndef SG_APP_H
#define SG_APP_H

#include <stddef.h>
#include <stdint.h>

#ifndef SG_APP_ARENA_SIZE
#define SG_APP_ARENA_SIZE 262144u /**< runtime arena bytes a model may use (an imported CNN needs ~200 KB) */
#endif
#ifndef SG_APP_MAX_INPUTS
#define SG_APP_MAX_INPUTS 8192u  /**< largest in_c * in_h * in_w of a model */
#endif
#ifndef SG_FW_VERSION
#define SG_FW_VERSION 0x000100u  /**< major << 16 | minor << 8 | patch */
#endif
#ifndef SG_BOARD_BAUD
#define SG_BOARD_BAUD 115200u    /**< the UART rate after sg_board_init (where there is one) */
#endif

/**
 * Boot: sg_board_init(), scan the model slots, start the runtime on the active model,
 * confirm the running firmware image (sg_bootctl_confirm). Resets all RAM state.
 */
void sg_app_init(void);

/** Handle received bytes once: read what the UART has, answer complete frames, else idle. */
void sg_app_poll(void);

/** sg_app_poll() forever. */
void sg_app_run(void);

/**
 * Process @p n received bytes (what sg_app_poll does with the UART's bytes): frames
 * completed by them are executed and answered through sg_board_uart_write(). A RESET or
 * FW_ACTIVATE request calls sg_board_reset() after its reply.
 */
void sg_app_receive(const uint8_t *data, size_t n);

#endif /* SG_APP_H */
