//! Every corpus file parses to exactly what its `.expected.json` says.

mod support;

use std::collections::HashMap;

use respsync::rdb::{Checksum, Magic, ParserConfig, RdbError};
use serde_json::Value as J;
use support::corpus::*;

fn check_file(path: &std::path::Path) -> Result<(), String> {
    let data = std::fs::read(path).unwrap();
    let exp = expected(path);
    let (mut events, mut err) = parse_whole(&data);
    let version = exp["rdb_version"].as_u64().unwrap_or(0);
    let magic = if exp["magic"] == "VALKEY" {
        Magic::Valkey
    } else {
        Magic::Redis
    };
    if version > u64::from(magic.newest_version()) {
        // Newer than known: refused by default, parsed with the "try anyway" switch.
        match err {
            Some(RdbError::UnsupportedVersion { version: v, .. }) if u64::from(v) == version => {}
            other => return Err(format!("expected UnsupportedVersion, got {other:?}")),
        }
        let mut config = ParserConfig::default();
        config.allow_newer_versions(true);
        (events, err) = parse_chunked(&data, &[usize::MAX], &config);
    }
    let decoder = exp["decoder"].as_str().unwrap_or("");
    if decoder != "ok" {
        return match err {
            Some(RdbError::ModulePreGa { .. }) if decoder.contains("type 6") => Ok(()),
            Some(RdbError::Container { .. }) if decoder.contains("ziplist") => Ok(()),
            other => Err(format!("expected failure `{decoder}`, got {other:?}")),
        };
    }
    let status = exp["checksum"]["status"].as_str().unwrap();
    if status == "MISMATCH" {
        return match err {
            Some(RdbError::ChecksumMismatch { stored, .. })
                if format!("{stored:016x}") == exp["checksum"]["stored"].as_str().unwrap() =>
            {
                Ok(())
            }
            other => Err(format!("expected checksum mismatch, got {other:?}")),
        };
    }
    if let Some(e) = err {
        return Err(format!("parse error: {e}"));
    }
    let got = events_to_json(&events);
    let checksum_ok = matches!(
        (status, got.checksum),
        ("ok", Some(Checksum::Verified(_)))
            | ("disabled(0)", Some(Checksum::Disabled))
            | ("absent(version<5)", Some(Checksum::Absent))
    );
    if !checksum_ok {
        return Err(format!("checksum {status} vs {:?}", got.checksum));
    }
    // AUX fields in order (long values are elided with "..." in the expected file).
    let want_aux = exp["aux"].as_array().cloned().unwrap_or_default();
    if want_aux.len() != got.aux.len() {
        return Err(format!("aux count {} vs {}", want_aux.len(), got.aux.len()));
    }
    for (w, (name, value)) in want_aux.iter().zip(&got.aux) {
        let wv = &w[1];
        let elided = wv.as_str().is_some_and(|s| s.ends_with("..."));
        let name_ok = &w[0] == name || w[0].as_str().is_some_and(|s| s.starts_with('('));
        let value_ok = elided || wv == value;
        if !name_ok || !value_ok {
            return Err(format!("aux {w} vs [{name}, {value}]"));
        }
    }
    let want_fn = exp["functions"].as_array().cloned().unwrap_or_default();
    if want_fn != got.functions {
        return Err(format!("functions {want_fn:?} vs {:?}", got.functions));
    }
    let want_slots = exp["slot_info"].as_array().cloned().unwrap_or_default();
    if want_slots != got.slot_info {
        return Err(format!("slot_info {want_slots:?} vs {:?}", got.slot_info));
    }
    let want_maux = exp["module_aux"].as_array().cloned().unwrap_or_default();
    if want_maux.len() != got.module_aux.len() {
        return Err("module_aux count".into());
    }
    for (w, g) in want_maux.iter().zip(&got.module_aux) {
        for f in ["module", "encver", "when", "items"] {
            if w[f] != g[f] {
                return Err(format!("module_aux {w} vs {g}"));
            }
        }
    }
    if exp["key_count"].as_u64() != Some(got.keys.len() as u64) {
        return Err(format!(
            "key_count {} vs {}",
            exp["key_count"],
            got.keys.len()
        ));
    }
    // Keys per db; the corpus names the n-th duplicate record of a db `key#dup<n>`.
    let mut by_db: HashMap<u64, HashMap<String, &KeyJson>> = HashMap::new();
    let mut counts: HashMap<u64, u64> = HashMap::new();
    let mut dups: HashMap<u64, u64> = HashMap::new();
    for k in &got.keys {
        let keys = by_db.entry(k.db).or_default();
        let mut name = jkey(&k.key);
        if keys.contains_key(&name) {
            let n = dups.entry(k.db).or_default();
            *n += 1;
            name = format!("{name}#dup{n}");
        }
        keys.insert(name, k);
        *counts.entry(k.db).or_default() += 1;
    }
    let dbs = exp["databases"].as_object().cloned().unwrap_or_default();
    for (db, d) in &dbs {
        let db: u64 = db.parse().unwrap();
        if d["key_count"].as_u64() != Some(counts.get(&db).copied().unwrap_or(0)) {
            return Err(format!(
                "db {db} key_count {} vs {:?}",
                d["key_count"],
                counts.get(&db)
            ));
        }
        let empty = HashMap::new();
        let mine = by_db.get(&db).unwrap_or(&empty);
        for (key, want) in d["keys"].as_object().unwrap() {
            let got = mine
                .get(key)
                .ok_or(format!("key {key} missing in db {db}"))?;
            for f in ["type", "rdb_type", "expire_ms", "idle_s", "lfu_freq"] {
                let w = want.get(f).cloned().unwrap_or(J::Null);
                let g = got.obj.get(f).cloned().unwrap_or(J::Null);
                if w != g {
                    return Err(format!("key {key}: {f} {w} vs {g}"));
                }
            }
            value_matches(want, &got.obj["value"]).map_err(|e| format!("key {key}: {e}"))?;
        }
    }
    Ok(())
}

#[test]
fn corpus_matches_expected() {
    let mut failures = Vec::new();
    let files = corpus_files();
    for path in &files {
        if let Err(e) = check_file(path) {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files differ:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
