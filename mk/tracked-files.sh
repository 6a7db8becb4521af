#!/usr/bin/env bash
# Fails when git tracks build output: a binary file (git's own test: a NUL
# byte near the start) or a file over 1 MiB. Fixtures that must be binary or
# large are listed, one path a line, in mk/tracked-files.allow.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
limit=$((1 << 20))
allow=mk/tracked-files.allow
allowed() { [[ -f $allow ]] && grep -qxF -- "$1" "$allow"; }

# Binary in the index is what git itself says: "i/-text" in ls-files --eol.
# (One command, no pipe: a pipe into grep -q fails under pipefail when grep
# stops reading early, which made this check flaky.)
declare -A binary=()
while IFS=$'\t' read -r info path; do
	[[ $info == i/-text* ]] && binary[$path]=1
done < <(git ls-files --eol)
bad=0
while IFS= read -r f; do
	allowed "$f" && continue
	if [[ -n ${binary[$f]:-} ]]; then
		echo "tracked binary file: $f (build output belongs in bin/, ignored by git)" >&2
		bad=1
	fi
	size=$(git cat-file -s ":$f")
	if (( size > limit )); then
		echo "tracked file over 1 MiB: $f ($size bytes)" >&2
		bad=1
	fi
done < <(git ls-files)
exit $bad
