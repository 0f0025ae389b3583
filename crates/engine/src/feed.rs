//! CSV data feeds (`data:` in a scenario): loaded once before the run, rows handed to users in
//! `sequential`, `random` or `unique` order.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use mynah_scenario::{DataFeed, FeedMode};

/// Every data feed of a scenario, by index (names are resolved at plan time).
///
/// Feed indexes follow the order of the scenario's `data` map (sorted by name).
#[derive(Debug, Default)]
pub struct Feeds {
    feeds: Vec<Feed>,
}

/// One loaded feed. Cells are stored row-major in one vector: row `r`, column `c` is
/// `cells[r * columns.len() + c]`.
#[derive(Debug)]
struct Feed {
    name: Box<str>,
    /// The CSV path as written in the scenario (for messages).
    csv: Box<str>,
    mode: FeedMode,
    columns: Vec<Box<str>>,
    cells: Vec<Box<str>>,
    rows: u32,
    /// Next row for `sequential` (wrapping) and `unique` (not wrapping) feeds.
    cursor: AtomicU64,
}

/// A row handed out by a feed: an index into its rows.
pub type RowId = u32;

/// A feed ran out (mode `unique`) or could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedError {
    /// What went wrong, naming the feed and its file, and the fix.
    pub message: String,
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FeedError {}

fn feed_err(message: String) -> FeedError {
    FeedError { message }
}

impl Feeds {
    /// Loads every feed; CSV paths are relative to `base_dir` (the scenario file's folder).
    /// Errors name the file and line (a ragged row, a missing file, an empty file).
    pub fn load(feeds: &BTreeMap<String, DataFeed>, base_dir: &Path) -> Result<Feeds, FeedError> {
        let mut out = Feeds::default();
        for (name, feed) in feeds {
            let resolved = base_dir.join(&feed.csv);
            let file = std::fs::File::open(&resolved).map_err(|e| {
                feed_err(format!(
                    "data feed \"{name}\": cannot open CSV file {}: {e}; \
                     the `csv` path is relative to the scenario file's folder",
                    resolved.display()
                ))
            })?;
            let label = resolved.display().to_string();
            out.add_csv(name, &feed.csv, &label, feed.mode, file)?;
        }
        Ok(out)
    }

    /// Adds a feed read from `data` (CSV with a header row) and returns its index. `csv` is the
    /// path shown in run-time messages, `label` the file shown in load errors. Used by
    /// [`Feeds::load`]; handy to build feeds in memory for tests.
    pub fn add_csv(
        &mut self,
        name: &str,
        csv: &str,
        label: &str,
        mode: FeedMode,
        data: impl Read,
    ) -> Result<usize, FeedError> {
        let feed = parse_csv(name, csv, label, mode, data)?;
        self.feeds.push(feed);
        Ok(self.feeds.len() - 1)
    }

    /// The index of feed `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.feeds.iter().position(|f| &*f.name == name)
    }

    /// The name of feed `feed` (empty for an unknown index).
    pub fn name(&self, feed: usize) -> &str {
        self.feeds.get(feed).map_or("", |f| &f.name)
    }

    /// Every feed name, by index.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.feeds.iter().map(|f| &*f.name)
    }

    /// The column names of feed `feed`, in file order (empty for an unknown index).
    pub fn columns(&self, feed: usize) -> impl Iterator<Item = &str> {
        self.feeds
            .get(feed)
            .map(|f| f.columns.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| &**c)
    }

    /// How many data rows feed `feed` has (0 for an unknown index).
    pub fn rows(&self, feed: usize) -> u32 {
        self.feeds.get(feed).map_or(0, |f| f.rows)
    }

    /// The index of `column` in feed `feed`, or an error listing the feed's columns.
    pub fn column(&self, feed: usize, column: &str) -> Result<usize, String> {
        let Some(f) = self.feeds.get(feed) else {
            return Err(format!("no data feed with index {feed}"));
        };
        if let Some(i) = f.columns.iter().position(|c| &**c == column) {
            return Ok(i);
        }
        let list = f
            .columns
            .iter()
            .map(|c| &**c)
            .collect::<Vec<_>>()
            .join(", ");
        Err(format!(
            "data feed \"{}\" ({}) has no column \"{column}\"; its columns are: {list}",
            f.name, f.csv
        ))
    }

    /// Hands out the next row of feed `feed` per its mode (thread-safe: users call this
    /// concurrently). `unique` feeds fail once every row was handed out.
    pub fn next_row(&self, feed: usize, rng: &mut fastrand::Rng) -> Result<RowId, FeedError> {
        let Some(f) = self.feeds.get(feed) else {
            return Err(feed_err(format!("no data feed with index {feed}")));
        };
        if f.rows == 0 {
            // `load` refuses empty feeds; this only guards against a division by zero.
            return Err(feed_err(format!(
                "data feed \"{}\" ({}) has no rows",
                f.name, f.csv
            )));
        }
        match f.mode {
            FeedMode::Sequential => {
                let n = f.cursor.fetch_add(1, Ordering::Relaxed);
                // The remainder is below `rows`, a u32.
                Ok((n % u64::from(f.rows)) as RowId)
            }
            FeedMode::Random => Ok(rng.u32(0..f.rows)),
            FeedMode::Unique => {
                let n = f.cursor.fetch_add(1, Ordering::Relaxed);
                if n < u64::from(f.rows) {
                    Ok(n as RowId)
                } else {
                    let rows = if f.rows == 1 {
                        "gives its 1 row".to_string()
                    } else {
                        format!("gives each of its {} rows", f.rows)
                    };
                    Err(feed_err(format!(
                        "data feed \"{}\" ({}) ran out: mode unique {rows} to one user only; \
                         add rows or use mode sequential",
                        f.name, f.csv
                    )))
                }
            }
        }
    }

    /// The value of `column` in row `row` of feed `feed` (empty when out of range).
    pub fn value(&self, feed: usize, row: RowId, column: usize) -> &str {
        let Some(f) = self.feeds.get(feed) else {
            return "";
        };
        if row >= f.rows || column >= f.columns.len() {
            return "";
        }
        f.cells
            .get(row as usize * f.columns.len() + column)
            .map_or("", |c| c)
    }

    /// Whether feed `feed` is in `unique` mode (a user keeps its row for its whole life).
    pub fn is_unique(&self, feed: usize) -> bool {
        self.feeds
            .get(feed)
            .is_some_and(|f| f.mode == FeedMode::Unique)
    }

    /// How many feeds there are.
    pub fn len(&self) -> usize {
        self.feeds.len()
    }

    /// Whether there are no feeds.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads a whole CSV: the first record is the header, every other record a row with exactly as
/// many fields. Fields are kept verbatim (no trimming); quoted fields may hold commas, quotes
/// (doubled) and newlines. Blank lines are skipped.
fn parse_csv(
    name: &str,
    csv: &str,
    label: &str,
    mode: FeedMode,
    data: impl Read,
) -> Result<Feed, FeedError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data);
    let at = |line: u64| format!("data feed \"{name}\": {label} line {line}");
    let read_error = |e: csv::Error| {
        let line = e.position().map(|p| p.line());
        let place = match line {
            Some(line) => at(line),
            None => format!("data feed \"{name}\": {label}"),
        };
        match e.kind() {
            csv::ErrorKind::Utf8 { .. } => feed_err(format!(
                "{place}: not valid UTF-8; save the file with UTF-8 encoding"
            )),
            _ => feed_err(format!("{place}: cannot read CSV: {e}")),
        }
    };

    let mut records = reader.records();
    let header = match records.next() {
        None => {
            return Err(feed_err(format!(
                "data feed \"{name}\": {label} is empty; its first line must be a header naming \
                 the columns, e.g. `username,password`, followed by one line per row"
            )))
        }
        Some(r) => r.map_err(read_error)?,
    };
    let header_line = header.position().map_or(1, |p| p.line());
    let mut columns: Vec<Box<str>> = Vec::with_capacity(header.len());
    for field in header.iter() {
        if columns.iter().any(|c| &**c == field) {
            return Err(feed_err(format!(
                "{}: column \"{field}\" appears twice in the header; give every column a \
                 distinct name",
                at(header_line)
            )));
        }
        columns.push(field.into());
    }

    let mut cells: Vec<Box<str>> = Vec::new();
    let mut rows: u32 = 0;
    for record in records {
        let record = record.map_err(read_error)?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != columns.len() {
            return Err(feed_err(format!(
                "{}: has {} field{} but the header (line {header_line}) has {}; every row needs \
                 one value per column (quote values that contain commas: \"a,b\")",
                at(line),
                record.len(),
                if record.len() == 1 { "" } else { "s" },
                columns.len()
            )));
        }
        rows = rows.checked_add(1).ok_or_else(|| {
            feed_err(format!(
                "{}: too many rows (at most {} are supported)",
                at(line),
                u32::MAX
            ))
        })?;
        cells.extend(record.iter().map(Box::<str>::from));
    }
    if rows == 0 {
        return Err(feed_err(format!(
            "data feed \"{name}\": {label} has a header but no data rows; add at least one row \
             under the header (line {header_line})"
        )));
    }
    cells.shrink_to_fit();
    Ok(Feed {
        name: name.into(),
        csv: csv.into(),
        mode,
        columns,
        cells,
        rows,
        cursor: AtomicU64::new(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    fn feeds_from(text: &str, mode: FeedMode) -> Result<Feeds, FeedError> {
        let mut feeds = Feeds::default();
        feeds.add_csv(
            "accounts",
            "accounts.csv",
            "accounts.csv",
            mode,
            text.as_bytes(),
        )?;
        Ok(feeds)
    }

    fn err_of(text: &str) -> String {
        feeds_from(text, FeedMode::Sequential).unwrap_err().message
    }

    #[test]
    fn loads_header_and_rows_with_quotes() {
        let feeds = feeds_from(
            "user,pass,note\nalice,\"p,w\",\" spaced \"\nbob,\"say \"\"hi\"\"\",\"two\nlines\"\n",
            FeedMode::Sequential,
        )
        .unwrap();
        assert_eq!(feeds.len(), 1);
        assert!(!feeds.is_empty());
        assert_eq!(feeds.index("accounts"), Some(0));
        assert_eq!(feeds.index("nope"), None);
        assert_eq!(feeds.name(0), "accounts");
        assert_eq!(feeds.rows(0), 2);
        assert_eq!(
            feeds.columns(0).collect::<Vec<_>>(),
            ["user", "pass", "note"]
        );
        assert_eq!(feeds.column(0, "pass"), Ok(1));
        assert_eq!(feeds.value(0, 0, 0), "alice");
        assert_eq!(feeds.value(0, 0, 1), "p,w");
        assert_eq!(feeds.value(0, 0, 2), " spaced ");
        assert_eq!(feeds.value(0, 1, 1), "say \"hi\"");
        assert_eq!(feeds.value(0, 1, 2), "two\nlines");
        // Out of range never panics.
        assert_eq!(feeds.value(0, 2, 0), "");
        assert_eq!(feeds.value(0, 0, 3), "");
        assert_eq!(feeds.value(5, 0, 0), "");
        assert!(!feeds.is_unique(0));
        assert!(!feeds.is_unique(9));
    }

    #[test]
    fn nothing_is_trimmed() {
        let feeds = feeds_from(" a ,b\n x , y \n", FeedMode::Sequential).unwrap();
        assert_eq!(feeds.column(0, " a "), Ok(0));
        assert_eq!(feeds.value(0, 0, 0), " x ");
        assert_eq!(feeds.value(0, 0, 1), " y ");
    }

    #[test]
    fn unknown_column_lists_columns() {
        let feeds = feeds_from("user,pass\na,b\n", FeedMode::Sequential).unwrap();
        let e = feeds.column(0, "password").unwrap_err();
        assert_eq!(
            e,
            "data feed \"accounts\" (accounts.csv) has no column \"password\"; \
             its columns are: user, pass"
        );
        assert!(feeds.column(3, "user").is_err());
    }

    #[test]
    fn empty_file_and_header_only() {
        let e = err_of("");
        assert!(e.contains("accounts.csv is empty"), "{e}");
        assert!(e.contains("header"), "{e}");
        let e = err_of("user,pass\n");
        assert!(
            e.contains("accounts.csv has a header but no data rows"),
            "{e}"
        );
    }

    #[test]
    fn ragged_row_names_its_line() {
        let e = err_of("user,pass\na,b\nc,d\ne\nf,g\n");
        assert!(e.starts_with("data feed \"accounts\": accounts.csv line 4: has 1 field but the header (line 1) has 2"), "{e}");
        let e = err_of("user,pass\na,b,c\n");
        assert!(e.contains("line 2: has 3 fields"), "{e}");
        // A quoted newline counts toward the line numbers.
        let e = err_of("user,pass\n\"a\nb\",c\nd\n");
        assert!(e.contains("line 4: has 1 field"), "{e}");
    }

    #[test]
    fn duplicate_columns() {
        let e = err_of("user,pass,user\na,b,c\n");
        assert!(
            e.contains("line 1: column \"user\" appears twice in the header"),
            "{e}"
        );
    }

    #[test]
    fn invalid_utf8() {
        let mut feeds = Feeds::default();
        let e = feeds
            .add_csv(
                "f",
                "f.csv",
                "f.csv",
                FeedMode::Sequential,
                &b"a\n\xff\xfe\n"[..],
            )
            .unwrap_err();
        assert!(e.message.contains("line 2: not valid UTF-8"), "{e}");
    }

    #[test]
    fn missing_file_shows_resolved_path() {
        let mut map = BTreeMap::new();
        map.insert(
            "accounts".to_string(),
            DataFeed {
                csv: "no-such-dir/accounts.csv".into(),
                mode: FeedMode::Sequential,
            },
        );
        let base = Path::new("/nonexistent-base");
        let e = Feeds::load(&map, base).unwrap_err();
        let resolved = base.join("no-such-dir/accounts.csv");
        assert!(
            e.message
                .contains(&format!("cannot open CSV file {}", resolved.display())),
            "{e}"
        );
        assert!(e.message.contains("relative to the scenario file"), "{e}");
    }

    #[test]
    fn load_from_disk_in_name_order() {
        let dir = std::env::temp_dir().join(format!("mynah-feed-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.csv"), "x\n1\n2\n").unwrap();
        std::fs::write(dir.join("a.csv"), "\u{feff}y,z\n3,4\n").unwrap();
        let mut map = BTreeMap::new();
        for (name, file, mode) in [
            ("bee", "b.csv", FeedMode::Unique),
            ("ay", "a.csv", FeedMode::Random),
        ] {
            map.insert(
                name.to_string(),
                DataFeed {
                    csv: file.into(),
                    mode,
                },
            );
        }
        let feeds = Feeds::load(&map, &dir).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(feeds.names().collect::<Vec<_>>(), ["ay", "bee"]);
        // The UTF-8 byte order mark is not part of the first column name.
        assert_eq!(feeds.column(0, "y"), Ok(0));
        assert!(feeds.is_unique(1));
        assert_eq!(feeds.value(1, 1, 0), "2");
    }

    #[test]
    fn sequential_wraps() {
        let feeds = feeds_from("a\n1\n2\n3\n", FeedMode::Sequential).unwrap();
        let mut rng = fastrand::Rng::with_seed(1);
        let got: Vec<RowId> = (0..7)
            .map(|_| feeds.next_row(0, &mut rng).unwrap())
            .collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn random_stays_in_range_and_covers_rows() {
        let feeds = feeds_from("a\n1\n2\n3\n", FeedMode::Random).unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let r = feeds.next_row(0, &mut rng).unwrap();
            assert!(r < 3);
            seen.insert(r);
        }
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn unique_exhausts_with_message() {
        let feeds = feeds_from("a\n1\n2\n3\n", FeedMode::Unique).unwrap();
        assert!(feeds.is_unique(0));
        let mut rng = fastrand::Rng::with_seed(1);
        for want in 0..3 {
            assert_eq!(feeds.next_row(0, &mut rng), Ok(want));
        }
        let e = feeds.next_row(0, &mut rng).unwrap_err();
        assert_eq!(
            e.message,
            "data feed \"accounts\" (accounts.csv) ran out: mode unique gives each of its 3 rows \
             to one user only; add rows or use mode sequential"
        );
        // Still failing afterwards.
        assert!(feeds.next_row(0, &mut rng).is_err());

        let one = feeds_from("a\n1\n", FeedMode::Unique).unwrap();
        one.next_row(0, &mut rng).unwrap();
        let e = one.next_row(0, &mut rng).unwrap_err();
        assert!(
            e.message.contains("gives its 1 row to one user only"),
            "{e}"
        );
    }

    #[test]
    fn unique_concurrent_callers_get_each_row_once() {
        let mut text = String::from("id\n");
        for i in 0..1000 {
            text.push_str(&format!("{i}\n"));
        }
        let feeds = Arc::new(feeds_from(&text, FeedMode::Unique).unwrap());
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let feeds = Arc::clone(&feeds);
                std::thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(t);
                    let mut got = Vec::new();
                    let mut failures = 0;
                    for _ in 0..200 {
                        match feeds.next_row(0, &mut rng) {
                            Ok(r) => got.push(r),
                            Err(_) => failures += 1,
                        }
                    }
                    (got, failures)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut failures = 0;
        for h in handles {
            let (got, f) = h.join().unwrap();
            all.extend(got);
            failures += f;
        }
        assert_eq!(failures, 8 * 200 - 1000);
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<RowId>>());
    }

    #[test]
    fn bad_index_is_an_error_not_a_panic() {
        let feeds = Feeds::default();
        assert!(feeds.is_empty());
        let mut rng = fastrand::Rng::with_seed(1);
        assert!(feeds.next_row(0, &mut rng).is_err());
        assert_eq!(feeds.columns(0).count(), 0);
        assert_eq!(feeds.rows(0), 0);
        assert_eq!(feeds.name(0), "");
    }
}
