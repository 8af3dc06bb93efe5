use nfslock::exit;

/// Every code in the table appears in the README's exit-code table with
/// the same number, so scripts written from the docs stay right.
#[test]
fn readme_lists_every_exit_code() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (code, _) in exit::TABLE {
        let row = format!("| {code} |");
        assert!(readme.contains(&row), "README lacks a row for exit {code}");
    }
    assert!(readme.contains("| 128+n |"));
}
