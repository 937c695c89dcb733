"""index.html as a person sees it: opened in headless Chromium, its figures and tables checked, a screenshot.

``check_page(index.html)`` loads a copy of the page with a script that, once
the page has loaded, records for every ``<img>`` whether it decoded (complete,
with a natural size) and for every ``<table>`` its rows and rendered height;
Chromium's ``--dump-dom`` hands the result back. ``screenshot`` renders the
page to a PNG (the README's picture). Chromium is Debian's ``chromium``
(``bin/_setup.sh`` installs it when missing, as root).

``python -m harness.report.browser check|screenshot INDEX.html [OUT.png]``
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
NAMES = ("chromium", "chromium-browser", "google-chrome")

_PROBE = """
<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
                                                  height: i.naturalHeight}));
  const tables = [...document.querySelectorAll("table")].map(t => ({rows: t.rows.length,
                                                                   height: t.getBoundingClientRect().height}));
  const out = document.createElement("pre");
  out.id = "sg-browser-check";
  out.textContent = JSON.stringify({images, tables});
  document.body.appendChild(out);
});
</script>
"""


def find_chromium() -> str:
    """The Chromium binary; a ConfigError that says how to install it when there is none."""
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    msg = "no Chromium found (chromium, chromium-browser or google-chrome); install it: apt-get install chromium"
    raise ConfigError(msg)


def _chromium(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="sg-chromium-") as profile:
        return subprocess.run([find_chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout_s)


def check_page(index: Path) -> dict[str, Any]:
    """Open ``index`` in headless Chromium; every image (alt, decoded, size) and table (rows, height) as it
    rendered."""
    page = index.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="sg-page-") as tmp:
        probe = Path(tmp) / "index.html"
        probe.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
        done = _chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="sg-browser-check">(.*?)</pre>', done.stdout, re.S)
    if found is None:
        msg = f"Chromium did not render {index} (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        raise RuntimeError(msg)
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    result: dict[str, Any] = json.loads(text)
    return result


def problems(rendered: dict[str, Any]) -> list[str]:
    """What did not render: an image that did not decode, a table without rows or with no height."""
    out = [f"image {i['alt']!r} did not decode" for i in rendered["images"]
           if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
    out += [f"table {n + 1} has no rows or was not drawn" for n, t in enumerate(rendered["tables"])
            if t["rows"] < 2 or t["height"] <= 0]
    return out


def screenshot(index: Path, png: Path, width: int = 1280, height: int = 2400) -> Path:
    """Render ``index`` to ``png`` at ``width`` x ``height`` pixels."""
    done = _chromium(f"--window-size={width},{height}", "--hide-scrollbars", f"--screenshot={png.resolve()}",
                     index.resolve().as_uri())
    if not png.exists():
        msg = f"Chromium wrote no screenshot of {index} (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        raise RuntimeError(msg)
    return png


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("check", "screenshot"):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    index = Path(argv[1])
    if argv[0] == "check":
        rendered = check_page(index)
        found = problems(rendered)
        print(f"{len(rendered['images'])} images, {len(rendered['tables'])} tables"
              + ("" if not found else ": " + "; ".join(found)))
        return 1 if found else 0
    out = screenshot(index, Path(argv[2] if len(argv) > 2 else "report.png"))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
