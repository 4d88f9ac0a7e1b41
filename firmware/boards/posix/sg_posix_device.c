/* SPDX-License-Identifier: MIT */
/* The standalone emulated device: `sg_posix_device --flash FILE (--tcp PORT | --pty)`. */
#include "sg_posix.h"

int main(int argc, char **argv)
{
    return sg_posix_main(argc, argv);
}
