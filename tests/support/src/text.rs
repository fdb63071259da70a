//! Comparing a document's excerpt with what a command prints now, once the
//! fields that differ from run to run are masked. Used by the checks that
//! keep docs/GUIDE.md from drifting away from the code.

/// One line with its volatile fields masked: every number, decimal or hex
/// (pids, fds, inodes, tokens, times), becomes `N`; a duration like `N.Nms`
/// becomes `DUR`; runs of whitespace become one space.
pub fn mask(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        let hex = token.chars().all(|c| c.is_ascii_hexdigit());
        // An inode in hex (`ino:fbaed`) may have no decimal digit at all.
        let inode = out.ends_with("ino:") && !token.is_empty();
        if hex && (inode || token.chars().any(|c| c.is_ascii_digit())) {
            out.push('N'); // a number, decimal or hex: 1038, 40e, 400000004
        } else {
            // Digits inside a word (413765ms, go1): each run becomes N.
            let mut in_digits = false;
            for c in token.chars() {
                if c.is_ascii_digit() {
                    if !in_digits {
                        out.push('N');
                    }
                    in_digits = true;
                } else {
                    in_digits = false;
                    out.push(c);
                }
            }
        }
        token.clear();
    };
    for c in line.chars() {
        if c.is_alphanumeric() {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    let mut words: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    for w in &mut words {
        // N.Nms, Nms, N.Ns, Nµs ... : a duration, whatever its unit, maybe
        // followed by punctuation (`1s,`).
        let core = w.trim_end_matches(|c: char| c.is_ascii_punctuation() && c != '.');
        let tail = w[core.len()..].to_string();
        let unitless = core.trim_end_matches(|c: char| c.is_lowercase()); // ns, µs, ms, s
        let number = !unitless.is_empty() && unitless.chars().all(|c| c == 'N' || c == '.');
        if number && unitless.len() < core.len() {
            *w = format!("DUR{tail}");
        }
    }
    words.join(" ")
}

/// Whether an excerpt matches a command's output, compared as sorted lists
/// of masked lines (the kernel lists some things, such as epoll watches, in
/// no fixed order). In the excerpt, a line ending in `...` stands for every
/// output line that starts with what precedes it, and a line that is only
/// `...` for any lines at all.
pub fn matches(guide_excerpt: &str, output: &str) -> Result<(), String> {
    let mut got: Vec<String> = output.lines().map(mask).filter(|l| !l.is_empty()).collect();
    let mut any_lines = false;
    let mut wanted = Vec::new();
    for line in guide_excerpt.lines().map(mask).filter(|l| !l.is_empty()) {
        if line == "..." {
            any_lines = true;
        } else if let Some(prefix) = line.strip_suffix("...") {
            let prefix = prefix.trim_end().to_string();
            let before = got.len();
            got.retain(|g| !g.starts_with(&prefix));
            if got.len() == before {
                return Err(format!("no line starts with {prefix:?}"));
            }
        } else {
            wanted.push(line);
        }
    }
    wanted.sort();
    got.sort();
    // Every wanted line once per occurrence; nothing else unless `...`.
    let mut rest = got.clone();
    let mut missing = Vec::new();
    for w in &wanted {
        match rest.iter().position(|g| g == w) {
            Some(i) => {
                rest.remove(i);
            }
            None => missing.push(w.clone()),
        }
    }
    if missing.is_empty() && (rest.is_empty() || any_lines) {
        Ok(())
    } else {
        Err(format!(
            "in the guide but not printed: {missing:#?}\nprinted but not in the guide: {rest:#?}"
        ))
    }
}

/// Masked lines, with a block of one to three lines that repeats the block
/// right before it dropped: a heartbeat traced twice or three times, as the
/// run's timing decides, reads the same.
pub fn masked_collapsed(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines().map(mask).filter(|l| !l.is_empty()) {
        lines.push(line);
        for period in 1..=3 {
            let n = lines.len();
            if n >= 2 * period && lines[n - period..] == lines[n - 2 * period..n - period] {
                lines.truncate(n - period);
                break;
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_hex_and_durations_are_masked() {
        assert_eq!(mask("tfd:   13 events:  2019 data: 40e"), "tfd: N events: N data: N");
        assert_eq!(mask("remaining 389.413765ms, every 1s"), "remaining DUR, every DUR");
        assert_eq!(mask("in 0.9s in all"), "in DUR in all");
        assert_eq!(mask("process 23977 (demo-server)"), "process N (demo-server)");
        // A hex inode with no decimal digit, and a word that only looks hex.
        assert_eq!(mask("pos:0 ino:fbaed sdev:9"), "pos:N ino:N sdev:N");
        assert_eq!(mask("a faded bead"), "a faded bead");
    }

    #[test]
    fn excerpts_match_in_any_order_with_ellipses() {
        assert!(matches("a 1\nb 2", "b 7\na 9").is_ok());
        assert!(matches("a 1", "a 1\nb 2").is_err(), "an extra line without `...`");
        assert!(matches("a 1\n...", "a 1\nb 2").is_ok());
        assert!(matches("legend: ...", "legend: one\nlegend: two").is_ok());
        assert!(matches("a 1\na 1", "a 1").is_err(), "counts matter");
    }

    #[test]
    fn repeated_blocks_collapse() {
        let got = masked_collapsed("x\nread 1\nsend 1\nread 2\nsend 2\ny");
        assert_eq!(got, ["x", "read N", "send N", "y"]);
    }
}
