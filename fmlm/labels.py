"""The name each model goes by in results and reports (torch-free, so ``reports`` can import it)."""

MODEL_LABELS = {
    "teacher": "ELF",
    "teacher-nosc": "ELF (no SC)",
    "fixed-point": "ELF*",
    "flow-map": "FMLM*",
    "flow-map-nosc": "FMLM",
    "untrained": "untrained network",
    "reference": "held-out real text",
}
"""Model name -> the label the paper uses (one name per model)."""

ODE_SWEEP = "ode"
"""Sweep tag of the deterministic probability-flow ODE references (Euler, no churn) the flow maps distil."""

DECODE_SWEEP = "decode"
"""Sweep tag of the records that decode held-out latents with a model's decoder head (no sampling)."""
