"""`shiftlake`: the command line.

    shiftlake demo                 toy world (or BASE_MODEL/CHECKPOINTS_URL) through every asset
    shiftlake study --base B --checkpoints C --problems P   a real study: checks and prints the plan, then runs it
    shiftlake status               where each checkpoint stands: analysed, stale, failed, running, waiting, pending
    shiftlake check                every data-quality check on the lake (LAKE_URL); exits 1 naming failures
    shiftlake demo --live          toy GRPO writes checkpoints while the sensor and daemon analyse them
    shiftlake sql "SELECT ..."     SQL over the lake's views; --file F or a query name from sql/queries
    shiftlake report --checkpoint K   the eight figures of checkpoint K as one HTML file in the lake
    shiftlake toyworld             build (or find) the toy world and print its folders
    shiftlake ui                   Dagster webserver and daemon (dagster dev) on this code location
    shiftlake bench                paired-pass and cross-sampling throughput, demo stage times (--only ray: on Ray)

Kept whole although over 250 lines: one small function per command and the one argparse table that
names them all; splitting would separate each command from its options.
"""

from __future__ import annotations

import argparse
import sys


def cmd_sql(args) -> int:
    from compute import lakesql, storage

    if args.list:
        print("\n".join(lakesql.list_queries()))
        return 0
    if not (args.query or args.file):
        print("shiftlake sql: give a query, a query name, or --file PATH", file=sys.stderr)
        return 2
    text = lakesql.query_text(args.file or args.query)
    if args.file and text == args.file:
        print(f"shiftlake sql: no query file {args.file}; known queries: {', '.join(lakesql.list_queries())}",
              file=sys.stderr)
        return 2
    url = storage.resolve_lake_url(args.lake)
    try:
        with storage.store_errors(url, "running the query"):
            frame = lakesql.run(text, url)
    except (LookupError, storage.LakeUnavailable) as e:
        print(f"shiftlake sql: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a DuckDB parse or binder error: show it without a traceback
        print(f"shiftlake sql: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(lakesql.render(frame, args.format))
    return 0


def cmd_report(args) -> int:
    from pathlib import Path

    from compute import lake, lakesql, report, storage

    url = storage.resolve_lake_url(args.lake)
    try:
        with storage.store_errors(url, "making the report"):
            keys = args.checkpoint or lakesql.run("SELECT checkpoint FROM checkpoints WHERE role <> 'base' "
                                                  "ORDER BY role, step", url)["checkpoint"].to_list()
            for key in keys:
                path, drawn = report.write_report(url, key)
                missing = [f for f in drawn if isinstance(f, str)]
                print(path + "".join(f"\n  {m}" for m in missing))
                if args.out:
                    target = Path(args.out) / key / report.FILE if len(keys) > 1 else Path(args.out)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(lake.read_file(url, report.TABLE, lake.checkpoint_partition(key), report.FILE))
                    print(f"  copied to {target}")
    except (LookupError, storage.LakeUnavailable) as e:
        print(f"shiftlake report: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_toyworld(args) -> int:
    from compute.toyworld.world import build_world, named_config

    folder = build_world(named_config(args.world))
    print(f"base model:  {folder / 'base'}\ncheckpoints: {folder / 'checkpoints'}\nproblems:    {folder / 'problems.jsonl'}")
    return 0


def cmd_demo(args) -> int:
    import os

    if args.world:
        os.environ["SHIFTLAKE_TOY_WORLD"] = args.world
    if args.sft or args.ab:
        given = [v for v in ("BASE_MODEL", "CHECKPOINTS_URL", "PROBLEMS_URL") if os.environ.get(v)]
        if args.live or given:
            print("shiftlake demo: --sft and --ab add the toy world's SFT run and A/B to the demo's study; "
                  + ("they do not apply to --live" if args.live else f"unset {', '.join(given)} (a study of your own "
                     "takes SFT_CHECKPOINTS_URL and AB_CURVES_URL instead)"), file=sys.stderr)
            return 2
    for flag, variable in ((args.sft, "SHIFTLAKE_TOY_SFT"), (args.ab, "SHIFTLAKE_TOY_AB")):
        if flag:
            os.environ[variable] = "1"
    from orchestration.app.demo import run_demo
    from orchestration.app.live import run_live

    if args.live:
        run_live(ui=not args.no_ui)
        return 0
    return _reporting_failures("demo", run_demo)


def _reporting_failures(command: str, action) -> int:
    """Run `action()`; a failure prints one message (what, where, the fix) and the path of its full log."""
    import time
    import traceback

    from orchestration.app.runs import Interrupted, StudyFailed, log_dir

    try:
        action()
    except KeyboardInterrupt as interrupted:  # Ctrl-C: what finished is stored; the exit status a shell expects
        when = f" {interrupted}" if isinstance(interrupted, Interrupted) else ""
        print(f"\nshiftlake {command}: interrupted{when}; what finished before it is stored", file=sys.stderr)
        return 130
    except StudyFailed as failed:
        print(f"shiftlake {command}: {failed}\n  full log: {failed.log}", file=sys.stderr)
        return 1
    except (OSError, ValueError, LookupError) as e:  # bad settings or inputs found before any run started
        path = log_dir() / f"{command}-{int(time.time())}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(traceback.format_exc())
        print(f"shiftlake {command}: {e}\n  full log: {path}", file=sys.stderr)
        return 1
    return 0


STUDY_OPTIONS = {"base": "BASE_MODEL", "checkpoints": "CHECKPOINTS_URL", "problems": "PROBLEMS_URL",
                 "lake": "LAKE_URL", "template": "SHIFTLAKE_PROMPT_TEMPLATE", "system": "SHIFTLAKE_SYSTEM_PROMPT",
                 "verifier": "SHIFTLAKE_VERIFIER", "sft_checkpoints": "SFT_CHECKPOINTS_URL"}


def cmd_study(args) -> int:
    """Options override their environment variables; the plan is checked before any model work."""
    import os

    for option, variable in STUDY_OPTIONS.items():
        if getattr(args, option) is not None:
            os.environ[variable] = getattr(args, option)
    missing = [f"--{o} (or {v})" for o, v in list(STUDY_OPTIONS.items())[:3] if not os.environ.get(v)]
    if missing:
        print(f"shiftlake study: give {', '.join(missing)}; `shiftlake demo` runs the toy world instead", file=sys.stderr)
        return 2
    from compute.settings import from_env
    from orchestration.app.plan import study_plan

    try:
        plan = study_plan(from_env())
    except ValueError as e:  # a setting that does not parse
        print(f"shiftlake study: {e}", file=sys.stderr)
        return 2
    print("\n".join(plan.lines))
    if plan.errors:
        print("\nshiftlake study: cannot start:\n" + "\n".join(f"  - {e}" for e in plan.errors), file=sys.stderr)
        return 2
    if args.plan:
        return 0
    print(f"\nanalysing {len(plan.ready)} checkpoint(s); `make ui` (or `shiftlake ui`) watches for new ones\n")
    from orchestration.app.demo import run_demo

    return _reporting_failures("study", lambda: run_demo(by="study"))


def cmd_status(args) -> int:
    import os

    import dagster as dg

    from compute.settings import from_env
    from orchestration.app import location
    from orchestration.app.demo import ensure_dagster_home
    from orchestration.app.status import checkpoint_status
    from orchestration.automation.staleness import asset_specs

    for option in ("base", "checkpoints", "sft_checkpoints"):
        if getattr(args, option) is not None:
            os.environ[STUDY_OPTIONS[option]] = getattr(args, option)
    home = ensure_dagster_home()
    try:
        settings = from_env()
        specs = asset_specs(location.load().get_repository_def())
        with dg.DagsterInstance.get() as instance:
            rows = checkpoint_status(instance, settings, specs, settings.recorded())
    except (OSError, ValueError) as e:  # no such checkpoint folder, a setting that does not parse
        print(f"shiftlake status: {e}", file=sys.stderr)
        return 2
    print(f"checkpoints under {settings.checkpoints_url}; Dagster instance {home}")
    for row in rows:
        print(f"  {row.key:<24} {row.state:<9} {row.detail}")
    if not rows:
        print("  none found or registered")
    return 1 if any(r.state == "failed" for r in rows) else 0


def cmd_check(args) -> int:
    from compute import storage
    from compute.quality import check_lake

    url = storage.resolve_lake_url(args.lake)
    try:
        with storage.store_errors(url, "checking the lake"):
            results = check_lake(url)
    except storage.LakeUnavailable as e:
        print(f"shiftlake check: {e}", file=sys.stderr)
        return 1
    failed = [(p, r) for p, r in results if not r.passed]
    for partition, r in results:
        where = f"{r.table}[{partition}]" if partition else r.table
        print(f"{'ok  ' if r.passed else 'FAIL'} {where}.{r.check}" + ("" if r.passed else ": " + "; ".join(r.failures)))
    if not results:
        print(f"no table to check in {url}: materialise the assets first (make demo)", file=sys.stderr)
        return 1
    print(f"{len(results) - len(failed)} of {len(results)} checks passed on {url}")
    return 1 if failed else 0


def cmd_bench(args) -> int:
    """The benchmarks are their own program above the application: `python -m orchestration.bench.bench`."""
    import os

    os.execv(sys.executable, [sys.executable, "-m", "orchestration.bench.bench", "--only", args.only])


def cmd_ui(args) -> int:
    import os

    from orchestration.app.demo import ensure_dagster_home
    from orchestration.app.location import CODE_LOCATION

    ensure_dagster_home()
    passed = [a for a in args.dagster_args if a != "--"]
    if not {"-h", "--host"} & {a.split("=")[0] for a in passed}:
        passed = ["-h", "127.0.0.1", *passed]  # this machine only, unless a host is given
    argv = [sys.executable, "-m", "dagster", "dev", "-m", CODE_LOCATION, *passed]
    os.execv(sys.executable, argv)


TOY_WORLDS = ("default", "emergent", "small")  # compute.toyworld.world.WORLDS, named here without importing torch
TOY_DEFAULT = ("status", "ui")  # commands whose unset inputs mean the toy world (`demo` and `toyworld` build it)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shiftlake", description="Token-level studies of RL fine-tuning.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sql", help="run SQL over the lake (DuckDB views of every table)")
    p.add_argument("query", nargs="?", help="SQL text, or the name of a query in sql/queries")
    p.add_argument("--file", help="a .sql file to run")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--lake", help="lake URL (default: $LAKE_URL or ./lake)")
    p.add_argument("--list", action="store_true", help="list the named queries")
    p.set_defaults(func=cmd_sql)
    p = sub.add_parser("report", help="write the HTML report of a checkpoint into the lake (reports/checkpoint=K)")
    p.add_argument("--checkpoint", action="append", help="checkpoint key (repeatable; default: every RL checkpoint)")
    p.add_argument("--lake", help="lake URL (default: $LAKE_URL or ./lake)")
    p.add_argument("--out", help="also copy it here (a file; a folder with several checkpoints), e.g. from S3")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("toyworld", help="build the toy RLVR world (cached by config hash)")
    p.add_argument("--world", choices=TOY_WORLDS)
    p.set_defaults(func=cmd_toyworld)
    p = sub.add_parser("demo", help="run the study end to end on the toy world (or BASE_MODEL)")
    p.add_argument("--world", choices=TOY_WORLDS)
    p.add_argument("--live", action="store_true",
                   help="the toy GRPO run writes checkpoints while the sensor picks them up (own lake and instance)")
    p.add_argument("--no-ui", action="store_true", help="with --live: the daemon only, no webserver")
    p.add_argument("--sft", action="store_true", help="also a supervised run on the RL policy's correct samples, "
                   "analysed beside it as role sft (SHIFTLAKE_TOY_SFT=1)")
    p.add_argument("--ab", action="store_true", help="also the A/B of GRPO with and without divergence-weighted "
                   "advantages, 3 seeds each, as training curves (SHIFTLAKE_TOY_AB=1)")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("study", help="a real study: check everything, print the plan, then analyse every checkpoint")
    for option, variable in STUDY_OPTIONS.items():
        p.add_argument(f"--{option.replace('_', '-')}", dest=option, help=f"default: ${variable}")
    p.add_argument("--plan", action="store_true", help="check and print the plan only")
    p.set_defaults(func=cmd_study)
    p = sub.add_parser("status", help="where each checkpoint stands (analysed, stale, failed, running, waiting, ...)")
    p.add_argument("--base", help="default: $BASE_MODEL")
    p.add_argument("--checkpoints", help="default: $CHECKPOINTS_URL")
    p.add_argument("--sft-checkpoints", dest="sft_checkpoints", help="default: $SFT_CHECKPOINTS_URL "
                   "(after `shiftlake demo --sft`: SHIFTLAKE_TOY_SFT=1 shiftlake status)")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("check", help="run every data-quality check against the lake; non-zero exit on a failure")
    p.add_argument("--lake", help="lake URL (default: $LAKE_URL or ./lake)")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("ui", add_help=False, help="Dagster webserver and daemon (dagster dev) on this code location; "
                       "dagster dev's options pass through, e.g. -p 3001 -h 0.0.0.0 --log-level debug "
                       "(host 127.0.0.1 unless given; --help: dagster dev's)")
    p.set_defaults(func=cmd_ui)
    p = sub.add_parser("bench", help="paired-pass and cross-sampling throughput (toy and Qwen2.5-1.5B-shaped), "
                                     "demo stage times; --only ray: cross-sampling on 1 vs 2 Ray workers")
    p.add_argument("--only", default="paired,cross,demo,checks,sensor,s3",
                   help="parts to run (default: paired,cross,demo,checks,sensor,s3; also: ray)")
    p.set_defaults(func=cmd_bench)
    args, extra = parser.parse_known_args(argv)
    if args.command == "ui":
        args.dagster_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command in TOY_DEFAULT:
        from orchestration.app import toy

        toy.toy_inputs()  # inputs left unset: the toy world's (`demo` trains it first when not cached)
    try:
        return args.func(args)
    except Exception as e:  # the instance's PostgreSQL is down: one line, not dagster-postgres' traceback
        if type(e).__name__ != "DagsterPostgresException":
            raise
        print(f"shiftlake {args.command}: the Dagster instance's PostgreSQL (DAGSTER_PG_URL) does not answer ({e}): "
              "start it (make pg-up), or unset DAGSTER_PG_URL for the SQLite instance", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
