"""Studies that choose a preset's settings by measurement on validation seeds.

    embedded.py   the embedded preset's study of the teacher (``experiments/embedded_study.py``)
"""
