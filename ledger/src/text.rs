//! Which characters a name, reference or reason may not contain: those a reader cannot
//! see or that change how the text around them is shown.
//!
//! Control characters (Unicode category Cc), line and paragraph separators (Zl, Zp) and the
//! format characters (Cf) that hide or reorder text: zero-width spaces and joiners,
//! bidirectional overrides and isolates (`alice\u{202e}ecila` shows as "aliceecila" read
//! backwards), the byte order mark, soft hyphens and tag characters. Such text in an
//! actor's name or a payment reference would look like something it is not in the audit
//! trail, a statement or a spreadsheet.

/// Whether `c` is invisible, or controls how other characters are shown.
pub fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// `text` as a JSON string, so a refusal can show it with anything invisible escaped.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_unprintable(c) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_reordering_characters_are_unprintable() {
        for c in [
            '\u{0}',
            '\n',
            '\u{1b}',
            '\u{200b}',
            '\u{202e}',
            '\u{2028}',
            '\u{feff}',
            '\u{e0041}',
        ] {
            assert!(is_unprintable(c), "{c:?}");
        }
        for c in ['a', 'é', 'ß', '中', ' ', '-', '€'] {
            assert!(!is_unprintable(c), "{c:?}");
        }
    }

    #[test]
    fn quoting_escapes_what_cannot_be_seen() {
        assert_eq!(quoted("1\u{200b}"), "\"1\\u200b\"");
        assert_eq!(quoted("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(quoted("José"), "\"José\"");
    }
}
