/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the device's frame receiver and every op handler, on the RAM test
 * board. Each input starts from a freshly booted device whose slot 0 holds the model
 * named by $SG_FUZZ_MODEL (when set), so streaming and uploads are reachable.
 *
 * Input: byte 0 bit 0 chooses the mode.
 *   raw (1):        the rest goes to the receiver as wire bytes (COBS, sizes, CRC checks).
 *   requests (0):   records [op][seq][flags][len u16][len bytes]; each becomes a valid
 *                   frame (flags bit 0: corrupt its CRC; bit 1: no COBS, raw payload), so
 *                   the handlers see deep sequences (BEGIN, DATA, END, STREAM_START...).
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sg_app.h"
#include "sg_board.h"
#include "sg_proto.h"
#include "sg_runtime.h"
#include "sg_slots.h"
#include "sg_test_board.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t g_model[SG_TEST_SLOT_SIZE];
static size_t g_model_size;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *path = getenv("SG_FUZZ_MODEL");
    FILE *f;
    (void)argc;
    (void)argv;
    if (path == NULL) {
        return 0;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "fuzz_proto: cannot open SG_FUZZ_MODEL=%s\n", path);
        exit(1);
    }
    g_model_size = fread(g_model, 1, sizeof g_model - SG_SLOT_HEADER_SIZE, f);
    fclose(f);
    return 0;
}

/* A device as after power-on, with the model committed in slot 0. */
static void boot(void)
{
    sg_test_board_wipe();
    if (g_model_size > 0u) {
        (void)sg_board_flash_program(sg_slot_data_addr(0), g_model, g_model_size);
        (void)sg_slot_commit(0, 1, (uint32_t)g_model_size, sg_crc32(0, g_model, g_model_size));
    }
    sg_app_init();
}

static void requests(const uint8_t *data, size_t size)
{
    static uint8_t packet[SG_PROTO_PACKET_MAX];
    static uint8_t frame[SG_PROTO_FRAME_MAX];
    size_t pos = 0;
    while (size - pos >= 5u) {
        uint8_t op = data[pos], seq = data[pos + 1], flags = data[pos + 2];
        size_t len = (size_t)(data[pos + 3] | (data[pos + 4] << 8)) % (SG_PROTO_MAX_PAYLOAD + 1u);
        size_t n;
        pos += 5;
        if (len > size - pos) {
            len = size - pos;
        }
        if (flags & 2u) {
            sg_app_receive(data + pos, len);
            pos += len;
            continue;
        }
        packet[0] = op;
        packet[1] = seq;
        sg_put_u16(packet + 2, (uint16_t)len);
        memcpy(packet + 4, data + pos, len);
        sg_put_u32(packet + 4 + len, sg_crc32(0, packet, 4 + len) ^ (uint32_t)(flags & 1u));
        n = sg_cobs_encode(packet, 8 + len, frame);
        sg_app_receive(frame, n);
        sg_test_uart_take();
        pos += len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0u) {
        return 0;
    }
    sg_test_reset_armed = 1;
    if (setjmp(sg_test_reset_point) != 0) { /* RESET or FW_ACTIVATE: this input is done */
        sg_test_reset_armed = 0;
        return 0;
    }
    boot();
    if (data[0] & 1u) {
        sg_app_receive(data + 1, size - 1);
    } else {
        requests(data + 1, size - 1);
    }
    sg_test_reset_armed = 0;
    return 0;
}
