#!/usr/bin/env bash
# commands.sh [FILE=README.md]: print every shell command the document shows,
# one per line: the lines of its indented code blocks and of its ```sh,
# ```bash, ```console and unlabelled fenced blocks whose first word is a
# command (a program on the PATH, one of ours, make or sudo); continuation
# lines (\) joined, trailing "# comments" dropped. test/bats/060-readme.bats
# runs each one, so that an example in the README can no longer fail.
set -euo pipefail
file=${1:-README.md}

ours='^(sudo )?(bro-activate|bro-activate-direct|bro-proxy|bro-hook|bro-generator|make)( |$)'
awk '
  /^```/ {
    if (!fence) { fence = 1; lang = substr($0, 4); next }
    fence = 0; next
  }
  fence {
    if (lang == "" || lang == "sh" || lang == "bash" || lang == "console") print
    next
  }
  /^    / && (prev == "" || inblock) { inblock = 1; print substr($0, 5); prev = $0; next }
  { inblock = 0; prev = $0 }
' "$file" |
  sed -e 's/^\$ //' |
  awk '{ if (sub(/\\$/, "")) { acc = acc $0; next } print acc $0; acc = "" }' |
  sed -E -e 's/[[:space:]]{2,}#.*$//' -e 's/[[:space:]]+$//' -e 's/[[:space:]]+/ /g' |
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    first=${line%% *}
    if [[ $line =~ $ours ]] || { [[ $first =~ ^[a-z][a-z0-9_.-]*$ ]] && command -v "$first" >/dev/null; }; then
      printf '%s\n' "$line"
    fi
  done
