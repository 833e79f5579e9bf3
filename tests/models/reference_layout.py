"""A fake reference checkpoint: the key names and shapes of the paper's released Lightning files for a
tiny network, filled with random numbers (written from the layout documented in
``fmlm.models.reference``; no reference code is used)."""

from __future__ import annotations

import torch

GPT2_VOCAB = 50257  # the released models' decoder head (the GPT-2 tokenizer, <|endoftext|> included)


def reference_state(*, d=8, width=32, heads=2, depth=2, bottleneck=8, vocab=GPT2_VOCAB, mlp_hidden=85,
                    phase=False, sc=True, seed=0) -> dict[str, torch.Tensor]:
    """Reference-named tensors (no ``model.`` prefix) of a tiny ELF network; mlp_hidden = int(int(4 * 32) * 2/3)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.1

    head_dim = width // heads
    state = {}
    if sc:
        state.update({"self_cond_proj.weight": r(d, 2 * d), "self_cond_proj.bias": r(d)})
    state.update({"text_proj.proj1.weight": r(bottleneck, d), "text_proj.proj2.weight": r(width, bottleneck),
                  "text_proj.proj2.bias": r(width)})
    banks = [("t_emb_tokens", "t_embedder")] + ([("self_cond_cfg_tokens", "self_cond_cfg_embedder")] if sc else [])
    banks += [("phase_emb_tokens", "phase_embedder")] if phase else []
    for tokens, embedder in banks:
        state.update({tokens: r(1, 4, width), f"{embedder}.mlp_0.weight": r(width, 256),
                      f"{embedder}.mlp_0.bias": r(width), f"{embedder}.mlp_2.weight": r(width, width),
                      f"{embedder}.mlp_2.bias": r(width)})
    state["mode_tokens"] = r(1, 4, width)
    for i in range(depth):
        b = f"blocks.{i}"
        state.update({
            f"{b}.norm1.weight": 1 + r(width), f"{b}.norm2.weight": 1 + r(width),
            f"{b}.attn.qkv.weight": r(3 * width, width), f"{b}.attn.qkv.bias": r(3 * width),
            f"{b}.attn.q_norm.weight": 1 + r(head_dim), f"{b}.attn.k_norm.weight": 1 + r(head_dim),
            f"{b}.attn.proj.weight": r(width, width), f"{b}.attn.proj.bias": r(width),
            f"{b}.mlp.w12.weight": r(2 * mlp_hidden, width), f"{b}.mlp.w12.bias": r(2 * mlp_hidden),
            f"{b}.mlp.w3.weight": r(width, mlp_hidden), f"{b}.mlp.w3.bias": r(width),
        })
    state.update({"final_layer.norm.weight": 1 + r(width), "final_layer.linear.weight": r(d, width),
                  "final_layer.linear.bias": r(d), "proj_kernel": r(width, d), "proj_bias": r(d),
                  "unembed_kernel": r(d, vocab), "unembed_bias": r(vocab)})
    return state


def lightning_checkpoint(shadow: dict[str, torch.Tensor], raw: dict[str, torch.Tensor] | None = None) -> dict:
    """The Lightning container: raw weights under state_dict (with an encoder beside them), EMA under ema."""
    raw = {k: v + 1.0 for k, v in shadow.items()} if raw is None else raw
    return {
        "epoch": 4, "global_step": 1000, "pytorch-lightning_version": "2.5.0",
        "state_dict": {**{f"model.{k}": v for k, v in raw.items()},
                       "encoder.wte.weight": torch.zeros(3, 4), "encoder.h.0.ln_1.weight": torch.ones(4)},
        "ema": {"decay": 0.9999, "shadow": dict(shadow)},
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"completed": 4}}}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.002, "params": [0, 1]}]}],
        "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_score": None, "dirpath": "/out"}},
    }
