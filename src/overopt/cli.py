"""The `overopt` command: run | fit | report.

    overopt run --preset default --out runs/default
    overopt fit runs/default/bon.csv --form bon --kl-col kl_bound --reward-col gold --group-col rm
    overopt report runs/default

Bad input ends with one line on stderr naming what is wrong, and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

EXIT_USAGE = 2


class CLIError(Exception):
    pass


def _presets_help() -> str:
    from .config import list_presets

    return ", ".join(list_presets())


def cmd_run(args) -> int:
    from .config import help_text, load_config

    if args.help_config is not None:  # every field (or one section's) with its default and help
        print(help_text(args.help_config or None))
        return 0
    from .experiment import run_experiment

    cfg = load_config(args.preset if not (args.config and args.preset is None) else None,
                      args.config, args.set or [])
    out = Path(args.out or f"runs/{args.preset or Path(args.config).stem}")
    run_experiment(cfg, out, quiet=args.quiet, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {out}/report.html")
    return 0


def cmd_sweep(args) -> int:
    from .sweep import sweep

    _, cells = sweep(args.grid, args.launcher, args.out, args.retry_failed, args.ray_address, args.ray_cpus,
                     args.slurm_cluster, log=lambda m: print(m, file=sys.stderr))
    return 1 if (cells["status"] != "done").any() else 0  # a failed cell is recorded; the exit says it is not whole


def cmd_fit(args) -> int:
    """`online.fitlog.fit_log_file`, printed: the notes on how the log was read, then a table, the forecast or JSON."""
    from .online.fitlog import fit_log_file

    if not 0.01 <= args.alpha <= 0.2:
        raise CLIError(f"--alpha must be between 0.01 and 0.2 (the stop rule's calibrated range), got {args.alpha:g}")
    report = fit_log_file(args.file, args.form, args.kl_col, args.reward_col, args.group_col, args.n_boot,
                          args.step_col, args.until_kl, args.baseline, args.bins, args.kl_per_token, args.length_col,
                          args.proxy_col, args.alpha)
    for m in report.notes:
        print(f"overopt fit: note: {m}", file=sys.stderr)
    rows = report.rows
    if args.plot:
        from .report.logplot import plot_log_fits

        plot_log_fits(report.curves, args.plot)
    if args.json:  # every field, the verdict included, whichever view was asked for
        clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
                 for r in rows]
        print(json.dumps(clean, indent=2))
        return 0
    w = max([5] + [len(r["curve"]) for r in rows])
    span = lambda v, lo, hi: f"{v:>8.3g} [{lo:.3g}, {hi:.3g}]" if math.isfinite(v) else "-"  # noqa: E731
    num = lambda v, f: format(v, f) if v is not None and math.isfinite(v) else "-"  # noqa: E731
    g = args.proxy_col is not None
    if args.forecast:
        print(f"{'curve':<{w}} {'points':>6} {'KL now':>8} {'peak KL [interval]':>28} {'peak gain [interval]':>28}"
              + (f" {'gamma':>7}" if g else "") + "  verdict")
        for r in rows:  # no forecast is printed where the evidence gives none
            shown = not r["verdict"].startswith("inconclusive")
            print(f"{r['curve']:<{w}} {r['points']:>6} {num(r['kl_now'], '.3g'):>8} "
                  f"{span(r['kl_peak'], r['kl_peak_lo'], r['kl_peak_hi']) if shown else '-':>28} "
                  f"{span(r['gain_peak'], r['gain_peak_lo'], r['gain_peak_hi']) if shown else '-':>28}"
                  + (f" {num(r['gamma'], '.3g'):>7}" if g else "") + f"  {r['verdict']}")
        return 0
    print(f"{'curve':<{w}} {'form':<6} {'alpha [interval]':>28} {'beta [interval]':>28} {'r2':>6} {'kl_peak':>9} "
          f"{'gain_peak':>9}" + (f" {'gamma':>7}" if g else ""))
    for r in rows:
        print(f"{r['curve']:<{w}} {r['form']:<6} {span(r['alpha'], r['alpha_lo'], r['alpha_hi']):>28} "
              f"{span(r['beta'], r['beta_lo'], r['beta_hi']):>28} {num(r['r2'], '.3f'):>6} "
              f"{num(r['kl_peak'], '.3g'):>9} {num(r['gain_peak'], '.3g'):>9}" + (f" {num(r['gamma'], '.3g'):>7}" if g else ""))
    if all(r["kl_now"] is None or not math.isfinite(r["kl_now"]) for r in rows):
        print("no KL logged: no law to fit; --forecast gives the stop rule's verdict on the steps")
    return 0


def cmd_monitor(args) -> int:
    """Feed a training log to `overopt.online.monitor.Monitor` (`online.follow.watch_log`), printing the status
    whenever it changes; with --follow, keep reading the file as another process writes it. Ends at the first "stop"
    (the step where training should end), or with --follow after --max-wait seconds without a new line."""
    from .online.follow import watch_log
    from .online.monitor import Monitor

    try:
        mon = Monitor(form=args.form, alpha=args.alpha, drop=args.drop, patience=args.patience, ratio=args.ratio,
                      disagreement_rise=args.disagreement_rise)
    except ValueError as e:  # the thresholds, named as the options
        raise CLIError(str(e).replace("patience", "--patience").replace("drop", "--drop").replace("alpha", "--alpha")
                       .replace("ratio", "--ratio").replace("disagreement_rise", "--disagreement-rise"))
    members = tuple(c for c in (args.member_cols or "").split(",") if c)
    for line in watch_log(args.file, mon, args.follow, args.interval, args.max_wait, args.kl_col, args.reward_col,
                          args.step_col, args.kl_per_token, args.length_col, args.reference_col, members,
                          note=lambda m: print(f"overopt monitor: note: {m}", file=sys.stderr)):
        print(line, flush=True)
    return 0


def cmd_report(args) -> int:
    from .report.page import write_report

    path = write_report(args.dir)
    print(f"wrote {path}")
    return 0


def _log_columns(p) -> None:
    """The options that say which columns of a log hold what, shared by fit and monitor."""
    p.add_argument("--kl-col", help="KL column in nats (default: the first of kl, objective/kl, kl_bound, ... under "
                                    "any prefix such as train/ or eval_)")
    p.add_argument("--reward-col", help="reward column (default: the first of gold, reward, objective/scores, "
                                        "rewards/<name>/mean, ...)")
    p.add_argument("--step-col", help="step column (default: step, global_step, ...; else the log's order); "
                                      "repeated steps are averaged, unsorted ones sorted")
    p.add_argument("--kl-per-token", action="store_true",
                   help="the KL column is a mean per completion token: multiply it by the length column")
    p.add_argument("--length-col", help="mean completion length column (default: completions/mean_length, "
                                        "mean_completion_len, ... under any prefix)")


def _monitor_parser(sub) -> None:
    from .config import MonitorConfig

    m = sub.add_parser("monitor", help="watch a training log for overoptimization: ok, warn or stop, with reasons",
                       description=cmd_monitor.__doc__)
    m.add_argument("file", help="a log file (CSV, JSONL, trainer_state.json, W&B export), possibly still growing")
    m.add_argument("--follow", action="store_true", help="keep reading as the file grows, until the status is stop")
    m.add_argument("--interval", type=float, default=2.0, help="seconds between reads with --follow (default 2)")
    m.add_argument("--max-wait", type=float, default=0.0,
                   help="with --follow, give up after this many seconds without a new line (0: never)")
    _log_columns(m)
    m.add_argument("--reference-col", help="a reference score the proxy is checked against (a second RM, a small "
                                           "gold-labelled eval set)")
    m.add_argument("--member-cols", help="comma-separated ensemble member score columns (their spread is the "
                                         "disagreement)")
    m.add_argument("--form", choices=["bon", "rl"], default="rl", help="form fitted to the reference (default rl)")
    d = MonitorConfig()  # the defaults of monitor.* in a run's config
    m.add_argument("--alpha", type=float, default=d.alpha,
                   help=f"the chance the stop rules stop on noise over the whole log ({d.alpha:g}; 0.01 to 0.2)")
    m.add_argument("--drop", type=float, default=d.drop,
                   help=f"a significant fall of the reference must also be this share of its best gain ({d.drop:g})")
    m.add_argument("--patience", type=int, default=d.patience,
                   help=f"looks in a row a stop rule must fire before stop ({d.patience})")
    m.add_argument("--ratio", type=float, default=d.ratio,
                   help=f"divergence: the reference gaining less than this share of the proxy's gain ({d.ratio:g}; "
                        "each in its own units; 0 turns it off)")
    m.add_argument("--disagreement-rise", type=float, default=d.disagreement_rise,
                   help=f"relative rise of disagreement that warns (twice it stops; {d.disagreement_rise:g})")
    m.set_defaults(func=cmd_monitor)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="overopt", description="Measure, model and mitigate reward-model "
                                 "overoptimization (Gao et al. 2022 scaling laws).")
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run an experiment: world, proxies, best-of-n, fits, report",
                       description="Run the pipeline and write tables, fits and report.html into --out. "
                       "Built artifacts are cached by content hash, so a rerun resumes.")
    r.add_argument("--preset", default=None, help=f"named preset ({_presets_help()}); default: default")
    r.add_argument("--config", help="YAML config file, applied over the preset")
    r.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override one config value, e.g. --set rm.n_train=4000 (repeatable)")
    r.add_argument("--out", help="output directory (default: runs/PRESET)")
    r.add_argument("--quiet", action="store_true", help="no progress bars or stage lines")
    r.add_argument("--overwrite", action="store_true",
                   help="replace the run another config left in --out (without it such a folder is refused)")
    r.add_argument("--help-config", nargs="?", const="", metavar="SECTION",
                   help="print every config field (or one section's) with its default and help, then exit")
    r.set_defaults(func=cmd_run)

    f = sub.add_parser("fit", help="fit a functional form to a training log or a table of (KL, reward) points",
                       description="Fit R = d(alpha - beta d) (bon) or d(alpha - beta ln d) (rl), d = sqrt(KL), "
                       "with bootstrap intervals. The log is cut into at most --bins runs of consecutive steps and "
                       "their means are fitted, the reward at KL 0 a free parameter (--baseline first: the KL = 0 "
                       "row's, for exact evaluations); the bootstrap resamples steps within runs. Rows with an empty "
                       "KL or reward are skipped; repeated steps are averaged.")
    f.add_argument("file", help="CSV, JSONL, JSON, trainer_state.json, a run or checkpoint folder, TensorBoard "
                                "events (file or folder), W&B CSV export")
    f.add_argument("--form", choices=["bon", "rl"], default=None,
                   help="functional form (default: bon for a best-of-n table with kl_bound, else rl)")
    _log_columns(f)
    f.add_argument("--group-col", help="fit one curve per value of this column (a W&B export: one per run)")
    f.add_argument("--proxy-col", help="the optimized (proxy) reward, when the reward column is gold or a trusted "
                                       "judge: adds gamma, the area between the two fitted curves over the "
                                       "proxy's (after Kim et al. 2025)")
    f.add_argument("--baseline", choices=["fit", "first"], default="fit",
                   help="fit: the reward at KL 0 is fitted (default); first: gains over the KL = 0 row")
    f.add_argument("--bins", type=int, default=20, help="most runs of consecutive steps fitted (default 20)")
    f.add_argument("--forecast", action="store_true",
                   help="forecast the peak KL and gain with intervals, and say whether the log is past it (or why "
                        "the evidence cannot say)")
    f.add_argument("--until-kl", type=float, help="use only the points up to this KL (a forecast from a partial log)")
    f.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples for the intervals")
    f.add_argument("--json", action="store_true", help="print a JSON list: the fields of fits.csv, the verdict and the "
                                                       "stop rule's stop_step, best_step and tied_steps (with any view)")
    f.add_argument("--alpha", type=float, default=0.05,
                   help="the chance the stop rule says past the peak on noise over the whole log (0.05; 0.01 to 0.2)")
    f.add_argument("--plot", metavar="FILE.png", help="draw the points, the bins, the fit and the verdict")
    f.set_defaults(func=cmd_fit)

    _monitor_parser(sub)

    w = sub.add_parser("sweep", help="run a grid of configs locally, on Ray or on SLURM; resumable",
                       description="Every cell of GRID.yaml (preset/config/set, then grid: section.key -> values) "
                       "runs into OUT/cells/<config hash>/ with a DONE or FAILED marker; a rerun skips finished cells "
                       "and resumes unfinished ones. Finished cells aggregate into OUT/tables/ and OUT/report.html.")
    w.add_argument("grid", help="grid YAML file")
    w.add_argument("--launcher", choices=["local", "ray", "slurm"], default="local",
                   help="local: one cell after another here; ray: Ray tasks (resources: per cell); slurm: submitit")
    w.add_argument("--out", help="sweep folder (default: the grid's out:, else runs/sweep-GRID)")
    w.add_argument("--retry-failed", action="store_true", help="run the cells that failed before again")
    w.add_argument("--ray-address", help="join this Ray cluster (default: start a local one)")
    w.add_argument("--ray-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    w.add_argument("--slurm-cluster", choices=["slurm", "local", "debug"],
                   help="submitit executor (default: slurm where sbatch exists, else local)")
    w.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="rebuild report.html and plots/ from a run directory's tables")
    p.add_argument("dir", help="output directory of `overopt run`")
    p.set_defaults(func=cmd_report)
    return ap


def main(argv=None) -> int:
    from .errors import (ConfigError, DAAError, FitError, HFWorldError, LogError, ReportError, RLError, SweepError,
                         TrackingError, TrainingError)

    args = build_parser().parse_args(argv)
    if args.cmd == "run" and args.preset is None and not args.config:
        args.preset = "default"
    try:
        return args.func(args)
    except (CLIError, ConfigError, FitError, ReportError, LogError, HFWorldError, SweepError,
            TrackingError) as e:
        print(f"overopt {args.cmd}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (RLError, DAAError, TrainingError) as e:  # a numerical failure, not bad input: what is done is written
        print(f"overopt {args.cmd}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"overopt {args.cmd}: interrupted; run the same command again to resume from the cache",
              file=sys.stderr)
        return 130
    except OSError as e:
        print(f"overopt {args.cmd}: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
