# Sourced after lib.sh by wine.sh and qemu-arm64.sh: a copy of the JS side of the package
# (loader, specs, fixtures, examples) with node_modules for another OS or CPU, so that the
# clone's own node_modules, which the Linux x64 steps use, stays as it is.

# test_tree DIR NPM_FLAGS...: fills DIR from the working tree and runs `npm ci NPM_FLAGS` in
# it (again only when package-lock.json changed).
test_tree() {
  local dir="$1"
  shift
  mkdir -p "$dir"
  # Every tracked file but the Rust sources and the CI machinery.
  (cd "$ROOT" && git ls-files -z | grep -zvE '^(crate|src|benchmark|scripts|\.github|\.ci)/' \
    | tar cf - --null -T -) | tar xf - -C "$dir"
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.ci" 2>/dev/null; then
    rm -rf "$dir/node_modules"
    (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error "$@" >/dev/null)
    cp "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.ci"
  fi
}

# ava_summary LOG: "N passed, N failed, N skipped" from an ava log (with failures ava leaves
# the passed count out of its own summary), then the title of every failed test (CI's log is
# cut in the middle, so a failure must be named in these last lines), then the reasons the specs
# printed for skipping ("skipped under <emulator>, <why>: <title>" or "skipped: <why>: <title>",
# see helpers.ts).
ava_summary() {
  local passed failed skipped
  passed="$(grep -cE '^\s+(✔|√) ' "$1" || true)"
  failed="$(grep -cE '^\s+(✘|×) ' "$1" || true)"
  skipped="$(grep -cE '^\s+- \[skip\] ' "$1" || true)"
  echo "$passed passed, $failed failed, $skipped skipped"
  grep -E '^\s+(✘|×) ' "$1" | sed -E 's/^\s+(✘|×) /    FAILED: /' || true
  grep -oE 'skipped( (under|on) [^:]+)?: .*' "$1" | sort -u | sed 's/^/    /' || true
}

# failed_specs LOG: the spec files (relative to the test tree) of the tests that failed in LOG.
# An emulator stalls threads and processes for longer than any real machine does, so a spec with
# a deadline can fail there once in many runs; the emulated runs try such files once more, and
# the summary names both the failure and the second try.
failed_specs() {
  grep -E '^\s+(✘|×) ' "$1" | sed -E 's/^\s+(✘|×) (\[[a-z]+\]: )?//; s/ › .*//' | sort -u \
    | while read -r spec; do
      [ -f "__test__/$spec.spec.ts" ] && echo "__test__/$spec.spec.ts"
    done || true
}
