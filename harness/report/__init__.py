"""Reports of a run: the console table, summary.md and a self-contained index.html."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

SCHEMA = "streamgauge.results/1"


def write_reports(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write summary.md and index.html next to results.json; returns their paths."""
    from harness.report import html, markdown

    written = []
    for name, render in (("summary.md", markdown.render), ("index.html", html.render)):
        path = out_dir / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(render(results), encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


def load_results(path: Path) -> tuple[dict[str, Any], Path]:
    """Read a results.json (or the directory holding one); errors name the file and the fix."""
    file = path / "results.json" if path.is_dir() else path
    try:
        results = json.loads(file.read_text())
    except FileNotFoundError:
        msg = f"{file}: not found; give a results.json or the directory `streamgauge run --out` wrote it to"
        raise ConfigError(msg) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        msg = f"{file}: not a results.json (invalid JSON: {e})"
        raise ConfigError(msg) from None
    if not isinstance(results, dict) or results.get("schema") != SCHEMA:
        found = results.get("schema") if isinstance(results, dict) else type(results).__name__
        msg = f"{file}: schema: expected {SCHEMA!r}, found {found!r}"
        raise ConfigError(msg)
    return results, file.parent
