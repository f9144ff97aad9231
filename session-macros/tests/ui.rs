//! One compile-fail case per error the derive reports, each with the
//! `.stderr` the compiler must print beside it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
