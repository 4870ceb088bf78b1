# Sourced after lib.sh by wine.sh and qemu-arm64.sh: a copy of the JS side of the package
# (loader, specs, fixtures, examples) with node_modules for another OS or CPU, so that the
# clone's own node_modules, which the Linux x64 steps use, stays as it is.

# test_tree DIR NPM_FLAGS...: fills DIR from the working tree and runs `npm ci NPM_FLAGS` in
# it (again only when package-lock.json changed).
test_tree() {
  local dir="$1"
  shift
  mkdir -p "$dir"
  (cd "$ROOT" && tar cf - package.json package-lock.json index.js index.d.ts README.md LICENSE __test__ examples npm) \
    | tar xf - -C "$dir"
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.ci" 2>/dev/null; then
    rm -rf "$dir/node_modules"
    (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error "$@" >/dev/null)
    cp "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.ci"
  fi
}

# ava_summary LOG: the "N tests passed" / skipped / failed lines of an ava run.
ava_summary() {
  grep -E '^\s*[0-9]+ (tests? (passed|failed)|known failures?|tests? skipped|uncaught exceptions?|unhandled rejections?)' "$1" \
    | sed -E 's/^\s+//' | paste -sd ',' - | sed 's/,/, /g'
}
