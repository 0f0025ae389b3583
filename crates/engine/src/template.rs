//! `{{ ... }}` templates in request strings, compiled once at plan time so that rendering is a
//! walk over parts with no parsing on the hot path.
//!
//! Hand-written rather than minijinja: the language is deliberately tiny (variables, feed
//! columns and five helpers, as `docs/scenario.md` documents) and rendering runs once per request
//! field, so it must not allocate beyond the output string.
//!
//! The grammar itself lives in [`mynah_scenario::template`], shared with the validator; this
//! module resolves feed columns against the loaded CSV files and renders.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::feed::{FeedError, Feeds};

pub use mynah_scenario::template::MAX_RANDOM_STRING;

/// What a template can read while rendering; implemented by a virtual user.
pub trait Context {
    /// A variable extracted earlier, if set.
    fn var(&self, name: &str) -> Option<&str>;
    /// Column `column` of the row this user currently holds from feed `feed` (drawing a row
    /// first if it holds none for the current iteration).
    fn feed_value(&mut self, feed: usize, column: usize) -> Result<&str, FeedError>;
    /// The user's index (0-based, unique in the run).
    fn user_index(&self) -> u64;
    /// The user's random number generator.
    fn rng(&mut self) -> &mut fastrand::Rng;
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

/// One piece of a compiled template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Text copied as is.
    Literal(Box<str>),
    /// `{{ name }}`: a variable extracted earlier.
    Var(Box<str>),
    /// `{{ feed.column }}`, resolved to indexes.
    Feed { feed: usize, column: usize },
    /// `{{ user_index }}`.
    UserIndex,
    /// `{{ random_int(A, B) }}`, inclusive, `A <= B`.
    RandomInt(i64, i64),
    /// `{{ random_string(N) }}`: `N` alphanumeric characters.
    RandomString(u32),
    /// `{{ uuid() }}`: a random v4 UUID.
    Uuid,
    /// `{{ timestamp() }}`: Unix seconds.
    Timestamp,
}

/// Why a template failed to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// A variable that should have been extracted earlier was not (the extraction failed).
    MissingVar(String),
    /// A data feed ran out of rows.
    Feed(FeedError),
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::MissingVar(name) => write!(f, "variable `{name}` is not set"),
            RenderError::Feed(e) => f.write_str(&e.message),
        }
    }
}

impl std::error::Error for RenderError {}

impl Template {
    /// Compiles `text`; feed references are resolved against `feeds` (an unknown column is an
    /// error that lists the feed's columns).
    pub fn parse(text: &str, feeds: &Feeds) -> Result<Template, String> {
        use mynah_scenario::template::{pieces, Expr, Piece, TemplateError};
        let pieces = pieces(text).map_err(|e| match e {
            TemplateError::Unclosed => format!("unclosed `{{{{` in `{text}`"),
            TemplateError::Expr(m) => m,
        })?;
        let mut parts = Vec::with_capacity(pieces.len());
        for piece in pieces {
            parts.push(match piece {
                Piece::Literal(t) => Part::Literal(t.into()),
                Piece::Expr(Expr::Var(v)) => Part::Var(v.into()),
                Piece::Expr(Expr::Feed { feed, column }) => feed_part(feed, column, feeds)?,
                Piece::Expr(Expr::UserIndex) => Part::UserIndex,
                Piece::Expr(Expr::RandomInt(a, b)) => Part::RandomInt(a, b),
                Piece::Expr(Expr::RandomString(n)) => Part::RandomString(n),
                Piece::Expr(Expr::Uuid) => Part::Uuid,
                Piece::Expr(Expr::Timestamp) => Part::Timestamp,
            });
        }
        Ok(Template { parts })
    }

    /// The text, when the template has no `{{ }}` at all.
    pub fn as_static(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// Appends the rendered text to `out`.
    pub fn render(&self, ctx: &mut dyn Context, out: &mut String) -> Result<(), RenderError> {
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(name) => match ctx.var(name) {
                    Some(value) => out.push_str(value),
                    None => return Err(RenderError::MissingVar(name.to_string())),
                },
                Part::Feed { feed, column } => {
                    let value = ctx.feed_value(*feed, *column).map_err(RenderError::Feed)?;
                    out.push_str(value);
                }
                Part::UserIndex => {
                    let _ = write!(out, "{}", ctx.user_index());
                }
                Part::RandomInt(a, b) => {
                    let n = ctx.rng().i64(*a..=*b);
                    let _ = write!(out, "{n}");
                }
                Part::RandomString(n) => {
                    let rng = ctx.rng();
                    out.reserve(*n as usize);
                    for _ in 0..*n {
                        out.push(rng.alphanumeric());
                    }
                }
                Part::Uuid => push_uuid(ctx.rng(), out),
                Part::Timestamp => {
                    let secs = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let _ = write!(out, "{secs}");
                }
            }
        }
        Ok(())
    }

    /// Renders into a new string.
    pub fn render_to_string(&self, ctx: &mut dyn Context) -> Result<String, RenderError> {
        let mut out = String::new();
        self.render(ctx, &mut out)?;
        Ok(out)
    }
}

/// Resolves `FEED.COLUMN` against the loaded feeds.
fn feed_part(feed_name: &str, column: &str, feeds: &Feeds) -> Result<Part, String> {
    let Some(feed) = feeds.index(feed_name) else {
        let names: Vec<&str> = feeds.names().collect();
        let declared = if names.is_empty() {
            "no data feeds are declared".to_string()
        } else {
            format!("declared feeds: {}", names.join(", "))
        };
        return Err(format!(
            "unknown data feed \"{feed_name}\" in `{{{{ {feed_name}.{column} }}}}`; {declared}"
        ));
    };
    let column = feeds.column(feed, column)?;
    Ok(Part::Feed { feed, column })
}

/// Appends a random version-4 UUID (lowercase, hyphenated). Written by hand (about ten lines)
/// rather than adding the `uuid` crate: 16 random bytes from the user's generator with the
/// version (`0100`) and variant (`10`) bits set.
fn push_uuid(rng: &mut fastrand::Rng, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    out.reserve(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
}

/// A JSON value whose strings (keys and values) are templates.
///
/// Every string renders to a JSON **string**, even one that is exactly one expression:
/// `{"n": "{{ random_int(1, 99) }}"}` renders as `{"n": "42"}`, not `{"n": 42}` (like string
/// formatting in k6 or Locust). Numbers, booleans and null are kept as written.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonTemplate {
    inner: JsonInner,
}

#[derive(Debug, Clone, PartialEq)]
enum JsonInner {
    /// No string holds an expression: rendering is a clone.
    Static(serde_json::Value),
    Dynamic(JsonNode),
}

#[derive(Debug, Clone, PartialEq)]
enum JsonNode {
    /// A number, boolean, null, or a string without expressions.
    Value(serde_json::Value),
    String(Template),
    Array(Vec<JsonNode>),
    Object(Vec<(Template, JsonNode)>),
}

impl JsonNode {
    fn parse(value: &serde_json::Value, feeds: &Feeds) -> Result<(JsonNode, bool), String> {
        use serde_json::Value;
        Ok(match value {
            Value::String(s) => {
                let t = Template::parse(s, feeds)?;
                let is_static = t.as_static().is_some();
                (JsonNode::String(t), is_static)
            }
            Value::Array(items) => {
                let mut all_static = true;
                let mut nodes = Vec::with_capacity(items.len());
                for item in items {
                    let (node, s) = JsonNode::parse(item, feeds)?;
                    all_static &= s;
                    nodes.push(node);
                }
                (JsonNode::Array(nodes), all_static)
            }
            Value::Object(map) => {
                let mut all_static = true;
                let mut entries = Vec::with_capacity(map.len());
                for (k, v) in map {
                    let key = Template::parse(k, feeds)?;
                    all_static &= key.as_static().is_some();
                    let (node, s) = JsonNode::parse(v, feeds)?;
                    all_static &= s;
                    entries.push((key, node));
                }
                (JsonNode::Object(entries), all_static)
            }
            other => (JsonNode::Value(other.clone()), true),
        })
    }

    fn render(&self, ctx: &mut dyn Context) -> Result<serde_json::Value, RenderError> {
        use serde_json::Value;
        Ok(match self {
            JsonNode::Value(v) => v.clone(),
            JsonNode::String(t) => Value::String(t.render_to_string(ctx)?),
            JsonNode::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|n| n.render(ctx))
                    .collect::<Result<_, _>>()?,
            ),
            JsonNode::Object(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    let key = k.render_to_string(ctx)?;
                    map.insert(key, v.render(ctx)?);
                }
                Value::Object(map)
            }
        })
    }
}

impl JsonTemplate {
    /// Compiles every string inside `value`.
    pub fn parse(value: &serde_json::Value, feeds: &Feeds) -> Result<JsonTemplate, String> {
        let (node, is_static) = JsonNode::parse(value, feeds)?;
        let inner = if is_static {
            JsonInner::Static(value.clone())
        } else {
            JsonInner::Dynamic(node)
        };
        Ok(JsonTemplate { inner })
    }

    /// The value, when no string in it has a `{{ }}`.
    pub fn as_static(&self) -> Option<&serde_json::Value> {
        match &self.inner {
            JsonInner::Static(v) => Some(v),
            JsonInner::Dynamic(_) => None,
        }
    }

    /// Renders to a JSON value.
    pub fn render(&self, ctx: &mut dyn Context) -> Result<serde_json::Value, RenderError> {
        match &self.inner {
            JsonInner::Static(v) => Ok(v.clone()),
            JsonInner::Dynamic(node) => node.render(ctx),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::feed::RowId;
    use mynah_scenario::FeedMode;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::HashMap;

    /// A minimal [`Context`] for tests.
    pub(crate) struct TestCtx {
        pub vars: HashMap<String, String>,
        pub feeds: Feeds,
        pub rows: HashMap<usize, RowId>,
        pub user: u64,
        pub rng: fastrand::Rng,
    }

    impl TestCtx {
        pub fn new(feeds: Feeds) -> TestCtx {
            TestCtx {
                vars: HashMap::new(),
                feeds,
                rows: HashMap::new(),
                user: 7,
                rng: fastrand::Rng::with_seed(42),
            }
        }
    }

    impl Context for TestCtx {
        fn var(&self, name: &str) -> Option<&str> {
            self.vars.get(name).map(String::as_str)
        }
        fn feed_value(&mut self, feed: usize, column: usize) -> Result<&str, FeedError> {
            let row = match self.rows.get(&feed) {
                Some(r) => *r,
                None => {
                    let r = self.feeds.next_row(feed, &mut self.rng)?;
                    self.rows.insert(feed, r);
                    r
                }
            };
            Ok(self.feeds.value(feed, row, column))
        }
        fn user_index(&self) -> u64 {
            self.user
        }
        fn rng(&mut self) -> &mut fastrand::Rng {
            &mut self.rng
        }
    }

    fn feeds() -> Feeds {
        let mut feeds = Feeds::default();
        feeds
            .add_csv(
                "acc",
                "acc.csv",
                "acc.csv",
                FeedMode::Unique,
                &b"user,pass\nalice,secret\n"[..],
            )
            .unwrap();
        feeds
    }

    fn render(text: &str, ctx: &mut TestCtx) -> Result<String, RenderError> {
        let t = Template::parse(text, &ctx.feeds).unwrap();
        t.render_to_string(ctx)
    }

    #[test]
    fn literal_and_static() {
        let f = feeds();
        let t = Template::parse("/plain/path?a={b}&c=}}", &f).unwrap();
        assert_eq!(t.as_static(), Some("/plain/path?a={b}&c=}}"));
        assert_eq!(Template::parse("", &f).unwrap().as_static(), Some(""));
        assert_eq!(Template::parse("{{ x }}", &f).unwrap().as_static(), None);
    }

    #[test]
    fn variables_with_and_without_spaces() {
        let mut ctx = TestCtx::new(feeds());
        ctx.vars.insert("id".into(), "17".into());
        ctx.vars.insert("_tok2".into(), "abc".into());
        assert_eq!(
            render("/u/{{id}}/{{ _tok2 }}/{{   id   }}x", &mut ctx).unwrap(),
            "/u/17/abc/17x"
        );
        assert_eq!(
            render("a{{ missing }}", &mut ctx),
            Err(RenderError::MissingVar("missing".into()))
        );
    }

    #[test]
    fn feed_columns() {
        let mut ctx = TestCtx::new(feeds());
        assert_eq!(
            render("{{ acc.user }}:{{acc.pass}}", &mut ctx).unwrap(),
            "alice:secret"
        );
        // The unique feed has one row; a fresh user needing another row fails.
        ctx.rows.clear();
        match render("{{ acc.user }}", &mut ctx) {
            Err(RenderError::Feed(e)) => assert!(e.message.contains("ran out"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn feed_errors_list_columns_and_feeds() {
        let f = feeds();
        let e = Template::parse("{{ acc.password }}", &f).unwrap_err();
        assert!(e.contains("no column \"password\""), "{e}");
        assert!(e.contains("its columns are: user, pass"), "{e}");
        let e = Template::parse("{{ other.x }}", &f).unwrap_err();
        assert!(e.contains("unknown data feed \"other\""), "{e}");
        assert!(e.contains("declared feeds: acc"), "{e}");
        let e = Template::parse("{{ other.x }}", &Feeds::default()).unwrap_err();
        assert!(e.contains("no data feeds are declared"), "{e}");
    }

    #[test]
    fn helpers() {
        let mut ctx = TestCtx::new(feeds());
        assert_eq!(render("{{ user_index }}", &mut ctx).unwrap(), "7");
        assert_eq!(render("{{ random_int(5, 5) }}", &mut ctx).unwrap(), "5");
        assert_eq!(render("{{random_int(-3,-3)}}", &mut ctx).unwrap(), "-3");
        let full = format!("{{{{ random_int({}, {}) }}}}", i64::MIN, i64::MAX);
        assert!(render(&full, &mut ctx).unwrap().parse::<i64>().is_ok());
        let s = render("{{ random_string(12) }}", &mut ctx).unwrap();
        assert_eq!(s.len(), 12);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(render("{{ random_string(0) }}", &mut ctx).unwrap(), "");
        let ts: u64 = render("{{ timestamp() }}", &mut ctx)
            .unwrap()
            .parse()
            .unwrap();
        assert!(ts > 1_600_000_000);
        let a = render("{{ uuid() }}", &mut ctx).unwrap();
        let b = render("{{uuid( )}}", &mut ctx).unwrap();
        assert_ne!(a, b);
        for u in [a, b] {
            assert_eq!(u.len(), 36);
            let groups: Vec<&str> = u.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(u
                .chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
            assert!(groups[2].starts_with('4'));
            assert!(matches!(
                groups[3].chars().next(),
                Some('8' | '9' | 'a' | 'b')
            ));
        }
    }

    #[test]
    fn parse_errors() {
        let f = feeds();
        for (text, want) in [
            ("/a/{{ id", "unclosed `{{`"),
            ("{{ }}", "empty template expression"),
            ("{{ a b }}", "invalid template expression"),
            ("{{ nope() }}", "unknown template helper `nope`"),
            ("{{ uuid(1) }}", "bad arguments"),
            ("{{ timestamp(x) }}", "bad arguments"),
            ("{{ random_int(5, 1) }}", "bad arguments"),
            ("{{ random_int(1) }}", "bad arguments"),
            ("{{ random_int(a, 2) }}", "bad arguments"),
            ("{{ random_string(-1) }}", "bad arguments"),
            ("{{ random_string() }}", "bad arguments"),
            ("{{ uuid( }}", "malformed helper call"),
        ] {
            let e = Template::parse(text, &f).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn json_template() {
        let mut ctx = TestCtx::new(feeds());
        ctx.vars.insert("k".into(), "name".into());
        let value = json!({
            "{{ k }}": "{{ acc.user }}",
            "n": "{{ random_int(1, 1) }}",
            "list": [1, 2.5, true, null, "x{{ user_index }}"],
            "plain": "text",
        });
        let t = JsonTemplate::parse(&value, &ctx.feeds).unwrap();
        assert!(t.as_static().is_none());
        let got = t.render(&mut ctx).unwrap();
        assert_eq!(
            got,
            json!({
                "name": "alice",
                "n": "1",
                "list": [1, 2.5, true, null, "x7"],
                "plain": "text",
            })
        );
        let fixed = json!({"a": [1, "b"], "c": {"d": null}});
        let t = JsonTemplate::parse(&fixed, &ctx.feeds).unwrap();
        assert_eq!(t.as_static(), Some(&fixed));
        assert_eq!(t.render(&mut ctx).unwrap(), fixed);
        assert!(JsonTemplate::parse(&json!({"a": ["{{ acc.nope }}"]}), &ctx.feeds).is_err());
        assert!(JsonTemplate::parse(&json!({"{{ x": 1}), &ctx.feeds).is_err());
        let missing = JsonTemplate::parse(&json!(["{{ gone }}"]), &ctx.feeds).unwrap();
        assert_eq!(
            missing.render(&mut ctx),
            Err(RenderError::MissingVar("gone".into()))
        );
    }

    proptest! {
        #[test]
        fn text_without_braces_renders_verbatim(text in ".*") {
            prop_assume!(!text.contains("{{"));
            let f = Feeds::default();
            let t = Template::parse(&text, &f).unwrap();
            prop_assert_eq!(t.as_static(), Some(text.as_str()));
            let mut ctx = TestCtx::new(Feeds::default());
            prop_assert_eq!(t.render_to_string(&mut ctx).unwrap(), text);
        }

        #[test]
        fn random_int_stays_in_bounds(a in any::<i64>(), b in any::<i64>(), seed in any::<u64>()) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let t = Template::parse(&format!("{{{{ random_int({lo}, {hi}) }}}}"), &Feeds::default()).unwrap();
            let mut ctx = TestCtx::new(Feeds::default());
            ctx.rng = fastrand::Rng::with_seed(seed);
            for _ in 0..8 {
                let n: i64 = t.render_to_string(&mut ctx).unwrap().parse().unwrap();
                prop_assert!(lo <= n && n <= hi);
            }
        }

        #[test]
        fn parse_never_panics(text in ".*") {
            let _ = Template::parse(&text, &feeds());
        }

        #[test]
        fn parse_never_panics_near_braces(text in "[{}() .,a-z0-9_-]*") {
            // A huge random_string(N) would only test the allocator.
            prop_assume!(!text.contains("random_string"));
            if let Ok(t) = Template::parse(&text, &feeds()) {
                let mut ctx = TestCtx::new(feeds());
                let _ = t.render_to_string(&mut ctx);
            }
        }
    }
}
