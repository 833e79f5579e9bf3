"""The embedded preset's latent readout on held-out latents: fitted (``fmlm.nn.readout``), then after decoder
steps as the teacher takes them, each measured by ``measure_reconstruction`` (token accuracy at t = 1, 0.9
and 0.7, gen PPL, MAUVE against held-out text) next to the held-out text itself; OUT/decoder_study.json
holds every record with its wall times.

    python experiments/decoder_study.py --cache-dir /work/cache-decoder --out runs/decoder_study --steps 50 100
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from fmlm.data import prepare, rows_for
from fmlm.experiment.measure import measure_reconstruction, measure_reference
from fmlm.experiment.presets import embedded
from fmlm.experiment.run import open_scoring
from fmlm.experiment.run_folder import DECODE_SWEEP, RESULTS_FILE
from fmlm.experiment.stages import init_latent_readout
from fmlm.files import read_jsonl
from fmlm.losses.common import decoder_loss
from fmlm.nn import Denoiser
from fmlm.samplers import decode
from fmlm.train.loop import fetch_batch
from fmlm.train.schedule import micro_generator, step_rows


@torch.no_grad()
def split_accuracy(model: Denoiser, rows) -> float:
    """Token accuracy of the decoder on every row of a split's clean latents."""
    ids, x0 = rows.batch(list(range(len(rows))))
    return float((decode(model.eval(), x0) == ids).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/decoder_study")
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--steps", type=int, nargs="*", default=[], help="decoder-step counts to measure at")
    parser.add_argument("--p-mean", type=float, default=None, help="decoder steps' p_mean (default: the preset's)")
    parser.add_argument("--lr", type=float, default=None, help="decoder steps' lr (default: the teacher's)")
    args = parser.parse_args(argv)
    cfg = embedded()
    out, device = Path(args.out), torch.device("cpu")
    out.mkdir(parents=True, exist_ok=True)
    folder = prepare(cfg.data, Path(args.cache_dir))
    rows = rows_for(folder, "train")
    torch.manual_seed(cfg.train_teacher.seed)
    model = Denoiser(cfg.network.denoiser(rows.meta, True))
    walls: dict[str, float] = {}
    whole_val: dict[str, float] = {}
    start = time.perf_counter()
    init_latent_readout(model, rows, folder)
    walls["fit"] = time.perf_counter() - start
    scoring, val = open_scoring(cfg, out, folder, device, progress=False)
    n = cfg.evaluation.samples_for(DECODE_SWEEP)
    measure_reference(scoring, val, cfg.evaluation.n_samples)
    measure_reconstruction(scoring, "readout", model.eval(), val, n, lam=cfg.flow.lam)
    whole_val["readout"] = split_accuracy(model, val)
    dec = cfg.teacher.decoder if args.p_mean is None else type(cfg.teacher.decoder)(
        **{**cfg.teacher.decoder.__dict__, "p_mean": args.p_mean})
    lr = args.lr or cfg.train_teacher.optim.lr
    opt = torch.optim.AdamW(model.unembed.parameters(), lr=lr, weight_decay=0.0)
    done, train_s = 0, 0.0
    for target in sorted(args.steps):
        start = time.perf_counter()
        model.train()
        for step in range(done, target):
            batch = fetch_batch(rows, step_rows(step, len(rows), cfg.train_teacher.global_batch, 0), device)
            loss = decoder_loss(model, batch, dec, micro_generator(0, step, 0, device)).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        train_s += time.perf_counter() - start
        done = target
        name = f"readout+{target}-steps-p{dec.p_mean:g}-lr{lr:g}"
        walls[name] = walls["fit"] + train_s
        measure_reconstruction(scoring, name, model.eval(), val, n, lam=cfg.flow.lam)
        whole_val[name] = split_accuracy(model, val)
    records = [r for _, r in read_jsonl(out / RESULTS_FILE, strict=False)[0]]
    (out / "decoder_study.json").write_text(json.dumps({"wall_s": walls, "val_accuracy": whole_val,
                                                                "records": records}, indent=1))
    for r in records:
        acc = [r.get(k) for k in ("token_accuracy", "token_accuracy_t0.9", "token_accuracy_t0.7")]
        print(r["model"], acc, f"gen PPL {r['gen_ppl']:.2f}", f"MAUVE {r.get('mauve')}",
              f"wall {walls.get(r['model'], 0.0):.1f} s", f"all val rows {whole_val.get(r['model'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
