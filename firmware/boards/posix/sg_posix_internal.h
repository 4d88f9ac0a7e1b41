/* SPDX-License-Identifier: MIT */
/* Shared by the POSIX board and its main: where sg_board_reset() jumps back to. */
#ifndef SG_POSIX_INTERNAL_H
#define SG_POSIX_INTERNAL_H

#include <setjmp.h>

extern jmp_buf sg_posix_reset_point;
extern int sg_posix_reset_armed; /* sg_posix_reset_point is set */

#endif /* SG_POSIX_INTERNAL_H */
