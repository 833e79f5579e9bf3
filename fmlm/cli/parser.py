"""The argument parser and ``main`` of ``python -m fmlm`` (the commands live beside it; see ``fmlm.cli``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fmlm.cli import model_commands, run_commands, sample
from fmlm.cli.options import PRESET_NAMES
from fmlm.config import ConfigError, check_unique_overrides
from fmlm.experiment.run_folder import STAGES


def build_parser() -> argparse.ArgumentParser:
    doc = sys.modules["fmlm.cli"].__doc__  # the package docstring: the commands and examples
    parser = argparse.ArgumentParser(prog="fmlm", description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    sub = parser.add_subparsers(dest="command", required=True)

    def run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--preset", default=None, choices=PRESET_NAMES, help="default: embedded")
        p.add_argument("--run-dir", "--run", dest="run_dir", type=Path, default=None,
                       help="run folder (default: runs/<preset>)")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")

    def overrides(p: argparse.ArgumentParser) -> None:  # after a command's own positionals
        p.add_argument("overrides", nargs="*", metavar="key=value")

    p = sub.add_parser("run", help="the main job: train every stage, measure, write the report")
    run_options(p)
    overrides(p)
    p.add_argument("--quick", action="store_true", help="shorthand for --preset quick")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_commands.cmd_run)

    p = sub.add_parser("prepare", help="prepare the corpus, rows and cached latents")
    run_options(p)
    overrides(p)
    p.set_defaults(func=run_commands.cmd_prepare)

    p = sub.add_parser("train", help="train one stage (resumes from its checkpoint)")
    run_options(p)
    p.add_argument("stage", nargs="?", default="teacher", choices=STAGES)
    p.add_argument("--teacher", type=Path, default=None, help="checkpoint of the stage this one distils")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    overrides(p)
    p.set_defaults(func=run_commands.cmd_train)

    p = sub.add_parser("sample", help="sample text from a trained stage or a model folder")
    run_options(p)
    p.add_argument("--stage", default="teacher", choices=STAGES)
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--model", default=None, help="a model folder or hub repo id (its stored sampler settings)")
    p.add_argument("--steps", type=int, default=None, help="the stored sampler setting for this many steps")
    p.add_argument("--length", type=int, default=None, help="with --model: tokens per sample (default: its max)")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--show", type=int, default=3, help="samples to print")
    p.add_argument("--out", type=Path, default=None)
    overrides(p)
    p.set_defaults(func=sample.cmd_sample)

    p = sub.add_parser("import", help="import a released reference checkpoint as a model folder")
    p.add_argument("checkpoint", type=Path, help="a reference Lightning .ckpt (elf, elf_star, fmlm_star)")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--config", type=Path, default=None, help="the reference's training YAML for this checkpoint")
    p.add_argument("--weights", default="ema", choices=["ema", "raw"])
    p.add_argument("--stage", default=None, choices=STAGES, help="default: from --config or the file name")
    p.add_argument("--cache-dir", type=Path, default=Path("cache"), help="where the offline GPT-2 tokenizer is kept")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=model_commands.cmd_import)

    p = sub.add_parser("export", help="export a finished stage checkpoint as a model folder")
    p.add_argument("checkpoint", type=Path, help="RUN/stages/<stage> or its checkpoint/ folder")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--weights", default="ema", choices=["ema", "raw"])
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=model_commands.cmd_export)

    p = sub.add_parser("evaluate", help="gen PPL and entropy of a samples file")
    run_options(p)
    p.set_defaults(overrides=[])
    p.add_argument("samples", type=Path, nargs="?", default=Path("runs/embedded/samples/teacher.jsonl"))
    p.add_argument("--evaluator", default=None, help="default: the preset's evaluator (paper: gpt2-large)")
    p.add_argument("--framing", default="project", choices=["project", "paper"],
                   help="paper: the reference's exact scoring (dropped and kept blank samples) beside ours")
    p.add_argument("--max-length", type=int, default=1024, help="with --framing paper: retokenised length cap")
    p.set_defaults(func=model_commands.cmd_evaluate)

    p = sub.add_parser("report", help="tables and plots of a run folder (into RUN/report)")
    p.add_argument("run_folder", type=Path)
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <run>/report)")
    p.set_defaults(func=run_commands.cmd_report)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, accepting ``key=value`` overrides before or after the options (the one override parser)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    takes = args.command not in ("evaluate", "import", "export", "report")
    unknown = [a for a in extra if a.startswith("-") or "=" not in a or not takes]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = [*(args.overrides or []), *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    from fmlm.train.signals import Stopped, stops_raise

    args = parse_args(argv)
    try:
        check_unique_overrides(getattr(args, "overrides", None) or [])
        with stops_raise(args.command):  # SIGTERM / SIGINT: temporary folders removed, one line
            return args.func(args)
    except Stopped as err:
        print_error(err.message)
        return err.code
    except (ConfigError, ValueError) as err:
        print_error(err)
        return 2
    except OSError as err:  # a full disk, a read-only folder: one line naming the file and the cause
        print_error(f"{err.filename}: {err.strerror}" if err.filename and err.strerror else err)
        return 1


def print_error(err: BaseException | str) -> None:
    """One line on stderr, written at once (under torchrun the processes' lines never run together);
    processes other than rank 0 name their rank."""
    import os

    rank = int(os.environ.get("RANK", "0"))
    line = f"error{f' (rank {rank})' if rank else ''}: {err}".splitlines()[0]
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
