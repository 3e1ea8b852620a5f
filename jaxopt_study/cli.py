"""`jaxopt-study`: the command line. It only parses arguments and wires the library together.

jaxopt-study run configs/optimizers.py --out runs/optimizers --set steps=300
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import jax

from jaxopt_study import experiment
from jaxopt_study.config import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
  parser = _parser()
  args = parser.parse_args(argv)
  if args.command is None:
    parser.print_help()
    return 0
  return args.handler(args)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    prog="jaxopt-study",
    description="Run chapter 8 of Goodfellow, Bengio & Courville's Deep Learning on real models.",
  )
  commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
  run = commands.add_parser(
    "run",
    help="run an experiment config and write its results, plots and report.html",
    description="Runs configs/NAME.py. Started again with the same --out, it resumes.",
  )
  run.add_argument("config", help="path of a config file, e.g. configs/optimizers.py")
  run.add_argument("--out", help="output folder (default: runs/NAME, NAME the config's file name)")
  run.add_argument(
    "--set",
    dest="overrides",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="override a config field, e.g. --set steps=300 --set model.width=32 (repeatable)",
  )
  run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
  hosts = run.add_argument_group(
    "several hosts (jax.distributed)",
    "Run the same command on every host. Process 0 writes the results; --out must be shared.",
  )
  hosts.add_argument(
    "--distributed",
    action="store_true",
    help="join a jax.distributed job; on SLURM or Open MPI the three options below are found",
  )
  hosts.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
  hosts.add_argument("--num-processes", type=int, metavar="N", help="number of processes")
  hosts.add_argument("--process-id", type=int, metavar="I", help="this process, 0 .. N-1")
  run.set_defaults(handler=_run)
  spectrum = commands.add_parser(
    "spectrum",
    help="Hessian spectrum and critical-point kind of a finished run's member",
    description="Writes spectrum.csv, classification.json and spectrum.png into RUN_DIR.",
  )
  spectrum.add_argument("run_dir", help="the --out folder of a finished `jaxopt-study run`")
  spectrum.add_argument("--member", help="member of results.csv (default: lowest final loss)")
  spectrum.add_argument("--method", choices=["exact", "lanczos"], default="exact")
  spectrum.add_argument("--k", type=int, help="Ritz values per end for --method lanczos")
  spectrum.add_argument(
    "--mode", choices=["train", "eval"], help="BatchNorm statistics: batch (train) or running"
  )
  spectrum.set_defaults(handler=_spectrum)
  return parser


def _run(args: argparse.Namespace) -> int:
  config_path = Path(args.config)
  try:
    _join_processes(args)
    prepared = experiment.prepare(config_path, args.overrides)
  except (ConfigError, ValueError) as error:
    print(f"jaxopt-study: error: {error}", file=sys.stderr)
    return 2
  out = Path(args.out or Path("runs") / config_path.stem)
  writer = jax.process_index() == 0  # under --distributed, process 0 alone writes
  try:
    finished = experiment.execute(prepared, out, progress=not args.no_progress, write=writer)
  except ValueError as error:  # raised before running: --out holds another config's run
    print(f"jaxopt-study: error: {error}", file=sys.stderr)
    return 2
  if writer:
    if finished.resumed_members:
      print(f"resumed {out}: {finished.resumed_members} finished member(s) were kept")
    print(
      f"{prepared.config.experiment}: {finished.num_rows} runs in {finished.seconds:.0f} s "
      f"-> {out / 'report.html'}"
    )
  return 0


def _join_processes(args: argparse.Namespace) -> None:
  """Calls `jax.distributed.initialize` for --distributed (before any JAX computation).

  Raises:
    ConfigError: a host option is given without --distributed, or only some of the three.
  """
  options = {
    "coordinator_address": args.coordinator,
    "num_processes": args.num_processes,
    "process_id": args.process_id,
  }
  given = {name: value for name, value in options.items() if value is not None}
  if not args.distributed:
    if given:
      raise ConfigError("--coordinator, --num-processes and --process-id need --distributed")
    return
  if given and len(given) < len(options):
    raise ConfigError(
      "--distributed: give all of --coordinator, --num-processes and --process-id, or none "
      "(SLURM / Open MPI)"
    )
  if args.num_processes is not None and not 0 <= args.process_id < args.num_processes:
    raise ConfigError(
      f"--process-id={args.process_id}: must be in 0 .. {args.num_processes - 1} "
      f"(--num-processes={args.num_processes})"
    )
  jax.distributed.initialize(**given)


def _spectrum(args: argparse.Namespace) -> int:
  from jaxopt_study import analyze  # imports the Hessian code only for this command

  try:
    verdict = analyze.spectrum_of_run(
      Path(args.run_dir), member=args.member, method=args.method, k=args.k, mode=args.mode
    )
  except ValueError as error:
    print(f"jaxopt-study: error: {error}", file=sys.stderr)
    return 2
  print(
    f"{verdict['member']}: {verdict['kind']} (index {verdict['index']}, "
    f"λ from {verdict['lambda_min']} to {verdict['lambda_max']}, ‖g‖ = {verdict['grad_norm']})"
    f" -> {Path(args.run_dir) / 'classification.json'}"
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
