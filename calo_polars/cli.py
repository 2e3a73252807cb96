"""The command line: a thin click layer over ``calo_polars.audit`` and the output writers.

This is the only module that imports click. It parses options, calls the library and maps
the library's errors to one-line messages and exit codes:

0  done            1  done, with input problems, under --strict
2  usage error, or no input could be read at all
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from datetime import datetime
from decimal import Decimal, InvalidOperation

import click

from . import __version__
from .audit import AuditOptions, audit
from .checks import CheckOptions
from .errors import CaloError
from .inflate import Limits, parse_size
from .outputs import check_outdir, write_outputs
from .problems import InputProblem
from .summary import human_summary
from .synth import DEFAULT_RATES, Rates, SynthOptions, synthesize

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
#: Input problems printed one per line on stderr; the rest are counted by kind.
MAX_WARNINGS = 50
DEFAULT_LIMITS = Limits()


def _decimal(ctx: click.Context, param: click.Parameter, value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a decimal number (e.g. 0.0005)") from None
    if result < 0:
        raise click.BadParameter("must not be negative")
    return result


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if size <= 0:
        raise click.BadParameter("must be more than 0")
    return size


def warning_lines(problems: list[InputProblem], limit: int = MAX_WARNINGS) -> list[str]:
    """One ``warning:`` line per problem, the first ``limit`` of them, then a count of the rest."""
    lines = [f"warning: {p.one_line()}" for p in problems[:limit]]
    rest = Counter(p.kind for p in problems[limit:])
    if rest:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(rest.items()))
        lines.append(f"warning: ... and {sum(rest.values())} more input problems ({kinds}): see the InputProblems sheet")
    return lines


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="calo-balance")
def cli() -> None:
    """Audit wallet balances reconstructed from balance-sync Lambda logs."""


@cli.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=str))
@click.option("-o", "--out", "outdir", type=click.Path(path_type=str), help="Folder for the workbook and summary.json, never inside an input [default: $OUT_DIR or reports].")
@click.option("--tolerance", callback=_decimal, help="Largest difference counted as equal, in currency units [default: half the currency's minor unit].")
@click.option("--sigma", type=click.FloatRange(min=0, min_open=True), default=3.0, show_default=True, help="Delta anomaly threshold in standard deviations.")
@click.option("--window", type=click.IntRange(min=2), default=30, show_default=True, help="How many preceding deltas of the user the anomaly check looks at.")
@click.option("--min-history", type=click.IntRange(min=2), default=5, show_default=True, help="Preceding deltas needed before a delta is judged.")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True, help="Threads that decompress files.")
@click.option("--strict", is_flag=True, help="Exit 1 when any input problem was found (the outputs are still written).")
@click.option("--show-pii", is_flag=True, help="Show emails and phone numbers as logged [default: masked in every output].")
@click.option("--max-total-bytes", callback=_size, default="256G", show_default=True, help="Stop reading once the text read reaches this size (e.g. 20G, 1T).")
@click.option("--max-ratio", type=click.FloatRange(min=1), default=DEFAULT_LIMITS.max_ratio, show_default=True, help="Largest inflated/stored size of a file over 1 MiB; more is taken for a zip bomb and not read.")
def report(
    inputs: tuple[str, ...],
    outdir: str | None,
    tolerance: Decimal | None,
    sigma: float,
    window: int,
    min_history: int,
    threads: int,
    strict: bool,
    show_pii: bool,
    max_total_bytes: int,
    max_ratio: float,
) -> None:
    """Audit the logs in INPUTS and write the workbook and summary.json.

    INPUTS are CloudWatch Logs exports: a .zip, a folder (read recursively), .gz files or
    plain log files, in any mix and any order. With no INPUTS, $IN_DIR is read and $OUT_DIR
    written (the Docker contract). A file that cannot be read is reported (stderr, the
    InputProblems sheet, summary.json) and the others are still audited.

    \b
    Exit codes:
      0  the audit ran and wrote its outputs
      1  the same, but input problems were found and --strict was given
      2  a usage error, or not one input file could be read

    \b
    Example:
      calo-balance report balance-sync-logs.zip -o reports
    """
    if not inputs:
        env_in = os.environ.get("IN_DIR")
        if not env_in:
            raise click.UsageError("give at least one INPUT (a .zip, folder, .gz or log file), or set IN_DIR")
        inputs = (env_in,)
    outdir = outdir or os.environ.get("OUT_DIR") or "reports"
    if min_history > window:
        raise click.UsageError(f"--min-history ({min_history}) cannot exceed --window ({window})")
    options = AuditOptions(
        checks=CheckOptions(tolerance=tolerance, sigma=sigma, window=window, min_history=min_history),
        threads=threads,
        limits=Limits(max_total_bytes=max_total_bytes, max_ratio=max_ratio),
        mask_pii=not show_pii,
    )
    try:
        check_outdir(inputs, outdir)
        result = audit(inputs, options)
        written = write_outputs(result, outdir)
    except CaloError as exc:
        click.echo(f"calo-balance: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    problems = result.ingested.problems.ordered()
    for line in warning_lines(problems):
        click.echo(line, err=True)
    click.echo(human_summary(written.summary), err=True)
    click.echo(f"wrote {written.workbook} and {written.summary_path}", err=True)
    if strict and problems:
        sys.exit(EXIT_PROBLEMS)


RATE = click.FloatRange(0, 1)


@cli.command()
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=str), help="Where to write: ARCHIVE.zip, LOGS.gz (one multi-member gzip) or a new FOLDER.")
@click.option("--users", type=click.IntRange(min=1), default=200, show_default=True, help="Subscribers (one wallet each).")
@click.option("--days", type=click.IntRange(min=1), default=30, show_default=True, help="Days of logs, each with its 21:00 UTC deduction run.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed and options, same bytes.")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default="2024-01-01", show_default=True, help="First day (UTC).")
@click.option("--legacy-until", type=click.DateTime(["%Y-%m-%d"]), help="Blocks use the legacy layout before this day [default: a sixth into the period].")
@click.option("--overdraft-rate", type=RATE, default=DEFAULT_RATES.overdraft, show_default=True, help="Injected overdrafts, per transaction.")
@click.option("--mismatch-rate", type=RATE, default=DEFAULT_RATES.mismatch, show_default=True, help="Injected arithmetic mismatches, per transaction.")
@click.option("--flow-break-rate", type=RATE, default=DEFAULT_RATES.flow_break, show_default=True, help="Injected flow breaks, per transaction.")
@click.option("--anomaly-rate", type=RATE, default=DEFAULT_RATES.delta_anomaly, show_default=True, help="Injected delta anomalies, per transaction.")
@click.option("--duplicate-rate", type=RATE, default=DEFAULT_RATES.duplicate, show_default=True, help="Transactions logged twice (an SQS retry), per transaction.")
@click.option("--clean", is_flag=True, help="No faults at all: every fault rate 0 (the audit must flag nothing).")
@click.option("--out-of-order", type=RATE, default=0.33, show_default=True, help="Share of files whose chunks are written out of order.")
@click.option("--error-rate", type=RATE, default=0.002, show_default=True, help="Failing invocations (sync/invoke errors, timeouts, truncations), per message.")
@click.option("--crash-rate", type=RATE, default=0.03, show_default=True, help="Chance per day and 1,000 users of a burst of failed cold starts.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Processes that generate and compress.")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=str), help="Ground-truth JSON [default: beside the output, NAME.truth.json].")
def synth(out: str, users: int, days: int, seed: int, start: datetime, legacy_until: datetime | None, overdraft_rate: float,
          mismatch_rate: float, flow_break_rate: float, anomaly_rate: float, duplicate_rate: float, clean: bool,
          out_of_order: float, error_rate: float, crash_rate: float, workers: int, truth: str | None) -> None:  # fmt: skip
    """Write a synthetic CloudWatch export with known faults, and its ground truth.

    The archive has the real export's layout and every shape of its text; each injected
    fault is listed in NAME.truth.json as (kind, transaction id, user).

    \b
    Example:
      calo-balance synth -o synthetic.zip --users 1000 --days 60 --seed 7
      calo-balance report synthetic.zip -o reports
    """
    ctx = click.get_current_context()
    rates = Rates(overdraft_rate, mismatch_rate, flow_break_rate, anomaly_rate, duplicate_rate)
    if clean:
        given = [p.name for p in ctx.command.params if p.name and p.name.endswith("_rate") and p.name not in ("error_rate", "crash_rate")
                 and ctx.get_parameter_source(p.name) is click.core.ParameterSource.COMMANDLINE]  # fmt: skip
        if given:
            raise click.UsageError(f"--clean sets every fault rate to 0; do not also give --{given[0].replace('_', '-')}")
        rates = Rates()
    options = SynthOptions(
        users=users, days=days, seed=seed, start=start.date(),
        legacy_until=legacy_until.date() if legacy_until else None, rates=rates, out_of_order=out_of_order,
        error_rate=error_rate, crash_rate=crash_rate, workers=workers,
    )  # fmt: skip
    try:
        report = synthesize(options, out, truth)
    except CaloError as exc:
        click.echo(f"calo-balance: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    faults = ", ".join(f"{n} {k}" for k, n in report.faults.items())
    click.echo(
        f"wrote {report.path}: {report.files:,} files, {report.raw_bytes / 1e6:,.1f} MB of log text "
        f"({report.stored_bytes / 1e6:,.1f} MB gzipped), {report.transactions:,} transactions\n"
        f"faults: {faults}\nground truth: {report.truth_path}\n"
        f"{report.seconds:.1f} s, {report.raw_mb_per_s:,.0f} MB/s of raw log",
        err=True,
    )
