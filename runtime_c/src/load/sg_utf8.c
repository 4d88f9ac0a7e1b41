/* SPDX-License-Identifier: MIT */
/* Strict UTF-8 validation of the class labels (FORMAT.md §5 step 5). */
#include "sg_load.h"

int sg_utf8_valid(const uint8_t *s, uint32_t n)
{
    uint32_t i = 0;
    while (i < n) {
        const uint8_t c = s[i];
        uint32_t len;
        uint32_t cp;
        uint32_t k;
        if (c < 0x80u) {
            ++i;
            continue;
        }
        if (c >= 0xC2u && c <= 0xDFu) {
            len = 2;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0u && c <= 0xEFu) {
            len = 3;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0u && c <= 0xF4u) {
            len = 4;
            cp = c & 0x07u;
        } else {
            return 0;
        }
        if (n - i < len) {
            return 0;
        }
        for (k = 1; k < len; ++k) {
            if ((s[i + k] & 0xC0u) != 0x80u) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((len == 3 && (cp < 0x800u || (cp >= 0xD800u && cp <= 0xDFFFu))) ||
            (len == 4 && (cp < 0x10000u || cp > 0x10FFFFu))) {
            return 0;
        }
        i += len;
    }
    return 1;
}
