//! One compile-fail case per error the derive reports, each with the
//! `.stderr` the compiler must print beside it.
//!
//! The `.stderr` files are rustc's own wording, which changes between
//! releases. They were recorded with rustc 1.95 and are compared on it and
//! on any newer compiler (where a change fails the test: review it, then
//! re-bless with `TRYBUILD=overwrite`). Older compilers that the crates
//! still support (`rust-version`) word some errors differently, so there
//! the cases are skipped, with a notice.

use std::io::Write as _;
use std::process::Command;

/// The minor version of the rustc the `.stderr` files were recorded with.
const RECORDED_WITH: u32 = 95;

#[test]
fn ui() {
    let minor = rustc_minor();
    if minor < RECORDED_WITH {
        // Straight to stderr: the test harness captures `eprintln!`, and a
        // skip must not look like a pass.
        let _ = writeln!(
            std::io::stderr(),
            "ui: skipped, the .stderr files are rustc 1.{RECORDED_WITH}'s wording and this is rustc 1.{minor}"
        );
        return;
    }
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

/// The minor version of the rustc that trybuild is about to run: the one
/// cargo would pick, as rustup passes its choice of toolchain on to the
/// test's environment.
fn rustc_minor() -> u32 {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .arg("-V")
        .output()
        .expect("`rustc -V` runs");
    let text = String::from_utf8_lossy(&output.stdout);
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    text.split_whitespace()
        .nth(1)
        .and_then(|version| version.split('.').nth(1))
        .and_then(|minor| minor.parse().ok())
        .unwrap_or_else(|| panic!("unexpected `rustc -V` output: {text:?}"))
}
