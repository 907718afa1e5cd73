//! A layout's builder checks its cheap bounds (the number of fields, the header size) before
//! the one check that compares pairs of fields, so a layout with any number of fields is
//! refused after one pass over them.

use ltprotocol::{HeaderLayout, Int, LayoutError, MAX_EXTRA_FIELDS, MAX_HEADER_LEN};

/// A builder with `count` one-byte extra fields after the default length and type, each at
/// its own offset: none overlaps, the names all differ.
fn with_fields(count: usize) -> ltprotocol::HeaderLayoutBuilder {
    let mut builder = HeaderLayout::builder();
    for i in 0..count {
        builder.field(&format!("f{i}"), 3 + i, Int::U8);
    }
    builder
}

#[test]
fn a_layout_with_a_huge_number_of_fields_is_refused_by_its_count() {
    // Compared in pairs, 100,000 fields make five billion comparisons; counted, one.
    let err = with_fields(100_000).build().unwrap_err();
    assert_eq!(
        err,
        LayoutError::TooManyFields {
            count: 100_000,
            max: MAX_EXTRA_FIELDS
        }
    );
    assert_eq!(
        err.to_string(),
        "100000 extra header fields; a layout may have at most 64"
    );
}

#[test]
fn the_field_count_bound_is_inclusive() {
    let layout = with_fields(MAX_EXTRA_FIELDS)
        .build()
        .expect("64 fields build");
    assert_eq!(layout.extra_fields().len(), MAX_EXTRA_FIELDS);
    assert_eq!(layout.header_len(), 3 + MAX_EXTRA_FIELDS);
    assert_eq!(
        with_fields(MAX_EXTRA_FIELDS + 1).build().unwrap_err(),
        LayoutError::TooManyFields {
            count: MAX_EXTRA_FIELDS + 1,
            max: MAX_EXTRA_FIELDS
        }
    );
}

#[test]
fn header_size_is_checked_before_overlap() {
    // Two fields overlap and one ends past the largest header: the header size is reported,
    // found in one pass, before any pair is compared.
    let err = HeaderLayout::builder()
        .field("a", 3, Int::U8)
        .field("b", 3, Int::U8)
        .field("far", MAX_HEADER_LEN, Int::U8)
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        LayoutError::HeaderTooLong {
            header_len: MAX_HEADER_LEN + 1,
            max: MAX_HEADER_LEN
        }
    );
    // A field past an explicit header size, likewise.
    let err = HeaderLayout::builder()
        .field("a", 3, Int::U8)
        .field("b", 3, Int::U8)
        .header_len(3)
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, LayoutError::FieldPastHeader { field, end: 4, header_len: 3 } if field == "a"),
        "{err:?}"
    );
}
