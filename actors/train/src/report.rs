//! What a training child prints, and how the runner reads it back.
//!
//! The summary block uses the reference train.py's keys (`val_bpb:`, `num_steps:`, …) and the
//! runner parses output with the reference's rules (§g.6, `vectors/parsing.json`), so either side
//! can read the other's logs. Progress lines are ours: `progress step=… planned=… loss=… tok_s=…
//! elapsed=… budget=…`.

use crate::train::{Outcome, Progress};

/// Metrics parsed from a run's output, as the reference does it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    pub val_bpb: f64,
    pub peak_vram_mb: f64,
    pub num_steps: u64,
    pub num_params: u64,
}

impl Parsed {
    /// Success as the reference decides it: exit code 0 and a positive val_bpb.
    pub fn success(&self, exit_ok: bool) -> bool {
        exit_ok && self.val_bpb > 0.0
    }
}

/// Record status as the reference decides it (§g.3 step 7).
pub fn decide(
    success: bool,
    error: &str,
    val_bpb: f64,
    parent_val_bpb: Option<f64>,
) -> &'static str {
    if success {
        match parent_val_bpb {
            Some(p) if val_bpb >= p => "discard",
            _ => "keep",
        }
    } else if error.is_empty() {
        "discard"
    } else {
        "crash"
    }
}

pub fn progress_line(p: &Progress) -> String {
    format!(
        "progress step={} planned={} loss={:.4} tok_s={:.0} elapsed={:.1} budget={:.1}",
        p.step,
        p.planned.map_or(0, |n| n),
        p.loss,
        p.tokens_per_s,
        p.elapsed.as_secs_f64(),
        p.budget.as_secs_f64()
    )
}

/// A stage of a run's start, as the child prints it: `preparing stage=2 of=4 gpu=1 budget=300.0
/// elapsed=1.2 what=building the model` (`what` last: it holds spaces). `elapsed` counts from the
/// child's start; `gpu=1` when the stage compiles GPU kernels.
pub fn stage_line(stage: &StageLine) -> String {
    format!(
        "preparing stage={} of={} gpu={} budget={:.1} elapsed={:.1} what={}",
        stage.stage,
        stage.of,
        u8::from(stage.gpu),
        stage.budget,
        stage.elapsed,
        stage.what
    )
}

/// A parsed stage line (see [`stage_line`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageLine {
    /// 1-based.
    pub stage: u64,
    pub of: u64,
    pub gpu: bool,
    pub budget: f64,
    pub elapsed: f64,
    pub what: String,
}

impl StageLine {
    /// How the log, the terminal and the explorer say it: "preparing GPU kernels (2/4: building
    /// the model, 12 s)" on a GPU, "starting (…)" on a CPU (whose kernels are compiled in).
    pub fn describe(&self) -> String {
        format!(
            "{} ({}/{}: {}, {:.0} s)",
            if self.gpu {
                "preparing GPU kernels"
            } else {
                "starting"
            },
            self.stage,
            self.of,
            self.what,
            self.elapsed
        )
    }
}

pub fn parse_stage(line: &str) -> Option<StageLine> {
    let rest = line.strip_prefix("preparing ")?;
    let (fields, what) = rest.split_once(" what=")?;
    let mut s = StageLine {
        what: what
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect(),
        ..StageLine::default()
    };
    for part in fields.split_whitespace() {
        let (k, v) = part.split_once('=')?;
        match k {
            "stage" => s.stage = v.parse().ok()?,
            "of" => s.of = v.parse().ok()?,
            "gpu" => s.gpu = v == "1",
            "budget" => s.budget = v.parse().ok()?,
            "elapsed" => s.elapsed = v.parse().ok()?,
            _ => {}
        }
    }
    Some(s)
}

/// A line of a child's output the runner acts on while it runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Stage(StageLine),
    Progress(ProgressLine),
}

/// The event a line of a child's output tells, if any.
pub fn parse_event(line: &str) -> Option<Event> {
    parse_progress(line)
        .map(Event::Progress)
        .or_else(|| parse_stage(line).map(Event::Stage))
}

/// A parsed progress line.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgressLine {
    pub step: u64,
    pub planned: u64,
    pub loss: f64,
    pub tokens_per_s: f64,
    pub elapsed: f64,
    pub budget: f64,
}

pub fn parse_progress(line: &str) -> Option<ProgressLine> {
    let rest = line.strip_prefix("progress ")?;
    let mut p = ProgressLine {
        step: 0,
        planned: 0,
        loss: 0.0,
        tokens_per_s: 0.0,
        elapsed: 0.0,
        budget: 0.0,
    };
    for part in rest.split_whitespace() {
        let (k, v) = part.split_once('=')?;
        match k {
            "step" => p.step = v.parse().ok()?,
            "planned" => p.planned = v.parse().ok()?,
            "loss" => p.loss = v.parse().ok()?,
            "tok_s" => p.tokens_per_s = v.parse().ok()?,
            "elapsed" => p.elapsed = v.parse().ok()?,
            "budget" => p.budget = v.parse().ok()?,
            _ => {}
        }
    }
    Some(p)
}

/// The summary block, in the reference's format.
pub fn summary(o: &Outcome, total_seconds: f64, peak_mb: f64, depth: usize) -> String {
    format!(
        "---\nval_bpb:          {:.6}\ntraining_seconds: {:.1}\ntotal_seconds:    {:.1}\n\
         peak_vram_mb:     {:.1}\ntotal_tokens_M:   {:.1}\nnum_steps:        {}\n\
         num_params_M:     {:.1}\nnum_parameters:   {}\ndepth:            {}\n\
         tokens_per_second: {:.0}\nfinal_loss:       {:.4}\n",
        o.val_bpb,
        o.train_seconds,
        total_seconds,
        peak_mb,
        o.tokens as f64 / 1e6,
        o.steps,
        o.num_params as f64 / 1e6,
        o.num_params,
        depth,
        o.tokens_per_s,
        o.final_loss
    )
}

/// Points a stored training curve keeps at most.
pub const CURVE_POINTS: usize = 300;

/// A run's training curve from its output: `[step, loss, tokens/s, seconds]` of its progress
/// lines, thinned evenly to at most [`CURVE_POINTS`] (the first and the last kept).
pub fn curve(output: &str) -> Vec<[f64; 4]> {
    let all: Vec<[f64; 4]> = output
        .lines()
        .filter_map(parse_progress)
        .filter(|p| p.loss.is_finite())
        .map(|p| [p.step as f64, p.loss, p.tokens_per_s, p.elapsed])
        .collect();
    if all.len() <= CURVE_POINTS {
        return all;
    }
    let last = all.len() - 1;
    (0..CURVE_POINTS)
        .map(|i| all[i * last / (CURVE_POINTS - 1)])
        .collect()
}

/// The training speed a run's summary reports (`tokens_per_second:`).
pub fn tokens_per_second(output: &str) -> Option<f64> {
    first_number(output, "tokens_per_second:", false)
}

/// The reference's parse: first match of each key in the whole output (§g.6).
pub fn parse_output(output: &str) -> Parsed {
    let val_bpb = first_number(output, "val_bpb:", false).unwrap_or(0.0);
    let peak_vram_mb = first_number(output, "peak_vram_mb:", false).unwrap_or(0.0);
    let num_params = match first_number(output, "num_parameters:", true) {
        Some(n) => n as u64,
        None => first_number(output, "num_params_M:", false)
            .map(|m| (m * 1e6) as u64)
            .unwrap_or(0),
    };
    let num_steps = match first_int(output, "num_steps:") {
        Some(n) => n,
        None => last_step(output).unwrap_or(0),
    };
    Parsed {
        val_bpb,
        peak_vram_mb,
        num_steps,
        num_params,
    }
}

/// `key\s*([\d.]+)` (digits and dots; with `commas`, `[\d,]+` with commas dropped).
fn first_number(text: &str, key: &str, commas: bool) -> Option<f64> {
    let mut from = 0;
    while let Some(pos) = text[from..].find(key) {
        let after = &text[from + pos + key.len()..];
        let trimmed = after.trim_start();
        let num: String = trimmed
            .chars()
            .take_while(|c| c.is_ascii_digit() || if commas { *c == ',' } else { *c == '.' })
            .filter(|c| *c != ',')
            .collect();
        if !num.is_empty() {
            // Python's float() of a digits-and-dots match; a malformed one ("1.2.3") is 0.
            return Some(num.parse().unwrap_or(0.0));
        }
        from += pos + key.len();
    }
    None
}

fn first_int(text: &str, key: &str) -> Option<u64> {
    let mut from = 0;
    while let Some(pos) = text[from..].find(key) {
        let after = text[from + pos + key.len()..].trim_start();
        let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(n) = digits.parse() {
            return Some(n);
        }
        from += pos + key.len();
    }
    None
}

/// The last `step\s+(\d+)` in the output.
fn last_step(text: &str) -> Option<u64> {
    let mut found = None;
    let mut from = 0;
    while let Some(pos) = text[from..].find("step") {
        let after = &text[from + pos + 4..];
        let ws = after.len() - after.trim_start().len();
        if ws > 0 {
            let digits: String = after[ws..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(n) = digits.parse() {
                found = Some(n);
            }
        }
        from += pos + 4;
    }
    found
}

#[cfg(test)]
mod curve_tests {
    use super::*;

    #[test]
    fn a_curve_is_thinned_to_its_limit_keeping_the_ends() {
        let output: String = (1..=1000)
            .map(|s| format!("progress step={s} planned=1000 loss={:.4} tok_s=5000 elapsed={:.1} budget=60\nother line\n", 5.0 - s as f64 / 1000.0, s as f64 * 0.06))
            .collect();
        let c = curve(&output);
        assert_eq!(c.len(), CURVE_POINTS);
        assert_eq!(c[0][0], 1.0);
        assert_eq!(c[CURVE_POINTS - 1][0], 1000.0);
        assert!(c.windows(2).all(|w| w[0][0] < w[1][0]));
        assert!(curve("no progress here\n").is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn progress_lines_round_trip() {
        let p = Progress {
            step: 12,
            planned: Some(300),
            loss: 2.5,
            tokens_per_s: 15000.0,
            elapsed: Duration::from_millis(3100),
            budget: Duration::from_secs(60),
        };
        let parsed = parse_progress(&progress_line(&p)).unwrap();
        assert_eq!((parsed.step, parsed.planned), (12, 300));
        assert!((parsed.loss - 2.5).abs() < 1e-9);
        assert!(parse_progress("step 5").is_none());
    }

    #[test]
    fn stage_lines_round_trip_and_say_what_a_gpu_does() {
        let s = StageLine {
            stage: 3,
            of: 4,
            gpu: true,
            budget: 300.0,
            elapsed: 41.26,
            what: "the first forward and backward pass".into(),
        };
        let line = stage_line(&s);
        assert_eq!(
            parse_event(&line),
            Some(Event::Stage(StageLine {
                elapsed: 41.3,
                ..s.clone()
            }))
        );
        assert_eq!(
            s.describe(),
            "preparing GPU kernels (3/4: the first forward and backward pass, 41 s)"
        );
        let cpu = StageLine { gpu: false, ..s };
        assert!(cpu.describe().starts_with("starting (3/4"));
        // a line that only looks like one is nothing
        assert_eq!(parse_event("preparing stage=x of=4 what=y"), None);
        assert_eq!(parse_event("preparing the data"), None);
        // control characters (a terminal's escapes) never reach the log or the header
        let odd = parse_stage("preparing stage=1 of=4 gpu=0 budget=1 elapsed=0 what=a\x1b[2Jb\rc")
            .unwrap();
        assert_eq!(odd.what, "a[2Jbc");
    }

    #[test]
    fn our_summary_parses_with_the_reference_rules() {
        let o = Outcome {
            val_bpb: 2.345678,
            steps: 321,
            num_params: 123_456,
            tokens: 328_704,
            train_seconds: 60.0,
            tokens_per_s: 5478.4,
            final_loss: 1.7,
        };
        let p = parse_output(&summary(&o, 62.0, 210.5, 2));
        assert_eq!(p.val_bpb, 2.345678);
        assert_eq!(p.num_steps, 321);
        assert_eq!(p.num_params, 123_456);
        assert_eq!(p.peak_vram_mb, 210.5);
    }
}
