//! The chain verifies when intact and names the first broken line for every kind of
//! tampering: edit, deletion, reordering, duplication, garbage.

use std::sync::Arc;

use serde_json::json;
use warden_audit::{verify, AuditError, AuditLog, BrokenReason, Fsync, GENESIS};

fn write_log(n: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, Fsync::Never).expect("open");
    for i in 0..n {
        log.append(&json!({"event": "tool_call", "i": i, "verdict": "allow"}))
            .expect("append");
    }
    (dir, path)
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_string)
        .collect()
}

fn rewrite(path: &std::path::Path, lines: &[String]) {
    let mut s = lines.join("\n");
    s.push('\n');
    std::fs::write(path, s).expect("write");
}

#[test]
fn intact_log_verifies() {
    let (_d, path) = write_log(5);
    let r = verify(&path).expect("verify");
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.records, 5);
    assert_ne!(r.head, GENESIS);
}

#[test]
fn empty_log_verifies() {
    let (_d, path) = write_log(0);
    let r = verify(&path).expect("verify");
    assert!(r.is_ok());
    assert_eq!(r.records, 0);
    assert_eq!(r.head, GENESIS);
}

#[test]
fn first_record_links_to_genesis() {
    let (_d, path) = write_log(1);
    let first: serde_json::Value = serde_json::from_str(&lines(&path)[0]).expect("json");
    assert_eq!(first["prev"], GENESIS);
    assert_eq!(first["seq"], 0);
}

#[test]
fn edited_record_is_named() {
    let (_d, path) = write_log(5);
    let mut l = lines(&path);
    l[2] = l[2].replace("\"allow\"", "\"deny\"");
    rewrite(&path, &l);
    let r = verify(&path).expect("verify");
    let b = r.broken.expect("broken");
    assert_eq!(b.line, 3);
    assert_eq!(b.reason, BrokenReason::HashMismatch);
    assert_eq!(r.records, 2);
}

#[test]
fn recomputed_hash_still_breaks_the_chain() {
    // An attacker who edits a record and recomputes its own hash breaks the next link.
    let (_d, path) = write_log(4);
    let mut l = lines(&path);
    let edited = l[1].replace("\"allow\"", "\"deny\"");
    let cut = edited.rfind(",\"hash\":\"").expect("marker");
    let v: serde_json::Value = serde_json::from_str(&edited).expect("json");
    let prev = v["prev"].as_str().expect("prev");
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(&edited.as_bytes()[..cut]);
    h.update(b"}");
    l[1] = format!(
        "{},\"hash\":\"{}\"}}",
        &edited[..cut],
        hex::encode(h.finalize())
    );
    rewrite(&path, &l);
    let b = verify(&path).expect("verify").broken.expect("broken");
    assert_eq!(b.line, 3);
    assert_eq!(b.reason, BrokenReason::ChainMismatch);
}

#[test]
fn deleted_record_is_named() {
    let (_d, path) = write_log(5);
    let mut l = lines(&path);
    l.remove(1);
    rewrite(&path, &l);
    let b = verify(&path).expect("verify").broken.expect("broken");
    assert_eq!(b.line, 2);
    assert_eq!(
        b.reason,
        BrokenReason::Deletion {
            expected: 1,
            found: 2
        }
    );
}

#[test]
fn reordered_records_are_named() {
    let (_d, path) = write_log(5);
    let mut l = lines(&path);
    l.swap(1, 3);
    rewrite(&path, &l);
    let b = verify(&path).expect("verify").broken.expect("broken");
    assert_eq!(b.line, 2);
    assert_eq!(
        b.reason,
        BrokenReason::Deletion {
            expected: 1,
            found: 3
        }
    );

    let (_d2, path2) = write_log(5);
    let mut l = lines(&path2);
    let dup = l[1].clone();
    l.insert(2, dup);
    rewrite(&path2, &l);
    let b = verify(&path2).expect("verify").broken.expect("broken");
    assert_eq!(b.line, 3);
    assert_eq!(
        b.reason,
        BrokenReason::Reordering {
            expected: 2,
            found: 1
        }
    );
}

#[test]
fn garbage_line_is_named() {
    let (_d, path) = write_log(3);
    let mut l = lines(&path);
    l.insert(1, "{not json".into());
    rewrite(&path, &l);
    let b = verify(&path).expect("verify").broken.expect("broken");
    assert_eq!(b.line, 2);
    assert_eq!(b.reason, BrokenReason::BadJson);
}

#[test]
fn reopen_continues_the_chain() {
    let (_d, path) = write_log(3);
    {
        let log = AuditLog::open(&path, Fsync::Always).expect("reopen");
        let r = log.append(&json!({"after": "reopen"})).expect("append");
        assert_eq!(r.seq, 3);
    }
    let r = verify(&path).expect("verify");
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.records, 4);
}

#[test]
fn torn_last_line_refuses_to_continue() {
    let (_d, path) = write_log(2);
    let mut s = std::fs::read_to_string(&path).expect("read");
    s.push_str("{\"seq\":2,\"ts\":\"x\"");
    std::fs::write(&path, s).expect("write");
    match AuditLog::open(&path, Fsync::Never) {
        Err(AuditError::Corrupt { line, .. }) => assert_eq!(line, 3),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let b = verify(&path).expect("verify").broken.expect("broken");
    assert_eq!(b.line, 3);
}

#[test]
fn corrupt_last_line_is_named_by_number() {
    let (_d, path) = write_log(4);
    let mut s = std::fs::read_to_string(&path).expect("read");
    s.push_str("not a record\n");
    std::fs::write(&path, s).expect("write");
    match AuditLog::open(&path, Fsync::Never) {
        Err(AuditError::Corrupt { line, .. }) => assert_eq!(line, 5),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn concurrent_appends_form_one_chain() {
    let (_d, path) = write_log(0);
    let log = Arc::new(AuditLog::open(&path, Fsync::Never).expect("open"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..200 {
                    log.append(&json!({"t": t, "i": i})).expect("append");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("join");
    }
    drop(log);
    let r = verify(&path).expect("verify");
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.records, 1600);
}
