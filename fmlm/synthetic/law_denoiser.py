"""A known language's exact denoiser as a network the samplers accept: the sampler's own floor.

``LawDenoiser(law, max_len)`` answers the calls a flow sampler makes of a ``Denoiser``:
``model(z, t)`` is ``E[x0 | z_t = z]`` (``HMMLanguage.__call__``, forward-backward in float64) and
``model(z, ones, decode=True)`` is the nearest-codeword logits ``-||z - e_v||`` (the clean latents
are codewords, so the argmax is exact at t = 1). It has no self-conditioning slot and no guidance
bank, so it runs with ``sc_mode="none"`` and no ``w``.

Sampled through the same SDE or Euler grid as the trained networks, it measures what the sampler
itself costs: a trained network can come no closer to the language than the exact denoiser does
through the same sampler (docs/results.md, the exact testbed). One sampler call is one
forward-backward pass per step: ``O(B L (H V)^2)``.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import Tensor, nn

from fmlm.synthetic.hmm_language import HMMLanguage


class LawDenoiser(nn.Module):
    """``HMMLanguage``'s exact denoiser behind the ``Denoiser`` call signature (see the module docstring)."""

    def __init__(self, law: HMMLanguage, max_len: int) -> None:
        super().__init__()
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.law = law
        self.config = SimpleNamespace(guidance_tokens=0, self_conditioning=False, max_len=int(max_len),
                                      latent_dim=int(law.codebook.shape[1]), vocab_size=law.vocab)

    def forward(self, z: Tensor, t: Tensor, sc: Tensor | None = None, w: Tensor | None = None,
                decode: bool = False) -> Tensor:
        if sc is not None or w is not None:
            raise ValueError("the exact denoiser takes no self-conditioning slot and no guidance scale")
        codebook = self.law.codebook.to(z.device)
        if decode:
            return -torch.cdist(z.double(), codebook[None].expand(z.shape[0], -1, -1)).to(z.dtype)
        return self.law(z.double(), torch.as_tensor(t, dtype=torch.float64, device=z.device)).to(z.dtype)  # per-row t
