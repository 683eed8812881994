//! The short fuzzing pass of the test command, on the stable toolchain: every committed seed
//! (`fuzz/corpus/<target>/`), every input a long libFuzzer run found new coverage with
//! (`fuzz/found/<target>/`, merged and minimized) and every crash regression
//! (`fuzz/regressions/<target>/`) goes through its target function, the very one libFuzzer
//! drives. A target without seeds, or a
//! directory naming no target, fails the test.

use std::path::{Path, PathBuf};

use switchyard_fuzz_targets::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files directly under `dir`, sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn replay(kind: &str) -> usize {
    let mut total = 0;
    for (name, target) in TARGETS {
        for file in files(&fuzz_dir().join(kind).join(name)) {
            let data = std::fs::read(&file).expect("read a corpus file");
            let run = std::panic::catch_unwind(|| target(&data));
            assert!(run.is_ok(), "{name} panics on {}", file.display());
            total += 1;
        }
    }
    total
}

#[test]
fn every_target_has_seeds_and_every_directory_a_target() {
    for kind in ["corpus", "found", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz/{kind}/{name} names no target"
            );
        }
    }
    for (name, _) in TARGETS {
        assert!(
            !files(&fuzz_dir().join("corpus").join(name)).is_empty(),
            "fuzz/corpus/{name} has no seed"
        );
    }
}

#[test]
fn seed_corpora_replay_without_a_failure() {
    assert!(replay("corpus") > 0);
}

#[test]
fn found_corpora_replay_without_a_failure() {
    replay("found");
}

#[test]
fn crash_regressions_replay_without_a_failure() {
    replay("regressions");
}
