"""report.html: its numbers read back with html.parser equal summary.json's, every log text is
escaped, and in a real headless Chromium it loads from file:// with no console error and no
request but itself, its charts are drawn, its tables sort and filter, a user link opens that
user's section, and an injected script never runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from calo_polars import AuditResult, audit, write_outputs
from calo_polars.checks.registry import CHECKS, SIGNALS
from calo_polars.report.html import HTML_NAME
from tests.browser import CHROMEDRIVER, CHROMIUM, chromium, open_page
from tests.logbuilder import Log, full_tx, rid, write_zip

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample-logs.zip"

SCRIPT_ID = "<script>window.__pwned = 1</script>"
ATTRIBUTE_ID = '"><img src=x onerror="window.__pwned = 2">'
HOSTILE_ACTION = "</td><script>window.__pwned = 3</script>"


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""


@dataclass
class Page(HTMLParser):
    """Every element with its attributes, the text inside each element that carries data-key,
    and the rows of every table by its id."""

    elements: list[Element] = field(default_factory=list)
    keyed: dict[str, Element] = field(default_factory=dict)
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    _open: list[Element] = field(default_factory=list)
    _table: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag == "table":
            self._table.append(element.attrs.get("id", ""))
        if tag == "tr" and self._table and self._table[-1]:
            self.rows.setdefault(self._table[-1], []).append(element.attrs)
        if "data-key" in element.attrs:
            self.keyed[element.attrs["data-key"]] = element
        if tag not in ("br", "meta", "input", "rect", "line", "polyline"):
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._table:
            self._table.pop()
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        for element in self._open:
            if "data-key" in element.attrs:
                element.text += data

    def tags(self, tag: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag]


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


@dataclass
class Report:
    result: AuditResult
    summary: dict[str, Any]
    html: Path


def write_report(result: AuditResult, out: Path) -> Report:
    written = write_outputs(result, out, ["html"])
    assert written.html == out / HTML_NAME and written.html in written.paths
    assert not (out / "calo_balance_reports.xlsx").exists()  # only what was asked for, and summary.json
    return Report(result, json.loads(written.summary_path.read_text(encoding="utf-8")), written.html)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return write_report(audit([SAMPLE]), tmp_path_factory.mktemp("sample"))


def hostile_archive(path: Path) -> Path:
    """Two users whose ids are markup, each with a flow break and an overdraft, and one plain user."""
    log = Log()
    for n, user in enumerate([SCRIPT_ID, ATTRIBUTE_ID, "plain-user"], start=1):
        meta = json.dumps({"walletId": f"wallet#{user}"})
        log.invocation(
            rid(n),
            n * 100,
            full_tx(10 * n, user, 20, 15, 5, metadata=meta, action=HOSTILE_ACTION),
            full_tx(10 * n + 1, user, 12, 4, 8, metadata=meta),  # flow break: starts from 12, not 15
            full_tx(10 * n + 2, user, 4, -2, 6, metadata=meta),  # overdraft
        )
    return write_zip(path, {"2024-02-10-[$LATEST]h": log.gz()})


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Report:
    folder = tmp_path_factory.mktemp("hostile")
    return write_report(audit([hostile_archive(folder / "hostile.zip")]), folder / "out")


def lookup(summary: dict[str, Any], key: str) -> Any:
    """summary.json's value under a dotted key (``totals.BHD.roll_forward.difference``)."""
    value: Any = summary
    parts = key.split(".")
    while parts:
        head = parts.pop(0)
        if head not in value:  # a currency or cause may hold no dot, but the key is never ambiguous
            head = ".".join([head, *parts])
            parts = []
        value = value[head]
    return value


# ---------------------------------------------------------------- read back with html.parser


def test_every_number_equals_summary_json(sample: Report) -> None:
    page = parse(sample.html)
    s = sample.summary
    assert page.keyed, "no number is marked with its summary.json key"
    for key, element in page.keyed.items():
        expected = lookup(s, key)
        if isinstance(expected, str):  # money: exact decimal text, shown with thousands separators
            assert element.attrs["data-v"] == expected, key
            assert Decimal(element.text.replace(",", "")) == Decimal(expected), key
        else:
            assert int(element.text.replace(",", "")) == expected, key
    wanted = {"transactions", "users", "files", "events", "flags_needing_a_person"}
    wanted |= {k for c in CHECKS for k in (c.count_key, c.users_key)}
    wanted |= {g.count_key for g in SIGNALS} | {g.users_key for g in SIGNALS if g.users_key}
    wanted |= {f"outcomes.{o}" for o in s["outcomes"]} | {f"flow_break_causes.{c}" for c in s["flow_break_causes"]}
    for cur, t in s["totals"].items():
        wanted |= {f"totals.{cur}.{m}" for m in ("transactions", "users", "debit_total", "credit_total", "net_change")}
        wanted |= {f"totals.{cur}.roll_forward.{m}" for m in t["roll_forward"]}
    assert wanted <= set(page.keyed), sorted(wanted - set(page.keyed))


def test_one_row_per_flag_and_one_section_per_flagged_user(sample: Report) -> None:
    page = parse(sample.html)
    s = sample.summary
    flags = page.rows["flags-table"][1:]  # the header row first
    assert len(flags) == sum(s[c.count_key] for c in CHECKS) == sample.result.flags.height > 0
    for c in CHECKS:
        assert sum(r["data-check"] == c.name for r in flags) == s[c.count_key], c.name
    assert sum(r["data-person"] == "yes" for r in flags) == s["flags_needing_a_person"]
    for cause, n in s["flow_break_causes"].items():
        assert sum(r["data-check"] == "flow_break" and r["data-cause"] == cause for r in flags) == n, cause
    sections = {e.attrs["id"] for e in page.tags("section") if e.attrs.get("class") == "user"}
    assert len(sections) == sample.result.flags["user_id"].n_unique()
    links = {e.attrs["href"] for e in page.tags("a") if e.attrs.get("class") == "user-link"}
    assert links == {f"#{s}" for s in sections}
    svgs = page.tags("svg")
    assert len(svgs) == 2 + len(s["totals"])  # flags per week, causes, one daily chart per currency


def test_the_page_is_self_contained(sample: Report) -> None:
    page = parse(sample.html)
    scripts = page.tags("script")
    assert len(scripts) == 1 and "src" not in scripts[0].attrs
    assert not page.tags("link") and not page.tags("img") and not page.tags("iframe")
    for element in page.elements:
        for name in ("src", "href", "action", "xlink:href"):
            value = element.attrs.get(name)
            assert value is None or value.startswith("#") or name == "xmlns", (element.tag, name, value)
    csp = [e.attrs["content"] for e in page.tags("meta") if e.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert csp and csp[0].startswith("default-src 'none'")
    text = sample.html.read_text(encoding="utf-8")
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text
    assert "@import" not in text and "url(" not in text


def test_log_text_is_escaped_never_markup(hostile: Report) -> None:
    page = parse(hostile.html)
    assert len(page.tags("script")) == 1  # the page's own
    assert not page.tags("img")
    assert not [(e.tag, a) for e in page.elements for a in e.attrs if a.startswith("on")]
    users = {e.attrs.get("data-v") for e in page.elements if e.tag == "td" and e.attrs.get("data-v")}
    assert {SCRIPT_ID, ATTRIBUTE_ID} <= users  # attribute values survive whole, quotes included
    shown = "".join(page.texts)
    assert SCRIPT_ID in shown and ATTRIBUTE_ID in shown  # shown as text
    assert hostile.summary["overdraft_users"] == 3 and hostile.summary["flow_break_users"] == 3


def test_pii_is_masked_as_in_the_workbook(tmp_path: Path) -> None:
    log = Log().invocation(
        rid(1), 0, full_tx(1, "ali@example.com", 10, 2, 8), full_tx(2, "ali@example.com", 1, -1, 2)
    )  # flow break and overdraft, the user id an e-mail address
    archive = write_zip(tmp_path / "pii.zip", {"2024-02-10-[$LATEST]p": log.gz()})
    masked = write_report(audit([archive]), tmp_path / "masked").html.read_text(encoding="utf-8")
    assert "ali@example.com" not in masked and "personal data masked" in masked


# ---------------------------------------------------------------- in a real Chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} must exist under CI (make install-dev installs them)")
        pytest.skip("no Chromium: apt-get install -y chromium chromium-driver")
    with chromium() as driver:
        yield driver


def errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def click(driver: Any, element: Any) -> None:
    """Click as a reader does: with the element in the middle of the window, not under the sticky menu."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def visible_rows(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return [r for r in driver.find_elements(By.CSS_SELECTOR, "#flags-table tbody tr") if r.is_displayed()]


def test_loads_from_a_file_with_no_console_error_and_no_request_but_itself(browser: Any, sample: Report) -> None:
    requested = open_page(browser, sample.html)
    assert requested == [sample.html.resolve().as_uri()]
    assert errors(browser) == []
    assert browser.title.startswith("Calo balance audit")


def test_the_charts_are_drawn(browser: Any, sample: Report) -> None:
    open_page(browser, sample.html)
    drawn = browser.execute_script(
        "return Array.from(document.querySelectorAll('#charts svg')).map(function (svg) {"
        "  var marks = svg.querySelectorAll('rect.bar, polyline.series');"
        "  var box = svg.getBoundingClientRect();"
        "  return [marks.length, Array.from(marks).filter(function (m) {"
        "    var b = m.getBBox(); return b.width > 0 || b.height > 0; }).length, box.width, box.height];"
        "});"
    )
    assert len(drawn) == 2 + len(sample.summary["totals"])
    for marks, sized, width, height in drawn:
        assert marks > 0 and sized > 0 and width > 100 and height > 50


def test_clicking_a_header_sorts_the_rows(browser: Any, sample: Report) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, sample.html)
    head = browser.find_element(By.XPATH, "//table[@id='flags-table']/thead/tr/th[normalize-space()='amount']")
    column = 1 + browser.execute_script("return arguments[0].cellIndex", head)

    def amounts() -> list[Decimal]:
        cells = browser.find_elements(By.CSS_SELECTOR, f"#flags-table tbody tr td:nth-child({column})")
        return [Decimal(c.get_attribute("data-v")) for c in cells]

    before = amounts()
    assert before != sorted(before)  # most severe first, not by amount
    click(browser, head)
    assert amounts() == sorted(before) and head.get_attribute("aria-sort") == "ascending"
    click(browser, head)
    assert amounts() == sorted(before, reverse=True) and head.get_attribute("aria-sort") == "descending"


def test_the_filters_hide_rows(browser: Any, sample: Report) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    s = sample.summary
    open_page(browser, sample.html, "#flags")
    total = len(visible_rows(browser))
    assert total == sample.result.flags.height
    Select(browser.find_element(By.ID, "filter-check")).select_by_value("overdraft")
    rows = visible_rows(browser)
    assert len(rows) == s["overdraft_events"] < total
    assert {r.get_attribute("data-check") for r in rows} == {"overdraft"}
    assert browser.find_element(By.ID, "flags-shown").text == str(s["overdraft_events"])
    Select(browser.find_element(By.ID, "filter-check")).select_by_value("")
    Select(browser.find_element(By.ID, "filter-person")).select_by_value("yes")
    assert len(visible_rows(browser)) == s["flags_needing_a_person"]
    Select(browser.find_element(By.ID, "filter-person")).select_by_value("")
    user = str(sample.result.flags["user_id"][0])
    box = browser.find_element(By.ID, "filter-text")
    box.send_keys(user)
    rows = visible_rows(browser)
    assert 0 < len(rows) < total and all(user in r.text for r in rows)
    assert len(rows) == sample.result.flags.filter(sample.result.flags["user_id"] == user).height
    box.clear()
    box.send_keys("x")  # clear() fires no input event; typing does
    box.send_keys("\b")
    assert len(visible_rows(browser)) == total
    assert errors(browser) == []


def test_a_user_link_shows_that_users_section(browser: Any, sample: Report) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, sample.html, "#users")
    sections = browser.find_elements(By.CSS_SELECTOR, "section.user")
    assert sections and not any(s.is_displayed() for s in sections)
    link = browser.find_elements(By.CSS_SELECTOR, "#users-table a.user-link")[1]
    user = link.text
    click(browser, link)
    shown = [s for s in sections if s.is_displayed()]
    assert len(shown) == 1 and shown[0].get_attribute("id") == link.get_attribute("href").split("#")[1]
    assert user in shown[0].find_element(By.TAG_NAME, "h2").text
    flags = sample.result.flags.filter(sample.result.flags["user_id"] == user).height
    assert len(shown[0].find_elements(By.CSS_SELECTOR, "table.sortable tbody tr")) == flags
    assert shown[0].find_element(By.XPATH, ".//h3[.='Roll-forward']/following-sibling::div//tbody/tr")


def test_an_injected_script_never_runs(browser: Any, hostile: Report) -> None:
    from selenium.webdriver.common.by import By

    requested = open_page(browser, hostile.html)
    assert requested == [hostile.html.resolve().as_uri()]  # no <img src=x> was ever requested
    assert browser.execute_script("return window.__pwned") is None
    assert errors(browser) == []
    for link in browser.find_elements(By.CSS_SELECTOR, "#users-table a.user-link"):
        click(browser, link)
        assert browser.execute_script("return window.__pwned") is None
    open_page(browser, hostile.html, "#u1")
    shown = browser.find_element(By.ID, "u1").find_element(By.TAG_NAME, "h2").text
    assert shown.removeprefix("User ").strip() in {SCRIPT_ID, ATTRIBUTE_ID, "plain-user"}
    assert browser.execute_script("return window.__pwned") is None and errors(browser) == []


def test_a_run_with_nothing_flagged_still_writes_a_page(tmp_path: Path) -> None:
    log = Log().invocation(rid(1), 0, full_tx(1, "calm-user", 10, 8, 2), full_tx(2, "calm-user", 8, 6, 2))
    archive = write_zip(tmp_path / "calm.zip", {"2024-02-10-[$LATEST]c": log.gz()})
    report = write_report(audit([archive]), tmp_path / "out")
    page = parse(report.html)
    assert report.summary["transactions"] == 2 and report.result.flags.is_empty()
    assert page.rows["flags-table"] == [{}]  # the header row alone
    assert not [e for e in page.tags("section") if e.attrs.get("class") == "user"]
    assert "None: every flag is explained" in "".join(page.texts)


def test_past_the_row_cap_the_page_says_where_the_rest_is(
    sample: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from calo_polars.report import html

    monkeypatch.setattr(html, "MAX_FLAG_ROWS", 3)
    page = tmp_path / "capped.html"
    html.write_html(sample.result, page, sample.summary)
    parsed = parse(page)
    assert len(parsed.rows["flags-table"]) == 1 + 3
    total = sample.result.flags.height
    assert f"Showing the 3 most severe of {total:,} flags" in "".join(parsed.texts)
    assert {r["data-check"] for r in parsed.rows["flags-table"][1:]} <= {"overdraft", "mismatch", "negative_amount"}
    assert parsed.keyed["flags_needing_a_person"].text == str(sample.summary["flags_needing_a_person"])


@pytest.mark.real
def test_the_real_archive(real_result: AuditResult, tmp_path: Path) -> None:
    report = write_report(real_result, tmp_path)
    page = parse(report.html)
    s = report.summary
    assert len(page.rows["flags-table"]) - 1 == real_result.flags.height == 693
    for key, element in page.keyed.items():
        expected = lookup(s, key)
        shown = element.attrs["data-v"] if isinstance(expected, str) else int(element.text.replace(",", ""))
        assert shown == expected, key
    assert page.keyed["flow_break_causes.unexplained"].text == "65"
    assert page.keyed["outcomes.refused"].text == "8"
    assert report.html.stat().st_size < 5_000_000
