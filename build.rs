fn main() {
    // napi-build reads LIBNODE_PATH for windows-gnu builds but does not declare it: declared
    // here, a changed path re-runs this script instead of linking against a stale one.
    println!("cargo:rerun-if-env-changed=LIBNODE_PATH");
    napi_build::setup();
}
