//! Replays every fuzz corpus and crash-regression file through its fuzz entry point.
//!
//! `cargo test` thereby covers what the fuzzers found, without needing cargo-fuzz or
//! nightly. A target whose corpus folder is missing or empty fails the test: a silently
//! empty corpus would make this test pass while checking nothing.

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_fuzz_target() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for (target, run) in kpbt_proto::fuzzing::TARGETS {
        let mut replayed = 0;
        for folder in ["corpus", "regressions"] {
            let dir = fuzz_dir.join(folder).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("readable corpus dir").path();
                if path.is_file() {
                    let data = std::fs::read(&path).expect("readable corpus file");
                    let result = std::panic::catch_unwind(|| run(&data));
                    assert!(
                        result.is_ok(),
                        "{target}: {} broke an invariant",
                        path.display()
                    );
                    replayed += 1;
                }
            }
        }
        assert!(
            replayed > 0,
            "no corpus files for fuzz target {target} under {}",
            fuzz_dir.display()
        );
        eprintln!("{target}: replayed {replayed} inputs");
    }
}
