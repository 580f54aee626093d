//! Shared plumbing of the subcommands: reading input, loading config and engines,
//! converting byte spans to code point offsets.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use warden_core::{ScanConfig, Scanner};
use warden_injection::{Detector, DetectorConfig};

/// The CLI config file: a `[scan]` table (warden_core::ScanConfig) and an `[injection]` table (warden_injection::DetectorConfig).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileConfig {
    /// Detection and redaction settings.
    pub scan: ScanConfig,
    /// Injection thresholds per source.
    pub injection: DetectorConfig,
}

/// Options every scanning subcommand shares.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EngineArgs {
    /// Load pattern packs from this directory instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub packs: Option<PathBuf>,
    /// Config file (TOML): `[scan]` (min_score, allow/deny lists, redaction strategies) and `[injection]` (per-source thresholds).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl EngineArgs {
    /// Reads and validates the config file, if any.
    pub fn file_config(&self) -> Result<FileConfig> {
        let Some(path) = &self.config else {
            return Ok(FileConfig::default());
        };
        let src = fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read config", path.display()))?;
        toml::from_str(&src).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
    }

    /// Builds the PII/secret scanner.
    pub fn scanner(&self, cfg: &FileConfig) -> Result<Scanner> {
        let mut b = Scanner::builder().config(cfg.scan.clone());
        b = match &self.packs {
            Some(dir) => b.packs_dir(dir)?,
            None => b.builtin_packs(),
        };
        Ok(b.build()?)
    }

    /// Builds the injection detector (its rules come from `DIR/injection` when `--packs` is given).
    pub fn detector(&self, cfg: &FileConfig) -> Result<Detector> {
        let d = match &self.packs {
            Some(dir) if dir.join("injection").is_dir() => {
                Detector::from_dir(&dir.join("injection"))?
            }
            _ => Detector::builtin()?,
        };
        Ok(d.with_config(cfg.injection.clone()))
    }
}

/// Reads a whole input (`-` or no path: stdin) as UTF-8; invalid UTF-8 is an error naming the byte offset.
pub fn read_text(path: Option<&Path>) -> Result<String> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        anyhow::anyhow!("{}: invalid UTF-8 at byte {at}", display(path))
    })
}

/// Reads a whole input as bytes.
pub fn read_bytes(path: Option<&Path>) -> Result<Vec<u8>> {
    match path {
        None => read_stdin(),
        Some(p) if p == Path::new("-") => read_stdin(),
        Some(p) => fs::read(p).with_context(|| format!("{}: cannot read", p.display())),
    }
}

fn read_stdin() -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    io::stdin()
        .read_to_end(&mut buf)
        .context("stdin: cannot read")?;
    Ok(buf)
}

/// How a path is named in messages.
pub fn display(path: Option<&Path>) -> String {
    match path {
        None => "stdin".to_string(),
        Some(p) if p == Path::new("-") => "stdin".to_string(),
        Some(p) => p.display().to_string(),
    }
}

/// Converts sorted-or-not byte offsets to code point offsets in one pass over the text.
///
/// `offsets` are byte offsets on char boundaries (others are floored to one);
/// the result has the same order.
pub fn char_offsets(text: &str, offsets: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..offsets.len()).collect();
    order.sort_unstable_by_key(|&i| offsets[i]);
    let mut cp = warden_core::CodePoints::new(text);
    let mut out = vec![0; offsets.len()];
    for i in order {
        let mut at = offsets[i].min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        out[i] = cp.at(at).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::char_offsets;

    #[test]
    fn char_offsets_count_code_points() {
        let t = "é👍a";
        assert_eq!(char_offsets(t, &[0, 2, 6, 7]), vec![0, 1, 2, 3]);
        assert_eq!(char_offsets(t, &[7, 0]), vec![3, 0]);
    }
}
