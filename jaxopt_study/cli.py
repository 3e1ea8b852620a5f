"""`jaxopt-study`: the command line. It only parses arguments and wires the library together.

jaxopt-study run configs/optimizers.py --out runs/optimizers --set steps=300
jaxopt-study run optimizers_quick      (an experiment's config by name)
jaxopt-study list                      (the experiments in chapter order)

Compilation dominates small runs, so the commands keep JAX's persistent compilation cache in the
user's cache folder (`cache_dir`): a second run of the same programs loads them instead of
compiling. `--no-compile-cache` or `JAXOPT_STUDY_NO_COMPILE_CACHE=1` turns it off;
`JAXOPT_STUDY_CACHE_DIR` moves it.
"""

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import jax

from jaxopt_study import experiment, registry, tour
from jaxopt_study.config import ConfigError
from jaxopt_study.results import RunDirBusyError


def main(argv: Sequence[str] | None = None) -> int:
  parser = _parser()
  args = parser.parse_args(argv)
  if args.command is None:
    parser.print_help()
    return 0
  if not args.no_compile_cache and not os.environ.get("JAXOPT_STUDY_NO_COMPILE_CACHE"):
    use_compile_cache(cache_dir())
  return args.handler(args)


def cache_dir() -> Path:
  """`$JAXOPT_STUDY_CACHE_DIR`, else `$XDG_CACHE_HOME/jaxopt_study/jax` (`~/.cache/...`)."""
  if folder := os.environ.get("JAXOPT_STUDY_CACHE_DIR"):
    return Path(folder)
  base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
  return Path(base) / "jaxopt_study" / "jax"


def use_compile_cache(folder: Path) -> None:
  """JAX's persistent compilation cache in `folder`, for every program (however quick to compile:
  a run compiles many small ones)."""
  jax.config.update("jax_compilation_cache_dir", str(folder))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    prog="jaxopt-study",
    description="Run chapter 8 of Goodfellow, Bengio & Courville's Deep Learning on real models.",
    epilog=f"Compiled programs are cached in {cache_dir()} (JAXOPT_STUDY_CACHE_DIR moves it; "
    "--no-compile-cache or JAXOPT_STUDY_NO_COMPILE_CACHE=1 turns it off).",
  )
  parser.add_argument(
    "--no-compile-cache",
    action="store_true",
    help="do not keep JAX's compiled programs between runs",
  )
  commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
  run = commands.add_parser(
    "run",
    help="run an experiment config and write its results, plots and report.html",
    description="Runs configs/NAME.py. Started again with the same --out, it resumes.",
  )
  run.add_argument(
    "config",
    help="a config file (configs/optimizers.py) or an experiment's name (optimizers, "
    "optimizers_quick: its config in the repository's configs/)",
  )
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
  tour = commands.add_parser(
    "tour",
    help="run every experiment (quick configs) and write one report in chapter 8's order",
    description="Runs configs/*_quick.py (or the full configs) and writes OUT/report.html. "
    "Started again with the same --out, it resumes.",
  )
  tour.add_argument("--out", help="output folder (default: runs/tour-YYYYmmdd-HHMMSS)")
  tour.add_argument("--full", action="store_true", help="run the full configs (hours on a CPU)")
  tour.add_argument("--only", metavar="NAME,...", help="only these experiments, e.g. optimizers")
  tour.add_argument("--configs", help="folder of the configs (default: the repository's configs/)")
  tour.add_argument("--no-progress", action="store_true", help="hide the progress bars")
  tour.set_defaults(handler=_tour)
  listing = commands.add_parser(
    "list", help="the experiments in chapter 8's order, with their sections and titles"
  )
  listing.set_defaults(handler=_list)
  spectrum = commands.add_parser(
    "spectrum",
    help="Hessian spectrum and critical-point kind of a finished run's member; the curvature "
    "monitor's history",
    description="Writes spectrum-METHOD.csv, classification-METHOD.json and spectrum-METHOD.png "
    "into RUN_DIR (one set per method, so exact and Lanczos results sit side by side). When "
    "history.csv holds the curvature monitor's measurements (curvature_every), also draws them "
    "against the steps into curvature-history.png; --curvature draws only that.",
  )
  spectrum.add_argument(
    "run_dir", help="a finished run folder (`jaxopt-study run --out`, or sweep.run's out_dir)"
  )
  spectrum.add_argument(
    "--member",
    help="member of results.csv (default: summary.json's best_member, else lowest final "
    "training loss)",
  )
  spectrum.add_argument(
    "--best",
    action="store_true",
    help="the parameters early stopping kept (a run with early_stopping), not the final ones; "
    "writes spectrum-METHOD-best.*",
  )
  spectrum.add_argument("--method", choices=["exact", "lanczos"], default="exact")
  spectrum.add_argument("--k", type=int, help="Ritz values per end for --method lanczos")
  spectrum.add_argument(
    "--mode",
    choices=["train", "eval"],
    help="for models with BatchNorm or dropout: the loss in training or in inference mode",
  )
  spectrum.add_argument(
    "--curvature",
    action="store_true",
    help="only draw the curvature monitor's history (needs history.csv alone; --member: that "
    "member only)",
  )
  spectrum.set_defaults(handler=_spectrum)
  return parser


def _run(args: argparse.Namespace) -> int:
  try:
    config_path = registry.config_path(args.config)
    _join_processes(args)
    prepared = experiment.prepare(config_path, args.overrides)
  except (ConfigError, ValueError) as error:
    print(f"jaxopt-study: error: {error}", file=sys.stderr)
    return 2
  out = Path(args.out or Path("runs") / config_path.stem)
  writer = jax.process_index() == 0  # under --distributed, process 0 alone writes
  try:
    finished = experiment.execute(prepared, out, progress=not args.no_progress, write=writer)
  except ValueError as error:  # --out holds another run, or another process writes there
    print(f"jaxopt-study: error: {error}", file=sys.stderr)
    return 2
  except OSError as error:  # --out is a file, cannot be made, the disk is full
    print(
      f"jaxopt-study: error: cannot write the run folder {out}: {_os_reason(error)}",
      file=sys.stderr,
    )
    return 2
  except KeyboardInterrupt:
    return _interrupted(out)
  if writer:
    if finished.resumed_members:
      print(f"resumed {out}: {finished.resumed_members} finished member(s) were kept")
    print(
      f"{prepared.config.get('experiment', 'sweep')}: {finished.num_rows} runs in "
      f"{finished.seconds:.0f} s "
      f"-> {out / 'report.html'}"
    )
  return 0


def _list(args: argparse.Namespace) -> int:
  del args
  try:
    for name in registry.CHAPTER_ORDER:
      found = registry.load(name)
      print(f"{found.SECTION:<7} {name:<28} {found.TITLE}")
  except ConfigError as error:
    print(f"jaxopt-study: error: {error}", file=sys.stderr)
    return 2
  return 0


def _tour(args: argparse.Namespace) -> int:
  out = Path(args.out or Path("runs") / time.strftime("tour-%Y%m%d-%H%M%S"))
  only = None
  if args.only is not None:
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    if not only:  # an empty shell variable would otherwise run every experiment
      print(f"jaxopt-study: error: --only={args.only!r} names no experiment", file=sys.stderr)
      return 2
  try:
    result = tour.run(
      out,
      configs=Path(args.configs) if args.configs else None,
      full=args.full,
      only=only,
      progress=not args.no_progress,
    )
  except (ConfigError, RunDirBusyError) as error:
    print(f"jaxopt-study: error: {error}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    return _interrupted(out)
  ran = len(result.outcomes) - len(result.failed)
  failures = f" ({len(result.failed)} failed: {', '.join(result.failed)})" if result.failed else ""
  print(
    f"tour: {ran} of {len(result.outcomes)} experiments ran in {result.seconds / 60:.1f} min"
    f"{failures} -> {result.report}"
  )
  return 1 if result.failed else 0


def _os_reason(error: OSError) -> str:
  """An operating system error as words and the file it concerns ("No space left on device:
  runs/x/results.csv"), without the errno number."""
  reason = error.strerror or str(error)
  return f"{reason}: {error.filename}" if error.filename else reason


def _interrupted(out: Path) -> int:
  """Ctrl-C: no traceback; says what was kept and how to go on (exit status 130, as a shell's)."""
  print(
    f"\njaxopt-study: interrupted. The finished work in {out} is kept: run the same command "
    f"with --out {out} to resume it.",
    file=sys.stderr,
  )
  return 130


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

  run_dir = Path(args.run_dir)
  if args.best and args.curvature:
    print(
      "jaxopt-study: error: --best picks the parameters a spectrum is taken at; --curvature "
      "draws the monitor's history, which has none to pick",
      file=sys.stderr,
    )
    return 2
  try:
    if not args.curvature:
      verdict = analyze.spectrum_of_run(
        run_dir, member=args.member, method=args.method, k=args.k, mode=args.mode, best=args.best
      )
    members = [args.member] if args.curvature and args.member else None
    has_history = args.curvature or (run_dir / "history.csv").is_file()
    curves = analyze.curvature_history(run_dir, members=members) if has_history else {}
  except ValueError as error:
    print(f"jaxopt-study: error: {error}", file=sys.stderr)
    return 2
  if not args.curvature:
    suffix = "-best" if args.best else ""
    print(
      f"{verdict['member']}: {verdict['kind']} (index {verdict['index']}, "
      f"λ from {verdict['lambda_min']} to {verdict['lambda_max']}, ‖g‖ = {verdict['grad_norm']})"
      f" -> {run_dir / f'classification-{args.method}{suffix}.json'}"
    )
  if curves:
    print(f"curvature monitor ({', '.join(curves)}) -> {run_dir / analyze.CURVATURE_FIGURE}")
  elif args.curvature:
    print(
      f"jaxopt-study: error: {run_dir}/history.csv holds no curvature monitor metric: train "
      "with curvature_every=<steps> to record one",
      file=sys.stderr,
    )
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
