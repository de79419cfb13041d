//! Compile-fail tests: `#[service]` rejects what it cannot serve with a message at the right
//! token. Regenerate the expected output with `TRYBUILD=overwrite` and read every diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
