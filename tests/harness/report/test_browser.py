"""The report as a person sees it: index.html opened in headless Chromium, every figure decoded and every
table drawn; a broken figure and an empty table are caught."""

from __future__ import annotations

from test_report import _both, _capacity_results  # the report tests' own results (pytest puts this folder on the path)

from harness.report import write_reports
from harness.report.browser import check_page, problems, screenshot


def test_every_figure_decodes_and_every_table_renders(tmp_path):
    results = _both()
    results["capacity"] = _capacity_results()["capacity"]
    results["ceiling"] = _capacity_results()["ceiling"]
    write_reports(results, tmp_path)
    rendered = check_page(tmp_path / "index.html")
    alts = [i["alt"] for i in rendered["images"]]
    assert "throughput and latency timelines" in alts and "latency percentiles" in alts
    assert "sustainable throughput per engine against the ceiling" in alts
    assert len(rendered["tables"]) >= 4
    assert problems(rendered) == []
    shot = screenshot(tmp_path / "index.html", tmp_path / "report.png", height=800)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_broken_figure_and_an_empty_table_are_found(tmp_path):
    page = ("<!doctype html><html><body><table><tr><th>a</th></tr></table>"
            "<img alt='broken' src='data:image/png;base64,iVBORw0KGgoAAAAbroken'></body></html>")
    (tmp_path / "index.html").write_text(page)
    found = problems(check_page(tmp_path / "index.html"))
    assert found == ["image 'broken' did not decode", "table 1 has no rows or was not drawn"]
