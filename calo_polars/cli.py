"""The command line: a thin click layer over ``calo_polars.audit`` and the output writers.

This is the only module that imports click. It parses options, calls the library and maps
the library's errors to one-line messages and exit codes:

0  done            2  usage error, or no input could be read at all
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal, InvalidOperation

import click

from . import __version__
from .audit import AuditOptions, audit
from .checks import CheckOptions
from .errors import CaloError
from .outputs import write_outputs
from .summary import human_summary

EXIT_OK = 0
EXIT_USAGE = 2


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="calo-balance")
def cli() -> None:
    """Audit wallet balances reconstructed from balance-sync Lambda logs."""


@cli.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=str))
@click.option("-o", "--out", "outdir", type=click.Path(file_okay=False, path_type=str), help="Folder for the workbook and summary.json [default: $OUT_DIR or reports].")
@click.option("--tolerance", callback=_decimal, help="Largest difference counted as equal, in currency units [default: half the currency's minor unit].")
@click.option("--sigma", type=click.FloatRange(min=0, min_open=True), default=3.0, show_default=True, help="Delta anomaly threshold in standard deviations.")
@click.option("--window", type=click.IntRange(min=2), default=30, show_default=True, help="How many preceding deltas of the user the anomaly check looks at.")
@click.option("--min-history", type=click.IntRange(min=2), default=5, show_default=True, help="Preceding deltas needed before a delta is judged.")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True, help="Threads that decompress files.")
def report(inputs: tuple[str, ...], outdir: str | None, tolerance: Decimal | None, sigma: float, window: int, min_history: int, threads: int) -> None:
    """Audit the logs in INPUTS and write the workbook and summary.json.

    INPUTS are CloudWatch Logs exports: a .zip, a folder (read recursively), .gz files or
    plain log files, in any mix. With no INPUTS, $IN_DIR is read and $OUT_DIR written
    (the Docker contract).

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
        checks=CheckOptions(tolerance=tolerance, sigma=sigma, window=window, min_history=min_history), threads=threads
    )
    try:
        result = audit(inputs, options)
        written = write_outputs(result, outdir)
    except CaloError as exc:
        click.echo(f"calo-balance: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    for problem in result.ingested.problems.items:
        click.echo(f"warning: {problem.one_line()}", err=True)
    click.echo(human_summary(written.summary), err=True)
    click.echo(f"wrote {written.workbook} and {written.summary_path}", err=True)
