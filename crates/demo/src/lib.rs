//! The demo that `mynah demo` runs: a small shop to test ([`shop`]) and the "production" traffic
//! that real visitors would send it ([`production`]), so that the whole loop (record, synth,
//! run, replay, compare) can be seen in one command with nothing else installed or running.

pub mod shop;

/// The built-in production workload: a mynah scenario and the data files it reads.
pub mod production {
    use std::io;
    use std::path::{Path, PathBuf};

    /// The scenario (YAML). Its `host` is a placeholder: run it with `--host`.
    pub const SCENARIO: &str = include_str!("production.yaml");

    /// Search terms, some of them slow (see [`crate::shop::SLOW_TERMS`]).
    const TERMS: &[&str] = &[
        "shirt", "table", "tea", "scarf", "lamp", "boots", "mug", "notebook", "oak", "wool",
        "linen", "sale", "gift", "desk", "travel", "vintage", "rain", "cup", "chair", "blue",
    ];

    /// Writes the scenario and its data files into `dir` and returns the scenario's path.
    pub fn write(dir: &Path) -> io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let scenario = dir.join("production.yaml");
        std::fs::write(&scenario, SCENARIO)?;
        let mut shoppers = String::from("user\n");
        for i in 1..=crate::shop::USERS {
            shoppers.push_str(&format!("user{i}\n"));
        }
        std::fs::write(dir.join("shoppers.csv"), shoppers)?;
        let mut terms = String::from("term\n");
        for t in TERMS {
            terms.push_str(t);
            terms.push('\n');
        }
        std::fs::write(dir.join("terms.csv"), terms)?;
        Ok(scenario)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_slow_terms_are_searched_for() {
            for t in crate::shop::SLOW_TERMS {
                assert!(super::TERMS.contains(t), "{t}");
            }
        }
    }
}
