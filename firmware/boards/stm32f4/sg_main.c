/* SPDX-License-Identifier: MIT */
/* The application's entry point on this board (the bootloader has its own main). */
#include "sg_app.h"

int main(void)
{
    sg_app_init();
    sg_app_run();
    return 0;
}
