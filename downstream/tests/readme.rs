//! README's example and `src/lib.rs` stay the same code.

#[test]
fn the_example_compiled_here_is_readmes() {
    let readme = include_str!("../../README.md");
    let lib = include_str!("../src/lib.rs");
    let section = readme
        .split("## The library in a few lines")
        .nth(1)
        .expect("README has the section");
    let example = section
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the section has a rust block");
    // The function body holds the example whole, in one piece, indented by four spaces.
    let indented: String = example
        .lines()
        .map(|line| match line.trim().is_empty() {
            true => "\n".to_owned(),
            false => format!("    {line}\n"),
        })
        .collect();
    assert!(
        example.lines().count() >= 10 && lib.contains(&indented),
        "downstream/src/lib.rs does not hold README's example as it is: copy it again"
    );
}
