//! Request templates on arbitrary UTF-8 text, parsed against one small in-memory data feed and
//! rendered when they parse. Text that is JSON also goes through the JSON body templates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynah_engine::feed::{FeedError, Feeds, RowId};
use mynah_engine::template::{Context, JsonTemplate, Template};
use mynah_scenario::FeedMode;

struct Ctx {
    feeds: Feeds,
    row: Option<RowId>,
    rng: fastrand::Rng,
}

impl Context for Ctx {
    fn var(&self, name: &str) -> Option<&str> {
        (name == "token").then_some("t0k3n")
    }
    fn feed_value(&mut self, feed: usize, column: usize) -> Result<&str, FeedError> {
        let row = match self.row {
            Some(r) => r,
            None => {
                let r = self.feeds.next_row(feed, &mut self.rng)?;
                self.row = Some(r);
                r
            }
        };
        Ok(self.feeds.value(feed, row, column))
    }
    fn user_index(&self) -> u64 {
        3
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
            &b"user,pass\nalice,secret\nbob,\"a,b\"\n"[..],
        )
        .unwrap();
    feeds
}

/// `random_string(N)` with a huge N renders N characters: that tests the allocator, not the
/// parser, so such texts are parsed but not rendered.
fn renderable(text: &str) -> bool {
    !text.contains("random_string")
        || text
            .split(|c: char| !c.is_ascii_digit())
            .all(|digits| digits.len() < 6)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = feeds();
    let parsed = Template::parse(text, &loaded);
    if let Ok(t) = &parsed {
        if !text.contains("{{") {
            assert_eq!(t.as_static(), Some(text));
        }
        if renderable(text) {
            let mut ctx = Ctx {
                feeds: feeds(),
                row: None,
                rng: fastrand::Rng::with_seed(1),
            };
            let _ = t.render_to_string(&mut ctx);
        }
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        if let Ok(t) = JsonTemplate::parse(&value, &loaded) {
            if renderable(text) {
                let mut ctx = Ctx {
                    feeds: feeds(),
                    row: None,
                    rng: fastrand::Rng::with_seed(1),
                };
                let _ = t.render(&mut ctx);
            }
        }
    }
});
