//! Bounds a GraphQL document before anything parses it.
//!
//! The GraphQL parser (and the validation after it) recurses once per nesting level of
//! values and selections; a few kilobytes of `[[[[...]]]]` would overflow a thread's
//! stack and abort the whole process. So every document is first read by this flat,
//! non-recursive scanner, which refuses one that is too large ([`DOCUMENT_BYTES_MAX`]),
//! has too many tokens ([`DOCUMENT_TOKENS_MAX`]) or nests brackets of any kind (`{`, `[`,
//! `(`) deeper than [`DOCUMENT_NESTING_MAX`].
//!
//! The scanner also enforces the spec's "Input Object Field Uniqueness" rule
//! (<https://spec.graphql.org/October2021/#sec-Input-Object-Field-Uniqueness>), which the
//! parser cannot: it keeps the last of two fields with one name, so
//! `{amount: "1", amount: "2"}` would otherwise be read as 2.

use std::collections::HashSet;

/// The longest document accepted, in bytes. A batch of 1,000 operations written inline
/// is about 200 KiB.
pub const DOCUMENT_BYTES_MAX: usize = 256 * 1024;
/// The most lexical tokens a document may have.
pub const DOCUMENT_TOKENS_MAX: usize = 40_000;
/// The deepest brackets of any kind may nest: selections, arguments, lists and objects.
pub const DOCUMENT_NESTING_MAX: usize = 40;

/// Why a document was refused before parsing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("the query is {bytes} bytes long; at most {DOCUMENT_BYTES_MAX} are accepted")]
    TooLong { bytes: usize },
    #[error("the query has more than {DOCUMENT_TOKENS_MAX} tokens")]
    TooManyTokens,
    #[error(
        "the query nests brackets more than {DOCUMENT_NESTING_MAX} deep (at line {line}, column {column})"
    )]
    TooDeep { line: usize, column: usize },
    #[error(
        "the input object field {name:?} is given more than once (at line {line}, column {column}); \
         each field of an input object may appear once"
    )]
    RepeatedField {
        name: String,
        line: usize,
        column: usize,
    },
}

#[derive(Debug)]
enum Frame {
    /// A selection set, argument list or variable definitions: nothing to track.
    Other,
    /// A list value (or a list type): a `{` inside it is an input object.
    List,
    /// An input object value: the field names seen so far, and what comes next.
    Object {
        names: HashSet<String>,
        next: ObjectPart,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ObjectPart {
    Name,
    Colon,
    Value,
}

/// Checks `query` against the limits above and the uniqueness of input object fields.
pub fn scan(query: &str) -> Result<(), DocumentError> {
    if query.len() > DOCUMENT_BYTES_MAX {
        return Err(DocumentError::TooLong { bytes: query.len() });
    }
    let mut lexer = Lexer::new(query);
    let mut stack: Vec<Frame> = Vec::new();
    let mut previous: Option<Token> = None;
    let mut tokens = 0usize;
    while let Some((token, line, column)) = lexer.next_token() {
        tokens += 1;
        if tokens > DOCUMENT_TOKENS_MAX {
            return Err(DocumentError::TooManyTokens);
        }
        match &token {
            Token::Open(bracket) => {
                if stack.len() >= DOCUMENT_NESTING_MAX {
                    return Err(DocumentError::TooDeep { line, column });
                }
                let in_value_position = matches!(previous, Some(Token::Colon | Token::Equals))
                    || matches!(stack.last(), Some(Frame::List));
                stack.push(match bracket {
                    '{' if in_value_position => Frame::Object {
                        names: HashSet::new(),
                        next: ObjectPart::Name,
                    },
                    '[' => Frame::List,
                    _ => Frame::Other,
                });
            }
            Token::Close => {
                stack.pop();
                value_ended(&mut stack);
            }
            Token::Name(name) => {
                if let Some(Frame::Object { names, next }) = stack.last_mut() {
                    match next {
                        ObjectPart::Name => {
                            if !names.insert(name.clone()) {
                                return Err(DocumentError::RepeatedField {
                                    name: name.clone(),
                                    line,
                                    column,
                                });
                            }
                            *next = ObjectPart::Colon;
                        }
                        ObjectPart::Value => *next = ObjectPart::Name,
                        ObjectPart::Colon => {}
                    }
                }
            }
            Token::Colon => {
                if let Some(Frame::Object { next, .. }) = stack.last_mut()
                    && *next == ObjectPart::Colon
                {
                    *next = ObjectPart::Value;
                }
            }
            Token::Value => value_ended(&mut stack),
            Token::Equals | Token::Dollar | Token::Other => {}
        }
        previous = Some(token);
    }
    Ok(())
}

/// A value just ended: inside an object, a field name comes next.
fn value_ended(stack: &mut [Frame]) {
    if let Some(Frame::Object { next, .. }) = stack.last_mut()
        && *next == ObjectPart::Value
    {
        *next = ObjectPart::Name;
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Open(char),
    Close,
    Name(String),
    Colon,
    Equals,
    Dollar,
    /// A number or a string.
    Value,
    /// Any other punctuator (`!`, `@`, `...`, `&`, `|`) or a character the parser will refuse.
    Other,
}

struct Lexer<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
    line_start: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            at: 0,
            line: 1,
            line_start: 0,
        }
    }

    fn peek(&self, offset: usize) -> Option<u8> {
        self.text.get(self.at + offset).copied()
    }

    fn newline(&mut self) {
        self.line += 1;
        self.line_start = self.at;
    }

    /// The next token with its line and column, skipping whitespace, commas and comments.
    fn next_token(&mut self) -> Option<(Token, usize, usize)> {
        loop {
            let byte = self.peek(0)?;
            match byte {
                b'\n' => {
                    self.at += 1;
                    self.newline();
                }
                b' ' | b'\t' | b'\r' | b',' => self.at += 1,
                b'#' => {
                    while let Some(b) = self.peek(0) {
                        if b == b'\n' || b == b'\r' {
                            break;
                        }
                        self.at += 1;
                    }
                }
                // The UTF-8 byte order mark is ignored like whitespace.
                0xEF if self.peek(1) == Some(0xBB) && self.peek(2) == Some(0xBF) => self.at += 3,
                _ => break,
            }
        }
        let line = self.line;
        let column = self.at - self.line_start + 1;
        let byte = self.peek(0)?;
        let token = match byte {
            b'{' | b'[' | b'(' => {
                self.at += 1;
                Token::Open(byte as char)
            }
            b'}' | b']' | b')' => {
                self.at += 1;
                Token::Close
            }
            b':' => {
                self.at += 1;
                Token::Colon
            }
            b'=' => {
                self.at += 1;
                Token::Equals
            }
            b'$' => {
                self.at += 1;
                Token::Dollar
            }
            b'"' => {
                self.string();
                Token::Value
            }
            b'-' | b'0'..=b'9' => {
                self.at += 1;
                while let Some(b) = self.peek(0) {
                    if b.is_ascii_alphanumeric() || b == b'.' || b == b'+' || b == b'-' {
                        self.at += 1;
                    } else {
                        break;
                    }
                }
                Token::Value
            }
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                let start = self.at;
                while let Some(b) = self.peek(0) {
                    if b == b'_' || b.is_ascii_alphanumeric() {
                        self.at += 1;
                    } else {
                        break;
                    }
                }
                Token::Name(String::from_utf8_lossy(&self.text[start..self.at]).into_owned())
            }
            b'.' if self.peek(1) == Some(b'.') && self.peek(2) == Some(b'.') => {
                self.at += 3;
                Token::Other
            }
            _ => {
                // One character the parser will judge; step over a whole UTF-8 sequence.
                self.at += 1;
                while self.peek(0).is_some_and(|b| b & 0xC0 == 0x80) {
                    self.at += 1;
                }
                Token::Other
            }
        };
        Some((token, line, column))
    }

    /// Steps over a string or block string (an unterminated one runs to the end).
    fn string(&mut self) {
        if self.peek(1) == Some(b'"') && self.peek(2) == Some(b'"') {
            self.at += 3;
            while let Some(b) = self.peek(0) {
                if b == b'\\'
                    && self.peek(1) == Some(b'"')
                    && self.peek(2) == Some(b'"')
                    && self.peek(3) == Some(b'"')
                {
                    self.at += 4;
                } else if b == b'"' && self.peek(1) == Some(b'"') && self.peek(2) == Some(b'"') {
                    self.at += 3;
                    return;
                } else {
                    self.at += 1;
                    if b == b'\n' {
                        self.newline();
                    }
                }
            }
            return;
        }
        self.at += 1;
        while let Some(b) = self.peek(0) {
            match b {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    return;
                }
                b'\n' | b'\r' => return,
                _ => self.at += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_documents_pass() {
        for query in [
            "{ a }",
            "query Q($i: DepositInput! = {amount: \"1\", accountId: \"x\"}) { deposit(input: $i) { position } }",
            "mutation { deposit(input: {accountId: \"a\", amount: \"1.00\", reference: \"{amount: 1, amount: 2}\", idempotencyKey: \"k\"}) { position } }",
            "{ x(list: [{a: 1, b: [1, 2]}, {a: 2, b: []}], o: {a: {a: {a: 1}}, b: $v}) @include(if: true) { ...F } }",
            "# a comment with [[[[ and {{{{\n{ a(s: \"\"\"block [[[ \\\"\"\" still\"\"\") }",
        ] {
            assert_eq!(scan(query), Ok(()), "{query}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_any_parser_recurses() {
        let lists = format!("{{ x(a: {}1{}) }}", "[".repeat(1500), "]".repeat(1500));
        assert!(matches!(scan(&lists), Err(DocumentError::TooDeep { .. })));
        let objects = format!("{{ x(a: {}1{}) }}", "{a: ".repeat(1500), "}".repeat(1500));
        assert!(matches!(scan(&objects), Err(DocumentError::TooDeep { .. })));
        let defaults = format!(
            "query($v: [Int] = {}1{}) {{ a }}",
            "[".repeat(800),
            "]".repeat(800)
        );
        assert!(matches!(
            scan(&defaults),
            Err(DocumentError::TooDeep { .. })
        ));
        let selections = format!("{}{}", "{ a ".repeat(500), "}".repeat(500));
        assert!(matches!(
            scan(&selections),
            Err(DocumentError::TooDeep { .. })
        ));
        // Unbalanced input only ever opens: still bounded.
        assert!(matches!(
            scan(&"[".repeat(100_000)),
            Err(DocumentError::TooDeep { .. })
        ));
    }

    #[test]
    fn size_and_token_limits_hold() {
        let long = format!("{{ a(s: \"{}\") }}", "x".repeat(DOCUMENT_BYTES_MAX));
        assert!(matches!(scan(&long), Err(DocumentError::TooLong { .. })));
        let many = format!("{{ {} }}", "a ".repeat(DOCUMENT_TOKENS_MAX));
        assert_eq!(scan(&many), Err(DocumentError::TooManyTokens));
    }

    #[test]
    fn a_repeated_input_object_field_is_refused_wherever_it_is() {
        for query in [
            "mutation { deposit(input: {accountId: \"a\", amount: \"1\", amount: \"2\", idempotencyKey: \"k\"}) { position } }",
            "{ x(l: [{a: 1}, {b: 1, b: 2}]) }",
            "{ x(o: {a: {c: [1, 2], c: 3}}) }",
            "query($v: In = {a: $x, a: 1}) { a }",
            "{ a @d(o: {a: 1, a: 2}) }",
        ] {
            assert!(
                matches!(scan(query), Err(DocumentError::RepeatedField { .. })),
                "{query}"
            );
        }
        let Err(DocumentError::RepeatedField { name, line, column }) =
            scan("{ x(o: {amount: 1,\n amount: 2}) }")
        else {
            panic!("the repeated field was not found");
        };
        assert_eq!((name.as_str(), line, column), ("amount", 2, 2));
    }

    #[test]
    fn scanning_never_panics_on_odd_bytes() {
        for query in [
            "\"",
            "\"\"\"",
            "\\",
            "...",
            "é{[(",
            "{ a(s: \"\\",
            "\u{feff}{ a }",
            "-",
            "$$",
        ] {
            let _ = scan(query);
        }
    }
}
