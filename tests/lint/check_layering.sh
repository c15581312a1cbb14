#!/usr/bin/env bash
# Fails when a folder includes a header from a folder listed after it in
# DESIGN.md §1 (dependencies point down the list, never up).
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
layers=(engine/core operators/expr engine/runtime engine/state engine/checkpoint operators
        connectors engine/plan engine/healing engine/server config cli)

layer_of() {  # path -> index of the most specific layer folder containing it
  local best=-1 len=0 i
  for i in "${!layers[@]}"; do
    local l=${layers[$i]}
    if [[ $1 == "$l"/* && ${#l} -gt $len ]]; then best=$i; len=${#l}; fi
  done
  echo "$best"
}

bad=0
checked=0
for i in "${!layers[@]}"; do
  dir=$root/${layers[$i]}
  [ -d "$dir" ] || continue
  while IFS= read -r file; do
    rel=${file#"$root"/}
    own=$(layer_of "$rel")
    [ "$own" -eq "$i" ] || continue
    while IFS= read -r inc; do
      dep=$(layer_of "$inc")
      checked=$((checked + 1))
      if [ "$dep" -gt "$own" ]; then
        echo "layering: $rel includes $inc (${layers[$dep]} is above ${layers[$own]})"
        bad=1
      fi
    done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file")
  done < <(find "$dir" -name '*.h' -o -name '*.cc' -o -name '*.cpp')
done
echo "layering: $checked includes checked"
exit $bad
