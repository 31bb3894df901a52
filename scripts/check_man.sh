#!/usr/bin/env bash
# Renders every man page in DIR (default: build/man) as man(1) and lintian do,
# failing on any warning of groff or man.
set -euo pipefail
dir=${1:-$(dirname "$0")/../build/man}
status=0
count=0
for page in "$dir"/*.[1-8]; do
  count=$((count + 1))
  warnings=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null || echo "man failed")
  warnings+=$(groff -ww -z -man "$page" 2>&1 || echo "groff failed")
  if [[ -n "$warnings" ]]; then
    echo "$page:"
    echo "$warnings"
    status=1
  fi
done
if ((count == 0)); then
  echo "no man pages in $dir"
  exit 1
fi
echo "$count man pages render without warnings"
exit $status
