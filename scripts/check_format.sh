#!/usr/bin/env bash
# Fails if clang-format (with the repository's .clang-format) would change any
# C++ source under engine/, fs/, mkfs/, fsck/, tests/ or bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null 2>&1; then
  echo "clang-format is not installed (apt-get install clang-format); style check skipped"
  exit 77
fi
bad=()
while IFS= read -r f; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(find engine fs mkfs fsck tests bench -name '*.cc' -o -name '*.h' | sort)
if [ "${#bad[@]}" -gt 0 ]; then
  echo "clang-format would change (run clang-format -i on them):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "all sources are clang-formatted"
