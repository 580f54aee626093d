//! `warden scan`: findings (and the injection verdict) for one text or a JSON Lines corpus.

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde_json::{json, Map, Value};
use warden_core::Scanner;
use warden_injection::{Detector, Source, Verdict};

use crate::input::{self, char_offsets, EngineArgs};

/// Arguments of `warden scan`.
#[derive(clap::Args)]
pub struct Args {
    /// Input file (`-` or nothing: stdin).
    pub file: Option<PathBuf>,
    /// Read JSON Lines `{"id","text","source"?}` and write one `{"id","entities","injection"}` per line,
    /// in input order, using all cores, in constant memory.
    #[arg(long)]
    pub jsonl: bool,
    /// Where the text comes from, for the injection thresholds: user, system, tool or document.
    #[arg(long, default_value = "user")]
    pub source: Source,
    /// Skip the injection detector (entities only).
    #[arg(long)]
    pub no_injection: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

struct Engines {
    scanner: Scanner,
    detector: Option<Detector>,
}

/// Exit 0 when nothing was found, 1 when entities were found or the injection verdict is not `allow`.
pub fn run(args: Args) -> Result<ExitCode> {
    let cfg = args.engine.file_config()?;
    let engines = Engines {
        scanner: args.engine.scanner(&cfg)?,
        detector: if args.no_injection {
            None
        } else {
            Some(args.engine.detector(&cfg)?)
        },
    };
    if args.jsonl {
        return scan_jsonl(&engines, &args);
    }
    let text = input::read_text(args.file.as_deref())?;
    let (out, hit) = scan_one(&engines, &text, args.source);
    let stdout = io::stdout();
    let mut w = stdout.lock();
    serde_json::to_writer(&mut w, &out)?;
    writeln!(w)?;
    Ok(if hit {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Scans one text into the output object; the bool says whether anything was found.
fn scan_one(engines: &Engines, text: &str, source: Source) -> (Map<String, Value>, bool) {
    let findings = engines.scanner.scan(text);
    let mut offsets = Vec::with_capacity(findings.len() * 2);
    for f in &findings {
        offsets.push(f.start);
        offsets.push(f.end);
    }
    let chars = char_offsets(text, &offsets);
    let entities: Vec<Value> = findings
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({
                "type": f.entity(),
                "start": chars[2 * i],
                "end": chars[2 * i + 1],
                "start_byte": f.start,
                "end_byte": f.end,
                "score": round3(f.score),
                "rule": f.rule(),
                "obfuscated": f.obfuscated,
                "evidence": f.evidence,
            })
        })
        .collect();
    let mut hit = !entities.is_empty();
    let mut out = Map::new();
    out.insert("entities".into(), Value::Array(entities));
    if let Some(detector) = &engines.detector {
        let r = detector.check(text, source);
        hit |= r.verdict != Verdict::Allow;
        let mut offs = Vec::with_capacity(r.evidence.len() * 2);
        for e in &r.evidence {
            offs.push(e.start);
            offs.push(e.end);
        }
        let chars = char_offsets(text, &offs);
        let evidence: Vec<Value> = r
            .evidence
            .iter()
            .enumerate()
            .map(|(i, e)| {
                json!({
                    "rule": &*e.rule,
                    "layer": &*e.layer,
                    "start": chars[2 * i],
                    "end": chars[2 * i + 1],
                    "start_byte": e.start,
                    "end_byte": e.end,
                })
            })
            .collect();
        out.insert(
            "injection".into(),
            json!({"score": round3(r.score), "verdict": r.verdict, "evidence": evidence}),
        );
    }
    (out, hit)
}

fn round3(x: f32) -> f64 {
    (f64::from(x) * 1000.0).round() / 1000.0
}

/// Lines are processed in bounded batches: read a batch, scan it on all cores, write it in order.
/// Memory stays proportional to the batch, whatever the input size.
const BATCH_LINES: usize = 2048;
const BATCH_BYTES: usize = 8 << 20;

fn scan_jsonl(engines: &Engines, args: &Args) -> Result<ExitCode> {
    let reader: Box<dyn BufRead> = match args.file.as_deref() {
        None => Box::new(BufReader::with_capacity(1 << 20, io::stdin())),
        Some(p) if p == std::path::Path::new("-") => {
            Box::new(BufReader::with_capacity(1 << 20, io::stdin()))
        }
        Some(p) => Box::new(BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(p).with_context(|| format!("{}: cannot open", p.display()))?,
        )),
    };
    let name = input::display(args.file.as_deref());
    let stdout = io::stdout();
    let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut lines = reader.split(b'\n');
    let mut line_no = 0usize;
    let (mut any_hit, mut any_error) = (false, false);
    let mut batch: Vec<(usize, Vec<u8>)> = Vec::with_capacity(BATCH_LINES);
    loop {
        batch.clear();
        let mut bytes = 0;
        while batch.len() < BATCH_LINES && bytes < BATCH_BYTES {
            match lines.next() {
                Some(line) => {
                    line_no += 1;
                    let line =
                        line.with_context(|| format!("{name}: read error at line {line_no}"))?;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    bytes += line.len();
                    batch.push((line_no, line));
                }
                None => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        let results: Vec<(Vec<u8>, bool, Option<String>)> = batch
            .par_iter()
            .map(|(no, line)| scan_line(engines, args.source, *no, line))
            .collect();
        for (out, hit, err) in results {
            any_hit |= hit;
            if let Some(err) = err {
                any_error = true;
                // Not `eprintln!`: it panics when stderr is a closed pipe.
                let _ = writeln!(io::stderr(), "warden: {name}:{err}");
            }
            w.write_all(&out)?;
            w.write_all(b"\n")?;
        }
    }
    w.flush()?;
    Ok(if any_error {
        ExitCode::from(2)
    } else if any_hit {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One input line to one output line. A bad line yields `{"line":N,"error":...}` (never its text)
/// so the output stays aligned with the input.
fn scan_line(
    engines: &Engines,
    default_source: Source,
    no: usize,
    line: &[u8],
) -> (Vec<u8>, bool, Option<String>) {
    let fail = |msg: String| {
        let out = serde_json::to_vec(&json!({"line": no, "error": msg})).unwrap_or_default();
        (out, false, Some(format!("{no}: {msg}")))
    };
    let rec: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return fail(format!("invalid JSON at column {}", e.column())),
    };
    let Some(text) = rec.get("text").and_then(Value::as_str) else {
        return fail("missing string field \"text\"".into());
    };
    let source = match rec.get("source").and_then(Value::as_str) {
        None => default_source,
        Some(s) => match s.parse() {
            Ok(s) => s,
            Err(_) => {
                return fail("unknown \"source\" (expected user, system, tool or document)".into())
            }
        },
    };
    let (body, hit) = scan_one(engines, text, source);
    let mut out = Map::new();
    out.insert("id".into(), rec.get("id").cloned().unwrap_or(Value::Null));
    out.extend(body);
    (serde_json::to_vec(&out).unwrap_or_default(), hit, None)
}
