//! The JSONPath subset `--redact json:` takes: `$`, `.name`, `['name']`, `[N]`, `[*]`, `.*`,
//! and descent `..name`, `..*`, `..['name']`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
    Wild,
    /// `..name` (Some) or `..*` (None): this node and every node below it.
    Descend(Option<String>),
}

#[derive(Debug, Clone)]
pub(super) struct JsonPath(Vec<Seg>);

const EXPECTED: &str = "expected a JSONPath such as $.user.password, $.items[*].token or $..secret";

impl JsonPath {
    pub(super) fn parse(s: &str) -> Result<JsonPath, String> {
        let b = s.trim().as_bytes();
        if b.first() != Some(&b'$') {
            return Err(EXPECTED.into());
        }
        let mut i = 1;
        let mut segs = Vec::new();
        while i < b.len() {
            let descend = b[i..].starts_with(b"..");
            if descend {
                i += 2;
            } else if b[i] == b'.' {
                i += 1;
            } else if b[i] != b'[' {
                return Err(EXPECTED.into());
            }
            let seg = if i < b.len() && b[i] == b'[' {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b']')
                    .ok_or_else(|| EXPECTED.to_string())?
                    + i;
                let inner = std::str::from_utf8(&b[i + 1..end])
                    .map_err(|_| EXPECTED.to_string())?
                    .trim();
                i = end + 1;
                if inner == "*" {
                    Seg::Wild
                } else if let Ok(n) = inner.parse::<usize>() {
                    Seg::Index(n)
                } else if inner.len() >= 2
                    && ((inner.starts_with('\'') && inner.ends_with('\''))
                        || (inner.starts_with('"') && inner.ends_with('"')))
                {
                    Seg::Key(inner[1..inner.len() - 1].to_string())
                } else {
                    return Err(EXPECTED.into());
                }
            } else {
                let start = i;
                while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                    i += 1;
                }
                let name = std::str::from_utf8(&b[start..i]).map_err(|_| EXPECTED.to_string())?;
                match name {
                    "" => return Err(EXPECTED.into()),
                    "*" => Seg::Wild,
                    n => Seg::Key(n.to_string()),
                }
            };
            segs.push(if descend {
                match seg {
                    Seg::Key(k) => Seg::Descend(Some(k)),
                    Seg::Wild => Seg::Descend(None),
                    _ => return Err(EXPECTED.into()),
                }
            } else {
                seg
            });
        }
        if segs.is_empty() {
            return Err(format!("$ alone would mask the whole body: {EXPECTED}"));
        }
        Ok(JsonPath(segs))
    }

    /// Calls `f` on every node the path selects (outermost first; `f` may replace the node).
    pub(super) fn for_each_mut(&self, v: &mut Value, f: &mut dyn FnMut(&mut Value)) {
        walk(v, &self.0, f);
    }
}

fn walk(v: &mut Value, segs: &[Seg], f: &mut dyn FnMut(&mut Value)) {
    let Some((seg, rest)) = segs.split_first() else {
        f(v);
        return;
    };
    match seg {
        Seg::Key(k) => {
            if let Some(c) = v.as_object_mut().and_then(|o| o.get_mut(k)) {
                walk(c, rest, f);
            }
        }
        Seg::Index(n) => {
            if let Some(c) = v.as_array_mut().and_then(|a| a.get_mut(*n)) {
                walk(c, rest, f);
            }
        }
        Seg::Wild => children(v, &mut |c| walk(c, rest, f)),
        Seg::Descend(name) => {
            // This node first (it may be replaced by a scalar), then below it.
            match name {
                Some(k) => {
                    if let Some(c) = v.as_object_mut().and_then(|o| o.get_mut(k)) {
                        walk(c, rest, f);
                    }
                }
                None => children(v, &mut |c| walk(c, rest, f)),
            }
            children(v, &mut |c| walk(c, segs, f));
        }
    }
}

fn children(v: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    match v {
        Value::Object(o) => o.values_mut().for_each(f),
        Value::Array(a) => a.iter_mut().for_each(f),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn select(path: &str, mut v: Value) -> Value {
        JsonPath::parse(path)
            .unwrap()
            .for_each_mut(&mut v, &mut |n| *n = json!("X"));
        v
    }

    #[test]
    fn paths_select_what_they_say() {
        let v = json!({"a": {"b": 1, "c": [{"t": 1}, {"t": 2}]}, "t": 3});
        assert_eq!(
            select("$.a.b", v.clone()),
            json!({"a": {"b": "X", "c": [{"t": 1}, {"t": 2}]}, "t": 3})
        );
        assert_eq!(
            select("$.a.c[1].t", v.clone())["a"]["c"],
            json!([{"t": 1}, {"t": "X"}])
        );
        assert_eq!(
            select("$.a.c[*].t", v.clone())["a"]["c"],
            json!([{"t": "X"}, {"t": "X"}])
        );
        assert_eq!(select("$['a']['b']", v.clone())["a"]["b"], "X");
        let all = select("$..t", v.clone());
        assert_eq!(all["t"], "X");
        assert_eq!(all["a"]["c"], json!([{"t": "X"}, {"t": "X"}]));
    }

    #[test]
    fn bad_paths_are_errors() {
        for p in ["", "a.b", "$", "$.", "$[", "$[x]", "$..[0]", "$.a..", "$a"] {
            assert!(JsonPath::parse(p).is_err(), "{p}");
        }
    }
}
