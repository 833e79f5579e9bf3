"""The CPU kernels of the denoiser: faster ways to compute what ``fmlm.nn`` defines, each with the same
values up to float rounding (the argmax paths the same ids), and the switch over them.

    switch.py       FMLM_CPU_KERNELS=auto|off|on, read once: where the paths below run
    fused_norm.py   RMSNorm and RMSNorm-then-rotary as autograd functions with a written-out backward
    attention.py    attend: the fused kernel, or explicit matmuls for short bf16 rows with gradients
    head_argmax.py  the decoder pass's argmax: vocabulary tiles, and the choice of screen
    head_screen.py  what a screen of the argmax shares (blocks of ids, bounds on their largest logit)
    screen_int8.py  the int8 screen: exact integer products on CPUs with VNNI

Nothing here imports the network (``fmlm.nn.denoiser``, ``fmlm.nn.layers``); the network imports these.
"""
