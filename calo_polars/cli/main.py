"""The command line: a thin click layer over ``calo_polars.audit.run`` and the output writers.

This is the only module that imports click. It parses options (each family declared once, as
a decorator that also builds the library object it configures), calls the library and maps
the library's errors to one-line messages and exit codes:

0  done            1  done, with input problems, under --strict
2  usage error, or no input could be read at all (missing file, S3 unreachable...), a damaged
   or locked state, a damaged store, or something could not be written (a full disk...)
3  done, and a --fail-on condition was found (wins over 1)
130 / 143  stopped by SIGINT (Ctrl-C) / SIGTERM (``cli.signals``)

stderr is for people (progress bar on a terminal, warnings, the summary table); stdout
lists the files written, one per line, for scripts.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import click
import polars as pl

from calo_polars.audit import state as state_file
from calo_polars.audit.result import AuditOptions, AuditResult
from calo_polars.audit.run import audit
from calo_polars.audit.selection import Selection, parse_moment
from calo_polars.checks.plan import CheckOptions
from calo_polars.cli.params import Number, count
from calo_polars.cli.progress import AuditProgress, input_size, plain_text, say, stderr_console, summary_table
from calo_polars.cli.signals import Interrupted, interruptible
from calo_polars.errors import CaloError, UsageError
from calo_polars.partitioned import oneshot
from calo_polars.partitioned.engines import ENGINES, Engine
from calo_polars.partitioned.merge import audit_store
from calo_polars.partitioned.store import DEFAULT_PARTITIONS, ingest_into, open_store
from calo_polars.problems import InputProblem, printable
from calo_polars.read.inflate import Limits, parse_size
from calo_polars.read.s3 import S3Options, is_s3, resolve
from calo_polars.read.sizes import stored_bytes
from calo_polars.report.alerts import (
    ALERTS,
    GROUPS,
    alert_line,
    check_url,
    parse_fail_on,
    post,
    top_users,
    triggered,
    webhook_payload,
)
from calo_polars.report.exports import LEDGER_PARQUET
from calo_polars.report.ledger import CONTEXT, MAX_ROWS
from calo_polars.report.mail import SECURITY_PORTS, MailSettings, build_message, check_address, html_report, send
from calo_polars.report.outputs import DEFAULT_FORMATS, FORMATS, check_outdir, write_outputs
from calo_polars.synth import DEFAULT_RATES, Rates, SynthOptions, synthesize
from calo_polars.version import __version__

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_ALERT = 3
#: Input problems printed one per line on stderr; the rest are counted by kind.
MAX_WARNINGS = 50
DEFAULT_LIMITS = Limits()
#: The largest --max-total-bytes (1024T): more is a typo, and Python ints have no limit.
MAX_SIZE = 1 << 50


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not 0 < size <= MAX_SIZE:
        raise click.BadParameter("must be more than 0 and at most 1024T")
    return size


def unknown_users(result: AuditResult, selection: Selection) -> list[str]:
    """A warning for each ``--user`` of whom nothing was read: an empty report says why."""
    if not selection.users:
        return []
    seen = set(result.parts.filter(pl.lit(True), "user_id")["user_id"].cast(pl.String).to_list())
    seen |= set(result.ingested.notices["user_id"].cast(pl.String).drop_nulls().to_list())
    return [
        f"warning: --user {printable(user)}: no transaction or message of this user was read; the report is empty"
        for user in selection.users
        if user not in seen
    ]


def warning_lines(problems: list[InputProblem], limit: int = MAX_WARNINGS) -> list[str]:
    """One ``warning:`` line per problem, the first ``limit`` of them, then a count of the rest."""
    lines = [f"warning: {p.one_line()}" for p in problems[:limit]]
    rest = Counter(p.kind for p in problems[limit:])
    if rest:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(rest.items()))
        lines.append(
            f"warning: ... and {sum(rest.values())} more input problems ({kinds}): see the InputProblems sheet"
        )
    return lines


def _listed(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeatable options that also take comma-separated values: each value once, in order."""
    return tuple(dict.fromkeys(v.strip() for value in values for v in value.split(",") if v.strip()))


def _moment(end_of_day: bool) -> Callable[[click.Context, click.Parameter, str | None], datetime | None]:
    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
        if value is None:
            return None
        try:
            return parse_moment(value, end_of_day=end_of_day)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


def _formats(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    chosen = _listed(ctx, param, values) or DEFAULT_FORMATS
    unknown = [f for f in chosen if f.lower() not in FORMATS]
    if unknown:
        raise click.BadParameter(
            f"{unknown[0]!r} is not a format: choose among {', '.join(FORMATS)} (several with commas)"
        )
    return tuple(f.lower() for f in chosen)


def _fail_on(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return parse_fail_on(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if not value:
        return None
    try:
        return check_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _options(*decorators: Callable[[Any], Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Stack click options so they read top to bottom in --help."""

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


# ---------------------------------------------------------------- option families, declared once


def input_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """INPUTS and how to read them → ``inputs``, ``limits``, ``s3``, ``threads``."""

    @functools.wraps(f)
    def command(*args: Any, inputs: tuple[str, ...], endpoint_url: str | None, no_sign_request: bool,
                max_total_bytes: int, max_ratio: float, **kwargs: Any) -> Any:  # fmt: skip
        limits = Limits(max_total_bytes=max_total_bytes, max_ratio=max_ratio)
        s3 = S3Options(endpoint_url=endpoint_url, anonymous=no_sign_request)
        return f(*args, inputs=inputs, limits=limits, s3=s3, **kwargs)

    return _options(
        click.argument("inputs", nargs=-1, type=click.Path(path_type=str)),
        click.option(
            "--endpoint-url",
            metavar="URL",
            help="S3-compatible endpoint for s3:// inputs (MinIO, LocalStack...) [default: AWS, or $AWS_ENDPOINT_URL].",
        ),
        click.option(
            "--no-sign-request", is_flag=True, help="Read s3:// inputs without credentials (a public bucket)."
        ),
        click.option(
            "--threads", type=count(1, 1024), default=2, show_default=True, help="Threads that decompress files."
        ),
        click.option(
            "--max-total-bytes",
            metavar="SIZE",
            callback=_size,
            default="256G",
            show_default=True,
            help="Stop reading once the text read reaches this size (e.g. 20G, 1T).",
        ),
        click.option(
            "--max-ratio",
            type=Number(float, 1, 1e12),
            default=DEFAULT_LIMITS.max_ratio,
            show_default=True,
            help="Largest inflated/stored size of a file over 1 MiB; more is taken for a zip bomb and not read.",
        ),
    )(command)


def check_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The checks' knobs → ``checks`` (a ``CheckOptions``)."""

    @functools.wraps(f)
    def command(
        *args: Any, tolerance: Decimal | None, sigma: float, window: int, min_history: int, **kwargs: Any
    ) -> Any:
        if min_history > window:
            raise click.UsageError(f"--min-history ({min_history}) cannot exceed --window ({window})")
        return f(
            *args,
            checks=CheckOptions(tolerance=tolerance, sigma=sigma, window=window, min_history=min_history),
            **kwargs,
        )

    return _options(
        click.option(
            "--tolerance",
            type=Number(Decimal, 0, 1_000_000),
            metavar="AMOUNT",
            help="Largest difference counted as equal, in currency units [default: half the currency's minor unit].",
        ),
        click.option(
            "--sigma",
            type=Number(float, 0, 1_000_000, low_open=True),
            default=3.0,
            show_default=True,
            help="Delta anomaly threshold in standard deviations.",
        ),
        click.option(
            "--window",
            type=count(2),
            default=30,
            show_default=True,
            help="How many preceding deltas of the user the anomaly check looks at.",
        ),
        click.option(
            "--min-history",
            type=count(2),
            default=5,
            show_default=True,
            help="Preceding deltas needed before a delta is judged.",
        ),
    )(command)


def selection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """What to report (never what to check) → ``selection`` (a ``filters.Selection``)."""

    @functools.wraps(f)
    def command(
        *args: Any,
        since: datetime | None,
        until: datetime | None,
        users: tuple[str, ...],
        currencies: tuple[str, ...],
        **kwargs: Any,
    ) -> Any:
        try:
            selection = Selection(since, until, users, tuple(c.upper() for c in currencies))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        return f(*args, selection=selection, **kwargs)

    return _options(
        click.option(
            "--since",
            metavar="DATE",
            callback=_moment(False),
            help="Report transactions from this UTC date or time on (2024-01-01, 2024-01-01T06:00, or with an offset).",
        ),
        click.option(
            "--until",
            metavar="DATE",
            callback=_moment(True),
            help="Report transactions up to this UTC date (the whole day) or time, inclusive.",
        ),
        click.option(
            "--user",
            "users",
            metavar="ID",
            multiple=True,
            callback=_listed,
            help="Report only this userId (repeatable, or comma-separated).",
        ),
        click.option(
            "--currency",
            "currencies",
            metavar="CODE",
            multiple=True,
            callback=_listed,
            help="Report only this currency, e.g. BHD (repeatable, or comma-separated).",
        ),
    )(command)


SHOW_PII = click.option(
    "--show-pii", is_flag=True, help="Show emails and phone numbers as logged [default: masked in every output]."
)


def output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Where and what to write → ``outdir``, ``formats``, ``full_ledger``, ``show_pii``."""
    return _options(
        click.option(
            "-o",
            "--out",
            "outdir",
            type=click.Path(path_type=str),
            help="Folder for the outputs, never inside an input [default: $OUT_DIR, else reports].",
        ),
        click.option(
            "-f",
            "--format",
            "formats",
            metavar="FORMATS",
            multiple=True,
            callback=_formats,
            help="What to write, comma-separated: xlsx (the workbook), html (report.html, one self-contained page), "
            "parquet, csv (every table), json (summary.json only; it is always written) [default: xlsx].",
        ),
        click.option(
            "--full-ledger",
            is_flag=True,
            help=f"Put every transaction in the workbook's Ledger [default: the flagged ones, each with the {CONTEXT} "
            f"before and after it in the same wallet, at most {MAX_ROWS:,} rows; every transaction is then in "
            f"{LEDGER_PARQUET} beside the workbook].",
        ),
        SHOW_PII,
    )(f)


def state_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Incremental runs → ``state`` (a path, or None)."""
    return click.option(
        "--state", metavar="FILE", type=click.Path(dir_okay=False, path_type=str),
        help="Incremental runs: read FILE first (each wallet's last transaction, the files and ids already read) and "
        "update it after a successful run, so each nightly run reads only the new export.",
    )(f)  # fmt: skip


def engine_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Stage 2 of a partitioned run → ``from_dir`` and ``engine`` (an ``engines.Engine``)."""

    @functools.wraps(f)
    def command(
        *args: Any, from_dir: str | None, workers: int, engine: str, ray_address: str | None, **kwargs: Any
    ) -> Any:
        try:
            chosen = Engine(engine, workers, ray_address)
        except CaloError as exc:
            raise click.UsageError(str(exc)) from None
        return f(*args, from_dir=from_dir, engine=chosen, **kwargs)

    return _options(
        click.option(
            "--from",
            "from_dir",
            metavar="DIR",
            type=click.Path(path_type=str),
            help=(
                "Audit a store written by `calo-balance ingest --into DIR` instead of INPUTS (each partition checked "
                "on its own, then merged)."
            ),
        ),
        click.option(
            "--workers",
            type=count(1, 1024),
            default=1,
            show_default=True,
            help=(
                "Partitions of a store checked at once, in worker processes (or Ray CPUs with a local --engine ray); "
                "with INPUTS, the run goes through a temporary store."
            ),
        ),
        click.option(
            "--engine",
            type=click.Choice(ENGINES),
            default="local",
            show_default=True,
            help="Run a store's partitions here (local) or as Ray tasks (ray; pip install 'calo-polars[ray]').",
        ),
        click.option(
            "--ray-address",
            metavar="ADDR",
            help="With --engine ray: the cluster to join (ray://host:10001, or auto) [default: a local Ray runtime].",
        ),
    )(command)


def alert_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Exit codes and notifications for automation → ``strict``, ``fail_on``, ``webhook``, ``webhook_on``."""
    names = ", ".join([*ALERTS, *GROUPS])
    return _options(
        click.option(
            "--strict", is_flag=True, help="Exit 1 when any input problem was found (the outputs are still written)."
        ),
        click.option(
            "--fail-on",
            metavar="NAMES",
            multiple=True,
            callback=_fail_on,
            help=f"Exit 3 when any of these is found (comma-separated): {names}.",
        ),
        click.option(
            "--webhook",
            metavar="URL",
            envvar="CALO_WEBHOOK_URL",
            callback=_url,
            help="POST a JSON summary (Slack-compatible: text and blocks) to this URL [env: CALO_WEBHOOK_URL].",
        ),
        click.option(
            "--webhook-on",
            type=click.Choice(["always", "alert"]),
            default="always",
            show_default=True,
            help="Post after every run, or only when a --fail-on condition was found.",
        ),
    )(f)


def _address(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """One address (``--email-from``) or several (``--email-to``, repeatable or comma-separated)."""
    values = _listed(ctx, param, value) if param.multiple else ((value,) if value else ())
    try:
        checked = tuple(check_address(v) for v in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return checked if param.multiple else (checked[0] if checked else None)


def email_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """E-mail alerts → ``email`` (a ``mail.MailSettings``, or None) and ``email_on``."""

    @functools.wraps(f)
    def command(*args: Any, email_to: tuple[str, ...], email_from: str | None, smtp_host: str | None,
                smtp_port: int | None, smtp_security: str, **kwargs: Any) -> Any:  # fmt: skip
        return f(*args, email=_mail_settings(email_to, email_from, smtp_host, smtp_port, smtp_security), **kwargs)

    return _options(
        click.option(
            "--email-to",
            metavar="ADDR",
            multiple=True,
            envvar="CALO_SMTP_TO",
            callback=_address,
            help="E-mail the summary (and the HTML report, when written) to ADDR (repeatable, or comma-separated) "
            "[env: CALO_SMTP_TO]; the login, if any, comes from $CALO_SMTP_USER and $CALO_SMTP_PASSWORD.",
        ),
        click.option(
            "--email-from",
            metavar="ADDR",
            envvar="CALO_SMTP_FROM",
            callback=_address,
            help="The sender of the e-mail [env: CALO_SMTP_FROM].",
        ),
        click.option(
            "--smtp-host", metavar="HOST", envvar="CALO_SMTP_HOST", help="The SMTP server [env: CALO_SMTP_HOST]."
        ),
        click.option(
            "--smtp-port",
            type=click.IntRange(1, 65535),
            envvar="CALO_SMTP_PORT",
            help="The SMTP server's port [env: CALO_SMTP_PORT; default: 587 for starttls, 465 for tls, 25 for none].",
        ),
        click.option(
            "--smtp-security",
            type=click.Choice(list(SECURITY_PORTS)),
            default="starttls",
            show_default=True,
            envvar="CALO_SMTP_SECURITY",
            help="How the connection is encrypted: STARTTLS, TLS from the start, or none (then no login is allowed) "
            "[env: CALO_SMTP_SECURITY].",
        ),
        click.option(
            "--email-on",
            type=click.Choice(["always", "alert"]),
            default="always",
            show_default=True,
            help="E-mail after every run, or only when a --fail-on condition was found.",
        ),
    )(command)


def _mail_settings(
    to: tuple[str, ...], sender: str | None, host: str | None, port: int | None, security: str
) -> MailSettings | None:
    """The e-mail settings, or None without --email-to; usage errors for what is missing or unsafe."""
    user = os.environ.get("CALO_SMTP_USER") or None
    password = os.environ.get("CALO_SMTP_PASSWORD") or None
    if not to:
        return None
    if not host:
        raise click.UsageError("--email-to needs an SMTP server: give --smtp-host (or set CALO_SMTP_HOST)")
    if not sender:
        raise click.UsageError("--email-to needs a sender: give --email-from (or set CALO_SMTP_FROM)")
    if password and not user:
        raise click.UsageError("CALO_SMTP_PASSWORD is set but CALO_SMTP_USER is not: set both, or neither")
    if user and security == "none":
        raise click.UsageError(
            "CALO_SMTP_USER is set and --smtp-security is none: a login is never sent unencrypted (use starttls or tls)"
        )
    return MailSettings(to, sender, host, port or SECURITY_PORTS[security], security, user, password)


REPORT_VERBOSE = (
    "Also print every input problem (not only the first 50), the settings, how long each step took"
    " and (--engine ray) which node checked which partition."
)


REPORT_QUIET = "Print nothing unless the exit code is not 0 (then one line saying why) or an alert was not delivered."
QUIET = "Print nothing unless the command fails (then one line saying why)."


def verbosity_options(
    f: Callable[..., Any] | None = None, *, quiet_help: str = REPORT_QUIET, verbose_help: str = REPORT_VERBOSE
) -> Callable[..., Any]:
    """How much to say on stderr → ``verbosity`` (-1 quiet, 0 normal, 1 verbose); ``quiet_help``
    and ``verbose_help`` say what -q and -v do for this command (their help must be true)."""
    if f is None:
        return functools.partial(verbosity_options, quiet_help=quiet_help, verbose_help=verbose_help)

    @functools.wraps(f)
    def command(*args: Any, quiet: bool, verbose: bool, **kwargs: Any) -> Any:
        if quiet and verbose:
            raise click.UsageError("--quiet and --verbose cannot be used together")
        return f(*args, verbosity=-1 if quiet else 1 if verbose else 0, **kwargs)

    return _options(
        click.option(
            "-q",
            "--quiet",
            is_flag=True,
            help=quiet_help,
        ),
        click.option("-v", "--verbose", is_flag=True, help=verbose_help),
    )(command)


# ---------------------------------------------------------------- grouped --help


class SectionedCommand(click.Command):
    """A command whose --help lists its options in named sections, in the order a user reaches
    for them (``sections``: title → option names); options in no section come last, under "Other"."""

    def __init__(self, *args: Any, sections: dict[str, tuple[str, ...]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sections = sections

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        records = {p.name: p.get_help_record(ctx) for p in self.get_params(ctx) if isinstance(p, click.Option)}
        placed: set[str | None] = set()
        for title, names in [*self.sections.items(), ("Other", ())]:
            names = names or tuple(n for n in records if n not in placed)
            rows = [r for n in names if (r := records.get(n)) is not None]
            placed.update(names)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


READING = ("endpoint_url", "no_sign_request", "threads", "max_total_bytes", "max_ratio")
REPORT_SECTIONS = {
    "Input and output": ("outdir", "formats", "full_ledger", "quiet", "verbose", "show_pii"),
    "Selection (what is reported; the checks always run on everything)": ("since", "until", "users", "currencies"),
    "Checks": ("tolerance", "sigma", "window", "min_history"),
    "Alerts and exit codes": (
        "strict",
        "fail_on",
        "webhook",
        "webhook_on",
        "email_to",
        "email_from",
        "smtp_host",
        "smtp_port",
        "smtp_security",
        "email_on",
    ),
    "Incremental and two-stage runs": ("state", "from_dir", "workers", "engine", "ray_address"),
    "Advanced: S3, threads and limits": READING,
}
INGEST_SECTIONS = {
    "Input and output": ("into", "partitions", "quiet", "verbose", "show_pii"),
    "Advanced: S3, threads and limits": READING,
}
SYNTH_SECTIONS = {
    "Output": ("out", "truth", "quiet", "verbose"),
    "Size and shape": ("users", "days", "start", "legacy_until", "seed"),
    "Faults": (
        "clean",
        "overdraft_rate",
        "mismatch_rate",
        "flow_break_rate",
        "anomaly_rate",
        "duplicate_rate",
        "error_rate",
        "crash_rate",
        "out_of_order",
    ),
    "What the Lambda did (issue-12 faults)": (
        "refused_rate",
        "sent_again_rate",
        "not_applied_rate",
        "not_in_sync_rate",
        "negative_amount_rate",
        "failed_rate",
        "skipped_rate",
        "unknown_rate",
        "logs_missing_rate",
    ),
    "Advanced": ("workers",),
}


# ---------------------------------------------------------------- commands


EXAMPLES = """
\b
Examples:
  calo-balance report balance-sync-logs.zip -o reports
  calo-balance report s3://my-bucket/exports/balance-sync/ --format xlsx,parquet
  calo-balance report logs.zip --since 2024-02-01 --until 2024-02-29 --currency BHD
  calo-balance report logs.zip --quiet --format json --fail-on overdraft,mismatch
  calo-balance ingest logs.zip --into store/ && calo-balance report --from store/ --workers 2
  calo-balance synth -o synthetic.zip --users 1000 --days 60
"""


class CaloGroup(click.Group):
    """The command group: a run stopped by Ctrl-C or SIGTERM is one line and exit 130 or 143."""

    def invoke(self, ctx: click.Context) -> Any:
        with interruptible():
            try:
                return super().invoke(ctx)
            except Interrupted as exc:
                say(exc.line(), err=True)
                ctx.exit(exc.exit_code)
            except click.UsageError as exc:  # a bad option or value: one line, not click's three
                parsing = isinstance(exc, (click.BadParameter, click.NoSuchOption, click.BadOptionUsage))
                hint = f" (see {exc.ctx.command_path} --help)" if parsing and exc.ctx is not None else ""
                say(f"Error: {exc.format_message()}{hint}", err=True)
                ctx.exit(exc.exit_code)
            except OSError as exc:  # the last resort: a full disk, a quota or a permission no writer named
                where = f"{printable(str(exc.filename))}: " if exc.filename else ""
                say(f"calo-balance: {where}{exc.strerror or exc} (the earlier outputs and state kept)", err=True)
                ctx.exit(EXIT_USAGE)


@click.group(
    cls=CaloGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}, epilog=EXAMPLES
)
@click.version_option(__version__, prog_name="calo-balance")
def cli() -> None:
    """Audit wallet balances reconstructed from balance-sync Lambda logs.

    Reads CloudWatch Logs exports (a .zip, a folder, .gz files or an s3:// prefix), checks
    every transaction (overdrafts, mismatches, flow breaks, delta anomalies) and writes an
    Excel workbook, Parquet/CSV tables and summary.json. `calo-balance COMMAND --help` says more.
    """


def _default_inputs() -> tuple[str, ...]:
    """$IN_DIR when no INPUT is given: one input, or candidates joined by ':' (the first that exists).

    The Docker image sets IN_DIR=/data.zip:/data, so either mount works.
    """
    env_in = os.environ.get("IN_DIR", "").strip()
    if not env_in:
        raise click.UsageError("give at least one INPUT (a .zip, folder, .gz, log file or s3:// prefix), or set IN_DIR")
    if is_s3(env_in):
        return (env_in,)
    candidates = [c for c in env_in.split(os.pathsep) if c]
    for candidate in candidates:
        if os.path.exists(candidate):
            return (candidate,)
    if len(candidates) == 1:
        return (candidates[0],)  # the audit says it does not exist
    raise click.UsageError(
        f"nothing to audit: none of {', '.join(candidates)} exists (IN_DIR): mount the export at one of them"
    )


class Stopwatch:
    """Seconds spent in each named stage of a run (for --verbose)."""

    def __init__(self) -> None:
        self.started = self.mark = time.perf_counter()
        self.current = "read"
        self.laps: dict[str, float] = {}

    def lap(self, next_stage: str) -> None:
        now = time.perf_counter()
        self.laps[self.current] = now - self.mark
        self.current, self.mark = next_stage, now

    def then(self, also: Callable[[str], None] | None) -> Callable[[str], None]:
        """An ``on_stage`` callback: close the current lap, start ``stage``, then call ``also``."""

        def stage(name: str) -> None:
            self.lap(name)
            if also is not None:
                also(name)

        return stage

    def total(self) -> float:
        return time.perf_counter() - self.started


def _problem_lines(problems: list[InputProblem], verbosity: int) -> list[str]:
    return warning_lines(problems, limit=len(problems) if verbosity > 0 else MAX_WARNINGS)


def _run(inputs: tuple[str, ...], from_dir: str | None, outdir: str, formats: tuple[str, ...], options: AuditOptions,
         engine: Engine, console: Any, clock: Stopwatch, verbosity: int,
         full_ledger: bool) -> tuple[Any, Any]:  # fmt: skip
    """Audit (the inputs, or the store ``from_dir``), write the outputs, then the state."""
    checks, selection, threads = options.checks, options.selection, options.threads
    through: Any = nullcontext()  # a temporary store for a one-shot run too big to hold (``oneshot``)
    bar, size = None, 0
    if from_dir is not None:
        clock.current = "partitions"
    else:
        sources = resolve(inputs, options.s3)
        size = stored_bytes(sources)
        if engine != Engine() or oneshot.needs_store(size):
            if options.state:
                raise UsageError("--state reads its inputs in one process: not with --workers/--engine")
            through = oneshot.temporary_store(outdir)
        bar = AuditProgress(console, *input_size(sources)) if verbosity >= 0 and console.is_terminal else None
    result: AuditResult | None = None
    try:
        with bar or nullcontext(), through as temporary:
            if from_dir is not None:
                result = audit_store(from_dir, checks, selection=selection, threads=threads, engine=engine)
            elif temporary is not None:
                if verbosity > 0:
                    say(f"{size / 1e6:,.0f} MB of input: read through a temporary store ({temporary})", err=True)
                ingest_into(sources, temporary, partitions=oneshot.partitions_for(size), threads=threads,
                            limits=options.limits, mask_pii=options.mask_pii, s3=options.s3,
                            on_batch=bar.on_batch if bar else None)  # fmt: skip
                clock.then(bar.step if bar else None)("checks")
                result = audit_store(temporary, checks, selection=selection, threads=threads, engine=engine)
            else:
                result = audit(
                    sources,
                    options,
                    on_batch=bar.on_batch if bar else None,
                    on_stage=clock.then(bar.step if bar else None),
                    input_bytes=size,
                )
            clock.lap("write")
            inc = result.incremental
            # The next state is written first and put in place last: it never runs ahead of the outputs.
            with state_file.saving(inc.next if inc else None, inc.path if inc else None) as put_state:
                written = write_outputs(
                    result, outdir, formats, on_step=bar.step if bar else None, full_ledger=full_ledger
                )
                put_state()
            clock.lap("")
    finally:
        if result is not None:
            result.close()  # the checked rows a store run spilled: the outputs are written
    return result, written


@cli.command(cls=SectionedCommand, sections=REPORT_SECTIONS, epilog="""
\b
Exit codes:
  0  the audit ran and wrote its outputs
  1  the same, but input problems were found and --strict was given
  2  a usage error, or not one input file could be read (missing file, S3 bucket not found or unreachable),
     a damaged or locked --state file or store, or outputs/state/store could not be written (a full disk)
  3  the same as 0, but a --fail-on condition was found (wins over 1)
  130  stopped by Ctrl-C (SIGINT); 143: stopped by SIGTERM (the earlier outputs and state are kept)
""")  # fmt: skip
@input_options
@output_options
@selection_options
@check_options
@state_options
@alert_options
@email_options
@engine_options
@verbosity_options
def report(
    inputs: tuple[str, ...],
    limits: Limits,
    s3: S3Options,
    threads: int,
    outdir: str | None,
    formats: tuple[str, ...],
    full_ledger: bool,
    show_pii: bool,
    selection: Selection,
    checks: CheckOptions,
    state: str | None,
    strict: bool,
    fail_on: tuple[str, ...],
    webhook: str | None,
    webhook_on: str,
    email: MailSettings | None,
    email_on: str,
    from_dir: str | None,
    engine: Engine,
    verbosity: int,
) -> None:
    """Audit the logs in INPUTS and write the workbook, tables and summary.json.

    INPUTS are CloudWatch Logs exports: a .zip, a folder (read recursively), .gz files,
    plain log files or an s3://bucket/prefix/ (listed recursively, AWS credentials as usual),
    in any mix and any order. With no INPUTS, $IN_DIR is read and $OUT_DIR written (the
    Docker contract). A file that cannot be read is reported (stderr, the InputProblems
    sheet, summary.json) and the others are still audited.

    The checks always run on everything read; --since/--until/--user/--currency choose what
    is reported, so a selection never changes a flag.

    With --from DIR, the logs are not read: DIR is a store written by `calo-balance ingest`,
    whose partitions are checked one by one, in --workers processes, or on Ray; the outputs
    equal those of a run on the INPUTS themselves.

    \b
    Examples:
      calo-balance report balance-sync-logs.zip -o reports
      calo-balance report export-folder/ extra/000000.gz --tolerance 0.001
      calo-balance report s3://my-bucket/exports/balance-sync/ --format xlsx,parquet,csv
      calo-balance report logs.zip --since 2024-02-01 --until 2024-02-29 --user 8d0c... --currency BHD
      calo-balance report logs.zip -q --format json --fail-on overdraft,mismatch --webhook "$SLACK_WEBHOOK_URL"
      calo-balance report --from store/ -o reports --workers 2
    """
    if from_dir is not None:
        _check_from(inputs, from_dir, show_pii, state)
    inputs = inputs or (() if from_dir else _default_inputs())
    outdir = outdir or os.environ.get("OUT_DIR") or "reports"
    options = AuditOptions(
        checks=checks, threads=threads, limits=limits, mask_pii=not show_pii, selection=selection, s3=s3, state=state
    )
    console = stderr_console()
    clock = Stopwatch()
    started = time.time()
    try:
        check_outdir(inputs if from_dir is None else (from_dir,), outdir)
        if state:
            state_file.check_place(inputs, state)
        with state_file.locked(state) if state else nullcontext():  # the whole run: read, audit, save
            result, written = _run(
                inputs, from_dir, outdir, formats, options, engine, console, clock, verbosity, full_ledger
            )
    except CaloError as exc:
        say(f"calo-balance: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    problems = result.ingested.problems.ordered()
    alerts = triggered(written.summary, fail_on)
    code = EXIT_ALERT if alerts else EXIT_PROBLEMS if strict and problems else EXIT_OK
    why = (
        alert_line(alerts, code)
        if alerts
        else (f"calo-balance: {len(problems):,} input problems (--strict): exit {code}" if code else "")
    )
    if verbosity >= 0:
        for line in _problem_lines(problems, verbosity):
            say(line, err=True)
        for line in unknown_users(result, selection):
            say(line, err=True)
        table = summary_table(written.summary, [why] if alerts else [], plain=not console.is_terminal)
        if console.is_terminal:
            console.print(table)
        else:
            say(plain_text(table), err=True, lines=True)
        if verbosity > 0:
            steps = ", ".join(
                f"{name} {seconds:.2f} s"
                for name, seconds in {**clock.laps, **written.seconds}.items()
                if name != "write"
            )
            say(f"took {clock.total():.2f} s: {steps}; settings {written.summary['settings']}", err=True)
            for line in engine.placement_lines():
                say(line, err=True)
        for path in written.paths:
            say(str(path))
        if state:
            say(state)
    elif why:
        say(why, err=True)
    if webhook and (webhook_on == "always" or alerts):
        payload = webhook_payload(written.summary, top_users(result.users), alerts, code)
        failure = post(webhook, payload)
        if failure:
            say(f"warning: webhook not delivered: {failure} (the exit code is unchanged)", err=True)
        elif verbosity > 0:
            say("webhook delivered", err=True)
    if email and (email_on == "always" or alerts):
        payload = webhook_payload(written.summary, top_users(result.users), alerts, code)
        failure = send(email, build_message(email, payload, html_report(outdir, started)))
        if failure:
            say(f"warning: email not sent: {failure} (the exit code is unchanged)", err=True)
        elif verbosity > 0:
            say(f"email sent to {', '.join(email.to)}", err=True)
    sys.exit(code)


#: Options that say how to read INPUTS: with --from the store was read already, by ingest.
READING_OPTIONS = ("endpoint_url", "no_sign_request", "max_total_bytes", "max_ratio")


def _check_from(inputs: tuple[str, ...], from_dir: str, show_pii: bool, state: str | None) -> None:
    """Usage errors of ``report --from``: INPUTS too, reading options, unmasking a masked store, --state."""
    ctx = click.get_current_context()
    if inputs:
        raise click.UsageError("give INPUTS or --from DIR, not both")
    if state:
        raise click.UsageError("--state continues runs over new exports: give it with INPUTS, not with --from")
    given = [n for n in READING_OPTIONS if ctx.get_parameter_source(n) is click.core.ParameterSource.COMMANDLINE]
    if given:
        raise click.UsageError(
            f"--{given[0].replace('_', '-')} says how to read logs: with --from, give it to calo-balance ingest"
        )
    if show_pii:
        try:
            masked = open_store(from_dir).options["mask_pii"]
        except CaloError:
            return  # the run says what is wrong with the store
        if masked:
            raise click.UsageError(
                "the store was ingested with personal data masked: run calo-balance ingest --show-pii to see it"
            )


@cli.command(cls=SectionedCommand, sections=INGEST_SECTIONS)
@input_options
@click.option(
    "--into",
    "into",
    metavar="DIR",
    required=True,
    type=click.Path(path_type=str),
    help="The store to write (a new or empty folder, or an older store, replaced).",
)
@click.option(
    "--partitions",
    type=count(1, 65535),
    default=DEFAULT_PARTITIONS,
    show_default=True,
    help="Partitions of the users (by a stable hash of userId): the units report --from checks one at a time.",
)
@SHOW_PII
@verbosity_options(
    quiet_help=QUIET, verbose_help="Print the same line as without it (ingest says what it wrote in one line)."
)
def ingest(
    inputs: tuple[str, ...],
    limits: Limits,
    s3: S3Options,
    threads: int,
    into: str,
    partitions: int,
    show_pii: bool,
    verbosity: int,
) -> None:
    """Read the logs in INPUTS once into a store: Parquet partitioned by userId (stage 1).

    `calo-balance report --from DIR` then checks the partitions one by one, in worker
    processes (--workers) or on a Ray cluster (--engine ray), and writes the same outputs
    as `report INPUTS`. Memory stays bounded: the transactions go to disk batch by batch.
    Personal data is masked here (unless --show-pii): the store never holds it.

    \b
    Examples:
      calo-balance ingest balance-sync-logs.zip --into store/ --partitions 16
      calo-balance report --from store/ -o reports --workers 2
    """
    inputs = inputs or _default_inputs()
    clock = Stopwatch()
    try:
        check_outdir(inputs, into)
        manifest = ingest_into(
            inputs, into, partitions=partitions, threads=threads, limits=limits, mask_pii=not show_pii, s3=s3
        )
    except CaloError as exc:
        say(f"calo-balance: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    counts = manifest["counts"]
    if verbosity >= 0:
        problems = f", {counts['input_problems']:,} input problems" if counts["input_problems"] else ""
        say(
            f"ingested {counts['files']:,} files, {counts['transactions']:,} transactions into {into} "
            f"({partitions} partitions{problems}) in {clock.total():.1f} s",
            err=True,
        )


RATE = Number(float, 0, 1)
SEED = Number(int, -(1 << 63), (1 << 63) - 1)


@cli.command(cls=SectionedCommand, sections=SYNTH_SECTIONS)
@click.option(
    "-o",
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=str),
    help="Where to write: ARCHIVE.zip, LOGS.gz (one multi-member gzip) or a new FOLDER.",
)
@click.option(
    "--users", type=count(1, 100_000_000), default=200, show_default=True, help="Subscribers (one wallet each)."
)
@click.option(
    "--days",
    type=count(1, 36_525),
    default=30,
    show_default=True,
    help="Days of logs, each with its 21:00 UTC deduction run.",
)
@click.option("--seed", type=SEED, default=1, show_default=True, help="Same seed and options, same bytes.")
@click.option(
    "--start", type=click.DateTime(["%Y-%m-%d"]), default="2024-01-01", show_default=True, help="First day (UTC)."
)
@click.option(
    "--legacy-until",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Blocks use the legacy layout before this day [default: a sixth into the period].",
)
@click.option(
    "--overdraft-rate",
    type=RATE,
    default=DEFAULT_RATES.overdraft,
    show_default=True,
    help="Injected overdrafts, per transaction.",
)
@click.option(
    "--mismatch-rate",
    type=RATE,
    default=DEFAULT_RATES.mismatch,
    show_default=True,
    help="Injected arithmetic mismatches, per transaction.",
)
@click.option(
    "--flow-break-rate",
    type=RATE,
    default=DEFAULT_RATES.flow_break,
    show_default=True,
    help="Injected flow breaks, per transaction.",
)
@click.option(
    "--anomaly-rate",
    type=RATE,
    default=DEFAULT_RATES.delta_anomaly,
    show_default=True,
    help="Injected delta anomalies, per transaction.",
)
@click.option(
    "--duplicate-rate",
    type=RATE,
    default=DEFAULT_RATES.duplicate,
    show_default=True,
    help="Transactions logged twice (an SQS retry), per transaction.",
)
@click.option(
    "--refused-rate",
    type=RATE,
    default=DEFAULT_RATES.refused,
    show_default=True,
    help="Refused attempts (a deduction beyond the balance; the wallet never moves), per active day.",
)
@click.option(
    "--sent-again-rate",
    type=RATE,
    default=DEFAULT_RATES.sent_again,
    show_default=True,
    help="Blocks answered 'already synced', never applied, then sent again under a new id, per transaction.",
)
@click.option(
    "--not-applied-rate",
    type=RATE,
    default=DEFAULT_RATES.not_applied,
    show_default=True,
    help="Blocks answered 'already synced' and never applied (not sent again), per transaction.",
)
@click.option(
    "--not-in-sync-rate",
    type=RATE,
    default=DEFAULT_RATES.not_in_sync,
    show_default=True,
    help="Blocks followed by a not-in-sync error, after which the wallet jumps, per transaction.",
)
@click.option(
    "--negative-amount-rate",
    type=RATE,
    default=DEFAULT_RATES.negative_amount,
    show_default=True,
    help="Nightly DEBITs logged with a negative amount (they raise the balance), per deduction.",
)
@click.option(
    "--failed-rate",
    type=RATE,
    default=DEFAULT_RATES.failed,
    show_default=True,
    help="Blocks answered by a sync error (outcome failed), per transaction.",
)
@click.option(
    "--skipped-rate",
    type=RATE,
    default=DEFAULT_RATES.skipped,
    show_default=True,
    help="Blocks answered 'Update Payment Balance Flag is set to false' (outcome skipped), per transaction.",
)
@click.option(
    "--unknown-rate",
    type=RATE,
    default=DEFAULT_RATES.unknown,
    show_default=True,
    help="Blocks answered by nothing at all (outcome unknown), per transaction.",
)
@click.option(
    "--logs-missing-rate",
    type=RATE,
    default=DEFAULT_RATES.logs_missing,
    show_default=True,
    help="Whole days missing from the export (a silence of 24 h or more), per day.",
)
@click.option("--clean", is_flag=True, help="No faults at all: every fault rate 0 (the audit must flag nothing).")
@click.option(
    "--out-of-order",
    type=RATE,
    default=0.33,
    show_default=True,
    help="Share of files whose chunks are written out of order.",
)
@click.option(
    "--error-rate",
    type=RATE,
    default=0.002,
    show_default=True,
    help="Failing invocations (sync/invoke errors, timeouts, truncations), per message.",
)
@click.option(
    "--crash-rate",
    type=RATE,
    default=0.03,
    show_default=True,
    help="Chance per day and 1,000 users of a burst of failed cold starts.",
)
@click.option(
    "--workers", type=count(1, 1024), default=2, show_default=True, help="Processes that generate and compress."
)
@click.option(
    "--truth",
    type=click.Path(dir_okay=False, path_type=str),
    help="Ground-truth JSON [default: beside the output, NAME.truth.json].",
)
@verbosity_options(
    quiet_help=QUIET, verbose_help="Print the same summary as without it (what was written, its faults, how fast)."
)
def synth(out: str, users: int, days: int, seed: int, start: datetime, legacy_until: datetime | None,
          overdraft_rate: float, mismatch_rate: float, flow_break_rate: float, anomaly_rate: float,
          duplicate_rate: float, refused_rate: float, sent_again_rate: float, not_applied_rate: float,
          not_in_sync_rate: float, negative_amount_rate: float, failed_rate: float, skipped_rate: float,
          unknown_rate: float, logs_missing_rate: float, clean: bool, out_of_order: float, error_rate: float,
          crash_rate: float, workers: int, truth: str | None, verbosity: int) -> None:  # fmt: skip
    """Write a synthetic CloudWatch export with known faults, and its ground truth.

    The archive has the real export's layout and every shape of its text; each injected
    fault is listed in NAME.truth.json as (kind, transaction id, user).

    \b
    Example:
      calo-balance synth -o synthetic.zip --users 1000 --days 60 --seed 7
      calo-balance report synthetic.zip -o reports
    """
    ctx = click.get_current_context()
    if start.year < 1980 or (date(9999, 12, 31) - start.date()).days < days:
        raise click.BadParameter(
            "the days must lie between 1980-01-01 (zip time stamps start there) and 9999-12-31", param_hint="'--start'"
        )
    rates = Rates(
        overdraft_rate, mismatch_rate, flow_break_rate, anomaly_rate, duplicate_rate, refused=refused_rate,
        sent_again=sent_again_rate, not_applied=not_applied_rate, not_in_sync=not_in_sync_rate,
        negative_amount=negative_amount_rate, failed=failed_rate, skipped=skipped_rate, unknown=unknown_rate,
        logs_missing=logs_missing_rate,
    )  # fmt: skip
    if clean:
        given = [p.name for p in ctx.command.params if p.name and p.name.endswith("_rate")
                 and p.name not in ("error_rate", "crash_rate")
                 and ctx.get_parameter_source(p.name) is click.core.ParameterSource.COMMANDLINE]  # fmt: skip
        if given:
            raise click.UsageError(
                f"--clean sets every fault rate to 0; do not also give --{given[0].replace('_', '-')}"
            )
        rates = Rates()
    options = SynthOptions(
        users=users, days=days, seed=seed, start=start.date(),
        legacy_until=legacy_until.date() if legacy_until else None, rates=rates, out_of_order=out_of_order,
        error_rate=error_rate, crash_rate=crash_rate, workers=workers,
    )  # fmt: skip
    try:
        report = synthesize(options, out, truth)
    except CaloError as exc:
        say(f"calo-balance: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if verbosity < 0:
        return
    faults = ", ".join(f"{n} {k}" for k, n in report.faults.items())
    say(
        f"wrote {report.path}: {report.files:,} files, {report.raw_bytes / 1e6:,.1f} MB of log text "
        f"({report.stored_bytes / 1e6:,.1f} MB gzipped), {report.transactions:,} transactions\n"
        f"faults: {faults}\n"
        f"outcomes: {', '.join(f'{n} {k}' for k, n in report.outcomes.items())}\n"
        f"flow breaks by cause: {', '.join(f'{n} {k}' for k, n in report.causes.items())}\n"
        f"ground truth: {report.truth_path}\n"
        f"{report.seconds:.1f} s, {report.raw_mb_per_s:,.0f} MB/s of raw log",
        err=True,
        lines=True,
    )
