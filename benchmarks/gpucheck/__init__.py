"""The GPU check (``make gpu-check``, ``python benchmarks/gpu_check.py``): the paper preset on one CUDA
device in under 8 minutes, one module per part, in the order they run:

    numerics.py        bf16 autocast against fp32: x-prediction error, decoder argmax agreement, SDPA kernel
    train_steps.py     teacher, ELF*, FMLM* steps at a small and the predicted largest batch; a loss fall
    sampling_speed.py  FMLM* 1/2/4 steps against the teacher's 32-step SDE
    released.py        a random released-layout checkpoint through ``python -m fmlm import`` and ``sample``
    distributed.py     torchrun with NCCL, SIGTERM mid-run, resume (the worker: dist_worker.py)
    compiled.py        torch.compile on and off for the teacher step

``common.py`` holds the sizes, the time limits and the part runner; ``main.py`` the run and the report.
"""
