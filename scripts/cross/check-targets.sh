#!/usr/bin/env bash
# Type-checks and lints (clippy -D warnings, the whole workspace, every target kind) for each
# triple in package.json's napi.targets, with std built from source for that triple
# (-Zbuild-std), so no target's std or linker needs to be installed. Prints one line per
# target, then fails if any target failed. About 30-60 s per target on 2 cores.
#
# usage: scripts/cross/check-targets.sh [TRIPLE...]   (default: every napi target)
source "$(dirname "$0")/lib.sh"

rust_web_install
cd "$ROOT"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(napi_targets)

log_dir="$(mktemp -d)"
trap 'rm -rf "$log_dir"' EXIT
results=()
failed=0
for target in "${targets[@]}"; do
  start=$SECONDS
  flags=()
  # A musl cdylib needs a dynamically linked C runtime, or cargo leaves the cdylib out.
  [[ $target == *-musl ]] && flags=(-C target-feature=-crt-static)
  if RUSTFLAGS="${flags[*]}" xcargo clippy -Zbuild-std=std,panic_abort --target "$target" \
    --workspace --all-targets --quiet -- -D warnings >"$log_dir/$target.log" 2>&1; then
    status=ok
  else
    status=FAIL
  fi
  # With SHMKIT_CARGO_LOCK, time spent queueing for the lock is not the check's.
  waited="$(grep -oE '^\(waited [0-9]+ s' "$log_dir/$target.log" | grep -oE '[0-9]+' || echo 0)"
  results+=("$(printf '%-5s %-27s %4d s' "$status" "$target" $((SECONDS - start - waited)))")
  if [ $status = FAIL ]; then
    failed=1
    echo "== $target: clippy output" >&2
    cat "$log_dir/$target.log" >&2
  fi
  echo "${results[-1]}"
done

echo
echo "cargo clippy -D warnings --workspace --all-targets, per napi target:"
printf '  %s\n' "${results[@]}"
exit $failed
