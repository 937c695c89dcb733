# Sourced by bin/sg-main and bin/sg-test: makes .venv/ and installs streamgauge
# and everything it needs from the project's own files (pyproject.toml, the Maven
# poms, a peer's requirements). Safe to run again: it only redoes what changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf '[setup] %s\n' "$*" >&2; }

# Java 17+ and Maven run the local Kafka broker. Install them from Debian's
# packages when they are missing and we may (root with apt-get).
if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Java 17 and Maven from Debian packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
  else
    say "Java 17+ and Maven are needed for the local Kafka broker; install them (e.g. apt-get install openjdk-17-jdk-headless maven)"
  fi
fi

# nftables and iproute2 make the network faults (namespaces, a bridge, drop and redirect rules). Installed
# when missing and we may; without them network faults are refused before a run, the rest works.
if ! command -v nft >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing nftables and iproute2 from Debian packages (network faults)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables iproute2 >/dev/null
  else
    say "network faults need nftables and iproute2 (apt-get install nftables iproute2) and root"
  fi
fi

# Chromium opens the report as a person sees it (the browser test, the README's screenshot).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Chromium from Debian packages (the report's browser test)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    say "the report's browser test needs Chromium (apt-get install chromium)"
  fi
fi

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  say "Python >= 3.11 is needed; found: $("$PY" --version 2>&1). Set PYTHON=/path/to/python3.11"
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv/"
  "$PY" -m venv .venv
fi
stamp=".venv/.streamgauge-installed"
want="$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  say "installing streamgauge and its dependencies into .venv/"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi
# Resolve (once) and cache the Kafka broker classpath, so tests start brokers offline.
.venv/bin/streamgauge kafka classpath >/dev/null
# Every engine's prerequisites (a peer's classpath and compiled sources, its virtual environment): cached,
# so this is quick once done.
.venv/bin/streamgauge engines setup
