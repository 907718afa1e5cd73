//! Misuses of the derives fail to compile with a message that says what to fix: each
//! `tests/ui/*.rs` is checked against its `.stderr` (regenerate with `TRYBUILD=overwrite`).

#[test]
fn derive_misuse_is_a_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
