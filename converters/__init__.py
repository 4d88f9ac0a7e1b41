# SPDX-License-Identifier: MIT
"""Model converters: float pysg Network -> int8 .sgm file (`pysg.converters.sgm`)."""
