//! Verdicts on a record from the signed control events about it (issue #7, reference §f.4): who
//! verified it, who challenged it, and whether a challenge ended with the claim upheld or
//! rejected. A verdict is computed from the events alone, so every node holding the same events
//! reaches the same verdict whatever order they arrived in; nothing a single signer says is
//! taken on trust.
//!
//! What counts (the reference counted everything correctly signed):
//! * only nodes of the record's hardware class, never its publisher, one vote per node;
//! * a `verification` must agree with the claim within the class's tolerance;
//! * a `challenge` must disagree with it;
//! * a `challenge_response` counts only for a challenge that counts;
//! * a challenge is decided by the median of the claim, the challenger's figure and the responses
//!   (reference §f.4) once three nodes responded, the challenger signed a `dispute` that follows
//!   from the responses it names, or the challenge timed out with at least one response. The
//!   dispute is checked, not believed: one that names responses that do not exist, or whose
//!   median or outcome does not follow from them, is refused.

use std::collections::{BTreeMap, BTreeSet};

use spore_spec::hardware;
use spore_spec::json::Value;
use spore_spec::{ControlEvent, ControlKind};

/// The record a verdict is about.
#[derive(Clone, Debug)]
pub struct Claim {
    pub id: String,
    pub publisher: String,
    /// The verification class of its `gpu_model`.
    pub class: String,
    pub claimed: f64,
    /// Within this of the claim a rerun agrees: the class's tolerance, or for a command task
    /// the evaluator's relative tolerance of the claim when that is larger.
    pub tolerance: f64,
}

impl Claim {
    pub fn tolerance(&self) -> f64 {
        self.tolerance
    }
}

/// Rerun tolerance of a class: the reference's figures for GPUs; for CPU classes, reruns of a
/// config with its seed and step count are repeatable to ~1e-6 (docs/verification.md), and the
/// reference's default 0.002 is kept.
pub fn tolerance(class: &str) -> f64 {
    hardware::tolerance(class)
}

/// Seconds after which a challenge with at least one response is decided without waiting for
/// three: `SPORE_CHALLENGE_TIMEOUT` (the reference's variable), else the reference's 1,800.
pub fn challenge_timeout() -> i64 {
    static TIMEOUT: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        std::env::var("SPORE_CHALLENGE_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|t: &i64| *t > 0)
            .unwrap_or(1_800)
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Upheld,
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Upheld => "upheld",
            Outcome::Rejected => "rejected",
        }
    }
}

/// One challenge and what came of it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChallengeState {
    pub challenger: String,
    pub challenger_bpb: f64,
    pub timestamp: i64,
    /// Responding node → its rerun figure.
    pub responses: BTreeMap<String, f64>,
    /// `(outcome, ground truth)` once decided.
    pub decided: Option<(Outcome, f64)>,
    /// Nobody answered it within the timeout: it lapsed, deciding nothing (an answer that
    /// comes later still decides it).
    pub lapsed: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Nodes of the class whose rerun agreed with the claim (verifications, and responses
    /// within tolerance).
    pub verified_by: BTreeSet<String>,
    pub challenges: Vec<ChallengeState>,
    /// Events that do not count, with the reason.
    pub refused: Vec<(String, String)>,
}

impl Verdict {
    /// Rejected when a decided challenge rejected the claim; upheld when one upheld it.
    pub fn outcome(&self) -> Option<Outcome> {
        let decided: Vec<Outcome> = self
            .challenges
            .iter()
            .filter_map(|c| c.decided.map(|d| d.0))
            .collect();
        if decided.contains(&Outcome::Rejected) {
            Some(Outcome::Rejected)
        } else if decided.contains(&Outcome::Upheld) {
            Some(Outcome::Upheld)
        } else {
            None
        }
    }

    /// A challenge not decided yet (and not lapsed).
    pub fn open_challenge(&self) -> bool {
        self.challenges
            .iter()
            .any(|c| c.decided.is_none() && !c.lapsed)
    }
}

/// The finite number at `key` of an event payload, if any.
pub fn num(payload: &Value, key: &str) -> Option<f64> {
    match payload.get(key)? {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) if f.is_finite() => Some(*f),
        _ => None,
    }
}

fn ids(payload: &Value, key: &str) -> Option<Vec<String>> {
    match payload.get(key)? {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

/// The median the reference takes (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The decision of a challenge with these responses (reference §f.4).
pub fn decide(claimed: f64, challenger_bpb: f64, responses: &[f64], tol: f64) -> (Outcome, f64) {
    let mut values = vec![claimed, challenger_bpb];
    values.extend_from_slice(responses);
    let truth = median(values);
    let outcome = if (claimed - truth).abs() > tol {
        Outcome::Rejected
    } else {
        Outcome::Upheld
    };
    (outcome, truth)
}

/// Why an event about `claim` cannot count, before looking at the others (used at ingest to
/// refuse events that can never count: self-verification, a foreign hardware class).
pub fn check_event(event: &ControlEvent, claim: &Claim) -> Result<(), String> {
    let Some(kind) = event.kind() else {
        return Err("unknown event type".into());
    };
    let signer = event.node_id.as_str();
    if signer == claim.publisher {
        return Err(format!("{} by the record's own publisher", kind.as_str()));
    }
    let gpu_field = match kind {
        ControlKind::Verification | ControlKind::ChallengeResponse => "verifier_gpu",
        ControlKind::Challenge => "challenger_gpu",
        ControlKind::Dispute => return Ok(()),
    };
    let class = hardware::verification_class(event.payload_str(gpu_field));
    if class != claim.class {
        return Err(format!(
            "{} from class {class}, the record is {}",
            kind.as_str(),
            claim.class
        ));
    }
    // a challenge that agrees with the claim (the tolerance only grows once a command task's
    // evaluator is known, so this never refuses one that could count later)
    if kind == ControlKind::Challenge {
        if let Some(bpb) = num(&event.payload, "challenger_bpb") {
            if (bpb - claim.claimed).abs() <= claim.tolerance() {
                return Err("a challenge within the tolerance".into());
            }
        }
    }
    Ok(())
}

/// The verdict on `claim` from every stored event about it; `now` and `timeout` (seconds) decide
/// whether an unanswered challenge has run out of time.
pub fn verdict(claim: &Claim, events: &[ControlEvent], now: i64, timeout: i64) -> Verdict {
    let tol = claim.tolerance();
    let mut v = Verdict::default();
    // first vote of each node per kind (and per challenge for responses), in (timestamp, id)
    // order, so the choice does not depend on arrival order
    let mut sorted: Vec<&ControlEvent> = events.iter().collect();
    sorted.sort_by(|a, b| (a.timestamp, &a.id).cmp(&(b.timestamp, &b.id)));
    let mut seen = BTreeSet::new();
    let mut challenges: BTreeMap<String, ChallengeState> = BTreeMap::new();
    let mut responses = Vec::new();
    let mut disputes = Vec::new();
    for e in sorted {
        let refuse = |v: &mut Verdict, why: String| v.refused.push((e.id.clone(), why));
        if e.payload_str("experiment_id") != claim.id {
            refuse(&mut v, "about another record".into());
            continue;
        }
        if let Err(why) = check_event(e, claim) {
            refuse(&mut v, why);
            continue;
        }
        let kind = e.kind().expect("checked");
        let vote_key = match kind {
            ControlKind::ChallengeResponse => format!(
                "{}:{}:{}",
                kind.as_str(),
                e.payload_str("challenger_id"),
                e.node_id
            ),
            _ => format!("{}:{}", kind.as_str(), e.node_id),
        };
        if !seen.insert(vote_key) {
            refuse(&mut v, "a second vote by the same node".into());
            continue;
        }
        match kind {
            ControlKind::Verification => match num(&e.payload, "verifier_bpb") {
                Some(bpb) if (bpb - claim.claimed).abs() <= tol => {
                    v.verified_by.insert(e.node_id.clone());
                }
                Some(_) => refuse(&mut v, "a verification outside the tolerance".into()),
                None => refuse(&mut v, "no verifier_bpb".into()),
            },
            ControlKind::Challenge => match num(&e.payload, "challenger_bpb") {
                Some(bpb) if (bpb - claim.claimed).abs() > tol => {
                    challenges.insert(
                        e.node_id.clone(),
                        ChallengeState {
                            challenger: e.node_id.clone(),
                            challenger_bpb: bpb,
                            timestamp: e.timestamp,
                            responses: BTreeMap::new(),
                            decided: None,
                            lapsed: false,
                        },
                    );
                }
                Some(_) => refuse(&mut v, "a challenge within the tolerance".into()),
                None => refuse(&mut v, "no challenger_bpb".into()),
            },
            ControlKind::ChallengeResponse => responses.push(e),
            ControlKind::Dispute => disputes.push(e),
        }
    }
    for e in responses {
        let challenger = e.payload_str("challenger_id");
        let Some(challenge) = challenges.get_mut(challenger) else {
            v.refused
                .push((e.id.clone(), "a response to no valid challenge".into()));
            continue;
        };
        if e.node_id == challenger {
            v.refused
                .push((e.id.clone(), "the challenger answering itself".into()));
            continue;
        }
        match num(&e.payload, "verifier_bpb") {
            Some(bpb) => {
                challenge.responses.insert(e.node_id.clone(), bpb);
                if (bpb - claim.claimed).abs() <= tol {
                    v.verified_by.insert(e.node_id.clone());
                }
            }
            None => v.refused.push((e.id.clone(), "no verifier_bpb".into())),
        }
    }
    let mut disputed = BTreeSet::new();
    for e in disputes {
        match check_dispute(e, claim, &challenges) {
            Ok(()) => {
                disputed.insert(e.node_id.clone());
            }
            Err(why) => v.refused.push((e.id.clone(), why)),
        }
    }
    for (challenger, mut c) in challenges {
        let bpbs: Vec<f64> = c.responses.values().copied().collect();
        let enough = bpbs.len() >= 3
            || (!bpbs.is_empty()
                && (disputed.contains(&challenger) || now >= c.timestamp.saturating_add(timeout)));
        if enough {
            c.decided = Some(decide(claim.claimed, c.challenger_bpb, &bpbs, tol));
        } else if bpbs.is_empty() && now >= c.timestamp.saturating_add(timeout) {
            c.lapsed = true;
        }
        v.challenges.push(c);
    }
    v
}

/// A dispute counts when its challenger's challenge counts and its figures follow from the
/// responses it names.
fn check_dispute(
    e: &ControlEvent,
    claim: &Claim,
    challenges: &BTreeMap<String, ChallengeState>,
) -> Result<(), String> {
    let Some(challenge) = challenges.get(&e.node_id) else {
        return Err("a dispute without a valid challenge by its signer".into());
    };
    if e.payload_str("original_node_id") != claim.publisher {
        return Err("a dispute naming another publisher".into());
    }
    let named: Vec<String> = [
        ids(&e.payload, "winner_verifier_ids"),
        ids(&e.payload, "loser_verifier_ids"),
    ]
    .into_iter()
    .collect::<Option<Vec<_>>>()
    .ok_or("a dispute without its verifier lists")?
    .concat();
    let mut bpbs = Vec::new();
    for node in &named {
        match challenge.responses.get(node) {
            Some(bpb) => bpbs.push(*bpb),
            None => return Err(format!("a dispute naming {node}, who did not respond")),
        }
    }
    if bpbs.is_empty() {
        return Err("a dispute with no responses".into());
    }
    let (outcome, truth) = decide(
        claim.claimed,
        challenge.challenger_bpb,
        &bpbs,
        claim.tolerance(),
    );
    if e.payload_str("outcome") != outcome.as_str() {
        return Err(format!(
            "a dispute saying {} where its responses say {}",
            e.payload_str("outcome"),
            outcome.as_str()
        ));
    }
    match num(&e.payload, "ground_truth_bpb") {
        Some(g) if (g - truth).abs() <= 1e-9 => Ok(()),
        _ => Err("a dispute whose ground truth is not the median".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> serde_json::Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/vectors/disputes.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn decisions_match_the_reference_vectors() {
        for row in vectors()["rows"].as_array().unwrap() {
            let name = row["name"].as_str().unwrap();
            let responses: Vec<f64> = row["verifier_bpbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let tol = row["tolerance"].as_f64().unwrap();
            let claimed = row["claimed_val_bpb"].as_f64().unwrap();
            let challenger = row["challenger_bpb"].as_f64().unwrap();
            let (outcome, truth) = decide(claimed, challenger, &responses, tol);
            assert_eq!(outcome.as_str(), row["outcome"], "{name}");
            assert!(
                (truth - row["ground_truth_bpb"].as_f64().unwrap()).abs() < 1e-12,
                "{name}"
            );
            assert_eq!(
                tolerance(&hardware::verification_class(
                    row["gpu_model"].as_str().unwrap()
                )),
                tol,
                "{name}"
            );
        }
    }

    #[test]
    fn a_challenge_nobody_answers_lapses_and_a_late_answer_still_decides_it() {
        use spore_spec::json::object;
        let claim = Claim {
            id: "r".repeat(64),
            publisher: "p".into(),
            class: hardware::verification_class("CPU_X86_64"),
            claimed: 1.5,
            tolerance: 0.002,
        };
        let event = |kind: &str, by: &str, t: i64, extra: Vec<(&str, Value)>| {
            let mut payload = vec![("experiment_id", Value::Str(claim.id.clone()))];
            payload.extend(extra);
            ControlEvent {
                event_type: kind.into(),
                payload: object(payload),
                node_id: by.into(),
                timestamp: t,
                id: format!("{kind}-{by}-{t}"),
                signature: String::new(),
                version: 1,
            }
        };
        let challenge = event(
            "challenge",
            "c",
            1_000,
            vec![
                ("challenger_id", Value::Str("c".into())),
                ("challenger_bpb", Value::Float(2.0)),
                ("challenger_gpu", Value::Str("CPU_X86_64".into())),
            ],
        );
        let open = verdict(&claim, std::slice::from_ref(&challenge), 1_500, 1_800);
        assert!(open.open_challenge());
        let lapsed = verdict(&claim, std::slice::from_ref(&challenge), 2_800, 1_800);
        assert!(!lapsed.open_challenge());
        assert_eq!(lapsed.outcome(), None);
        // a far-future challenge does not overflow the deadline
        let future = ControlEvent {
            timestamp: i64::MAX,
            ..challenge.clone()
        };
        assert!(verdict(&claim, &[future], 2_800, 1_800).open_challenge());
        let answer = event(
            "challenge_response",
            "v",
            3_000,
            vec![
                ("challenger_id", Value::Str("c".into())),
                ("verifier_bpb", Value::Float(2.0)),
                ("verifier_gpu", Value::Str("CPU_X86_64".into())),
            ],
        );
        let decided = verdict(&claim, &[challenge, answer], 3_100, 1_800);
        assert_eq!(decided.outcome(), Some(Outcome::Rejected));
    }
}
