//! The template language of request strings: literal text with `{{ EXPR }}` (spaces inside are
//! optional). One grammar, used by the validator (which checks names against what is defined at
//! each point) and by the engine (which compiles it for rendering).
//!
//! `EXPR` is a variable (`token`), a data feed column (`accounts.user`), `user_index`, or a
//! helper call: `random_int(A, B)`, `random_string(N)`, `uuid()`, `timestamp()`.

use std::fmt;

/// The helpers, as listed in error messages.
pub const HELPERS: &str = "random_int(a, b), uuid(), user_index, random_string(n), timestamp()";

/// Longest `random_string(N)`: a request field, not a way to allocate gigabytes per request.
pub const MAX_RANDOM_STRING: u32 = 65_536;

/// One `{{ ... }}` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expr<'a> {
    /// A variable extracted earlier.
    Var(&'a str),
    /// A column of a data feed row: `FEED.COLUMN`.
    Feed {
        /// The feed's name.
        feed: &'a str,
        /// The column's name.
        column: &'a str,
    },
    /// The user's index.
    UserIndex,
    /// `random_int(A, B)`, inclusive, `A <= B`.
    RandomInt(i64, i64),
    /// `random_string(N)`, `N <= MAX_RANDOM_STRING`.
    RandomString(u32),
    /// `uuid()`.
    Uuid,
    /// `timestamp()`: Unix seconds.
    Timestamp,
}

/// A piece of a template: literal text or an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text sent as is.
    Literal(&'a str),
    /// A `{{ ... }}`.
    Expr(Expr<'a>),
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// A `{{` without its `}}`.
    Unclosed,
    /// An expression that is not in the language; the message says what is wrong.
    Expr(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Unclosed => f.write_str("unclosed `{{`"),
            TemplateError::Expr(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for TemplateError {}

/// Splits a template into literal text and expressions.
pub fn pieces(text: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Piece::Literal(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        out.push(Piece::Expr(
            parse_expr(after[..end].trim()).map_err(TemplateError::Expr)?,
        ));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Literal(rest));
    }
    Ok(out)
}

/// Parses one trimmed expression (the text between `{{` and `}}`).
pub fn parse_expr(expr: &str) -> Result<Expr<'_>, String> {
    if let Some(open) = expr.find('(') {
        let name = expr[..open].trim();
        let Some(args) = expr[open + 1..].strip_suffix(')') else {
            return Err(format!("malformed helper call `{expr}`"));
        };
        let args: Vec<&str> = if args.trim().is_empty() {
            Vec::new()
        } else {
            args.split(',').map(str::trim).collect()
        };
        let bad =
            |usage: &str| format!("bad arguments to template helper `{expr}`; expected {usage}");
        return match name {
            "uuid" if args.is_empty() => Ok(Expr::Uuid),
            "timestamp" if args.is_empty() => Ok(Expr::Timestamp),
            "uuid" => Err(bad("uuid()")),
            "timestamp" => Err(bad("timestamp()")),
            "random_string" => match args.as_slice() {
                [n] => match n.parse::<u32>() {
                    Ok(n) if n <= MAX_RANDOM_STRING => Ok(Expr::RandomString(n)),
                    _ => Err(bad("random_string(N) with N an integer from 0 to 65536")),
                },
                _ => Err(bad("random_string(N) with N an integer from 0 to 65536")),
            },
            "random_int" => match args.as_slice() {
                [a, b] => match (a.parse::<i64>(), b.parse::<i64>()) {
                    (Ok(a), Ok(b)) if a <= b => Ok(Expr::RandomInt(a, b)),
                    _ => Err(bad("random_int(A, B) with integers A <= B")),
                },
                _ => Err(bad("random_int(A, B) with integers A <= B")),
            },
            _ => Err(format!(
                "unknown template helper `{name}`; the helpers are {HELPERS}"
            )),
        };
    }
    if expr == "user_index" {
        return Ok(Expr::UserIndex);
    }
    if expr.is_empty() {
        return Err("empty template expression `{{ }}`".to_string());
    }
    if let Some((feed, column)) = expr.split_once('.') {
        if is_ident(feed) && !column.is_empty() {
            return Ok(Expr::Feed { feed, column });
        }
    }
    if is_ident(expr) {
        return Ok(Expr::Var(expr));
    }
    Err(format!("invalid template expression `{expr}`"))
}

/// Letters, digits and `_`, not starting with a digit.
pub fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert_eq!(
            pieces("a {{x}} b {{ acc.user }}{{user_index}}").unwrap(),
            vec![
                Piece::Literal("a "),
                Piece::Expr(Expr::Var("x")),
                Piece::Literal(" b "),
                Piece::Expr(Expr::Feed {
                    feed: "acc",
                    column: "user"
                }),
                Piece::Expr(Expr::UserIndex),
            ]
        );
        assert_eq!(parse_expr("random_int(1, 5)"), Ok(Expr::RandomInt(1, 5)));
        assert_eq!(parse_expr("random_string( 3 )"), Ok(Expr::RandomString(3)));
        assert_eq!(parse_expr("uuid()"), Ok(Expr::Uuid));
        assert_eq!(parse_expr("timestamp()"), Ok(Expr::Timestamp));
        assert_eq!(pieces("{{ x"), Err(TemplateError::Unclosed));
        for bad in [
            "random_int(5, 1)",
            "random_int(1)",
            "random_string(70000)",
            "uuid(1)",
            "nope()",
            "random_int(1, 2",
            "",
            "a b",
        ] {
            assert!(parse_expr(bad).is_err(), "{bad}");
        }
    }
}
