//! Verdicts kept with the records (issue #7): the control events about each record are indexed,
//! and whenever one arrives (or the record arrives after its events, or a challenge runs out of
//! time) the record's verdict is recomputed from all of them ([`crate::verdict`]) and applied:
//! verified records are marked, rejected ones leave the frontier and stop displacing their
//! parent.

use redb::{ReadableTable, ReadableTableMetadata};
use spore_spec::json::{self, object, Value};
use spore_spec::{hardware, ControlEvent, ExperimentRecord, Goal, Status};

use super::codec::{key, prefix_end, IndexEntry};
use super::control::subject;
use super::{Reader, StoreError, Writer};
use crate::verdict::{self, Claim, Outcome, Verdict};

/// What the explorer and the CLI show of a verdict.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VerdictSummary {
    /// Distinct nodes of the record's class whose rerun agreed with it.
    pub verified_by: u64,
    /// A challenge is open (not decided yet).
    pub challenged: bool,
    pub outcome: Option<Outcome>,
    pub ground_truth: Option<f64>,
    /// Dispute credits applied to node counters for this record: (node, won, score).
    pub credits: Vec<(String, bool, f64)>,
}

impl VerdictSummary {
    fn of(v: &Verdict) -> VerdictSummary {
        let outcome = v.outcome();
        let ground_truth = v
            .challenges
            .iter()
            .filter_map(|c| c.decided)
            .find(|d| Some(d.0) == outcome)
            .map(|d| d.1);
        VerdictSummary {
            verified_by: v.verified_by.len() as u64,
            challenged: v.open_challenge(),
            outcome,
            ground_truth,
            credits: Vec::new(),
        }
    }

    /// The reference's §f.4 credits of every decided challenge: upheld, the challenger loses (−1);
    /// rejected, the challenger wins (+1) and the publisher loses (−5); responders on the winning
    /// side win (+0.5), the others lose (−1).
    fn credits_of(v: &Verdict, claim: &Claim) -> Vec<(String, bool, f64)> {
        let mut out = Vec::new();
        for c in &v.challenges {
            let Some((outcome, _)) = c.decided else {
                continue;
            };
            match outcome {
                Outcome::Upheld => out.push((c.challenger.clone(), false, -1.0)),
                Outcome::Rejected => {
                    out.push((c.challenger.clone(), true, 1.0));
                    out.push((claim.publisher.clone(), false, -5.0));
                }
            }
            for (node, bpb) in &c.responses {
                let supports_claim = (bpb - claim.claimed).abs() <= claim.tolerance();
                let won = supports_claim == (outcome == Outcome::Upheld);
                out.push((node.clone(), won, if won { 0.5 } else { -1.0 }));
            }
        }
        out
    }

    fn encode(&self) -> Vec<u8> {
        let value = object([
            ("verified_by", Value::Int(self.verified_by as i64)),
            ("challenged", Value::Bool(self.challenged)),
            (
                "outcome",
                self.outcome
                    .map_or(Value::Null, |o| Value::Str(o.as_str().into())),
            ),
            (
                "ground_truth",
                self.ground_truth.map_or(Value::Null, Value::Float),
            ),
            (
                "credits",
                Value::Array(
                    self.credits
                        .iter()
                        .map(|(n, won, score)| {
                            Value::Array(vec![
                                Value::Str(n.clone()),
                                Value::Bool(*won),
                                Value::Float(*score),
                            ])
                        })
                        .collect(),
                ),
            ),
        ]);
        json::to_wire(&value).into_bytes()
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<VerdictSummary, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt {
            table: "verdicts_v1",
            what: what.into(),
        };
        let v = json::parse(bytes).map_err(|e| corrupt(&e.to_string()))?;
        Ok(VerdictSummary {
            verified_by: match v.get("verified_by") {
                Some(Value::Int(n)) => *n as u64,
                _ => return Err(corrupt("verified_by")),
            },
            challenged: matches!(v.get("challenged"), Some(Value::Bool(true))),
            outcome: match v.get("outcome").and_then(Value::as_str) {
                Some("upheld") => Some(Outcome::Upheld),
                Some("rejected") => Some(Outcome::Rejected),
                _ => None,
            },
            ground_truth: match v.get("ground_truth") {
                Some(Value::Float(f)) => Some(*f),
                Some(Value::Int(i)) => Some(*i as f64),
                _ => None,
            },
            credits: match v.get("credits") {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|c| match c {
                        Value::Array(p) => match p.as_slice() {
                            [Value::Str(n), Value::Bool(won), Value::Float(score)] => {
                                Some((n.clone(), *won, *score))
                            }
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            },
        })
    }
}

impl Writer<'_> {
    /// Stores a verified control event: refused when it can never count for the record it
    /// names (its publisher's own, another hardware class), else stored, indexed under its
    /// record, and the record's verdict recomputed.
    pub fn insert_control_event(
        &mut self,
        event: &ControlEvent,
    ) -> Result<super::ControlOutcome, StoreError> {
        let record = match subject(event) {
            Some(id) => self.stored_record(id)?,
            None => None,
        };
        if let Some(record) = &record {
            let claim = claim_in(&self.t.tasks, &self.t.artifacts, record)?;
            if let Err(why) = verdict::check_event(event, &claim) {
                return Ok(super::ControlOutcome::Refused(why));
            }
        }
        let outcome = self.store_control_event(event)?;
        if outcome == super::ControlOutcome::Accepted {
            self.index_event(event)?;
            if let Some(record) = &record {
                if !self.count_verification(event, record)? {
                    self.apply_verdict_to(record)?;
                }
            }
        }
        Ok(outcome)
    }

    /// Counts a new verification of a stored record into its verdict without computing the
    /// verdict again from every event (a record may have as many verifications as there are
    /// keys). Only while nothing contests the record: then its verified-by count is the number
    /// of verifications within the tolerance, one per signer (the vote table keeps one), and
    /// nothing else in the verdict depends on them. Returns false when the verdict has to be
    /// computed in full.
    fn count_verification(
        &mut self,
        event: &ControlEvent,
        record: &ExperimentRecord,
    ) -> Result<bool, StoreError> {
        if event.kind() != Some(spore_spec::ControlKind::Verification) {
            return Ok(false);
        }
        let stored = self.t.verdicts.get(record.id.as_str())?;
        let mut summary = match &stored {
            Some(bytes) => VerdictSummary::decode(bytes.value())?,
            None => VerdictSummary::default(),
        };
        drop(stored);
        // a challenge that counts is open or decided; one that does not count (nor responses
        // to it, nor disputes) changes nothing in who verified the record
        if summary.challenged || summary.outcome.is_some() {
            return Ok(false);
        }
        let claim = claim_in(&self.t.tasks, &self.t.artifacts, record)?;
        let agrees = verdict::num(&event.payload, "verifier_bpb")
            .is_some_and(|bpb| (bpb - claim.claimed).abs() <= claim.tolerance());
        if !agrees {
            return Ok(true); // it does not count: the verdict stays as it is
        }
        summary.verified_by += 1;
        self.t
            .verdicts
            .insert(record.id.as_str(), summary.encode().as_slice())?;
        self.changes.verdicts.insert(record.id.clone());
        self.mark_verified(&record.id)?;
        Ok(true)
    }

    fn stored_record(&self, id: &str) -> Result<Option<ExperimentRecord>, StoreError> {
        match self.t.experiments.get(id)? {
            Some(wire) => Ok(Some(super::codec::parse_record(wire.value())?)),
            None => Ok(None),
        }
    }

    /// Indexes a stored event under its record.
    pub(super) fn index_event(&mut self, event: &ControlEvent) -> Result<(), StoreError> {
        if let Some(exp) = subject(event) {
            let k = key(&[exp.as_bytes(), event.id.as_bytes()]);
            self.t.control_by_experiment.insert(k.as_slice(), ())?;
        }
        Ok(())
    }

    /// Recomputes and applies the verdict on record `id` from every event about it. Returns the
    /// verdict, or `None` when no event is about it or the record is not stored (its events
    /// wait for it). Called for every stored record, so the common case (no event) costs one
    /// empty range scan.
    pub fn apply_verdict(&mut self, id: &str) -> Result<Option<Verdict>, StoreError> {
        if !self.has_events(id)? {
            return Ok(None);
        }
        match self.stored_record(id)? {
            Some(record) => self.apply_verdict_to(&record).map(Some),
            None => Ok(None),
        }
    }

    fn has_events(&self, id: &str) -> Result<bool, StoreError> {
        let prefix = id.as_bytes().to_vec();
        let mut range = self
            .t
            .control_by_experiment
            .range(prefix.as_slice()..prefix_end(&prefix).as_slice())?;
        Ok(range.next().is_some())
    }

    fn apply_verdict_to(&mut self, record: &ExperimentRecord) -> Result<Verdict, StoreError> {
        let id = record.id.as_str();
        let events = events_about(&self.t.control_by_experiment, &self.t.control_events, id)?;
        let claim = claim_in(&self.t.tasks, &self.t.artifacts, record)?;
        let v = verdict::verdict(&claim, &events, self.now, verdict::challenge_timeout());
        self.release_votes_that_cannot_count(&v, &events)?;
        let mut summary = VerdictSummary::of(&v);
        // dispute credits: take back what an earlier verdict on this record gave, give the new
        let stored = self.t.verdicts.get(id)?.map(|bytes| bytes.value().to_vec());
        let before = match &stored {
            Some(bytes) => VerdictSummary::decode(bytes)?.credits,
            None => Vec::new(),
        };
        summary.credits = VerdictSummary::credits_of(&v, &claim);
        if before != summary.credits {
            for (node, won, score) in &before {
                self.credit_dispute(node, *won, *score, -1.0)?;
            }
            for (node, won, score) in &summary.credits {
                self.credit_dispute(node, *won, *score, 1.0)?;
            }
        }
        let encoded = summary.encode();
        if stored.as_deref() != Some(encoded.as_slice()) {
            self.changes.verdicts.insert(id.to_string());
        }
        self.t.verdicts.insert(id, encoded.as_slice())?;
        match v
            .challenges
            .iter()
            .filter(|c| c.decided.is_none() && !c.lapsed)
            .map(|c| c.timestamp)
            .min()
        {
            Some(t) => self.t.open_challenges.insert(id, t)?,
            None => self.t.open_challenges.remove(id)?,
        };
        if !v.verified_by.is_empty() || summary.outcome == Some(Outcome::Upheld) {
            self.mark_verified(id)?;
        }
        self.set_rejected(id, summary.outcome == Some(Outcome::Rejected))?;
        Ok(v)
    }

    /// Challenges, responses and disputes about a stored record that can never count give back
    /// their place under [`super::MAX_CONTESTED_VOTES`] (they stay stored, as events): junk
    /// sent before the record cannot keep honest challenges out once the record is here.
    fn release_votes_that_cannot_count(
        &mut self,
        v: &Verdict,
        events: &[ControlEvent],
    ) -> Result<(), StoreError> {
        if v.refused.is_empty() {
            return Ok(());
        }
        let by_id: std::collections::HashMap<&str, &ControlEvent> =
            events.iter().map(|e| (e.id.as_str(), e)).collect();
        for (id, _) in &v.refused {
            let Some(event) = by_id.get(id.as_str()) else {
                continue;
            };
            if event.kind() == Some(spore_spec::ControlKind::Verification) {
                continue;
            }
            if let Some(vote) = super::control::vote_key(event) {
                let kept = self.t.votes.get(vote.as_str())?.map(|k| k.value() == id);
                if kept == Some(true) {
                    self.t.votes.remove(vote.as_str())?;
                }
            }
        }
        Ok(())
    }

    /// Marks record `id` rejected (or not): a rejected record leaves its task's frontier, and its
    /// parent returns there if no other keep child beats it.
    fn set_rejected(&mut self, id: &str, rejected: bool) -> Result<(), StoreError> {
        let Some(bytes) = self.t.index.get(id)? else {
            return Ok(());
        };
        let mut entry = IndexEntry::decode(bytes.value())?;
        drop(bytes);
        if entry.rejected == rejected {
            return Ok(());
        }
        entry.rejected = rejected;
        self.t.index.insert(id, entry.encode().as_slice())?;
        self.place_on_frontier(id, &entry)?;
        if entry.status == Status::Keep {
            if let Some(parent) = &entry.parent {
                self.redecide_displacement(parent)?;
            }
        }
        Ok(())
    }

    /// Puts `id` on (or takes it off) its task's frontier for each goal, as its flags say.
    fn place_on_frontier(&mut self, id: &str, entry: &IndexEntry) -> Result<(), StoreError> {
        for goal in [Goal::Minimize, Goal::Maximize] {
            let k = super::codec::frontier_key(goal, &entry.task_id, entry.metric, id);
            let changed = if entry.is_frontier(goal) {
                self.t.frontier.insert(k.as_slice(), ())?.is_none()
            } else {
                self.t.frontier.remove(k.as_slice())?.is_some()
            };
            if changed {
                self.changes.frontier_tasks.insert(entry.task_id.clone());
            }
        }
        Ok(())
    }

    /// Whether a keep child that is not rejected still beats `parent`, per goal.
    fn redecide_displacement(&mut self, parent: &str) -> Result<(), StoreError> {
        let Some(bytes) = self.t.index.get(parent)? else {
            return Ok(());
        };
        let mut p = IndexEntry::decode(bytes.value())?;
        drop(bytes);
        let (mut min, mut max) = (false, false);
        let prefix = parent.as_bytes().to_vec();
        let children: Vec<String> = self
            .t
            .children
            .range(prefix.as_slice()..prefix_end(&prefix).as_slice())?
            .map(|item| item.map(|(k, _)| String::from_utf8_lossy(&k.value()[64..]).into_owned()))
            .collect::<Result<_, _>>()?;
        for child in children {
            let Some(c) = self.t.index.get(child.as_str())? else {
                continue;
            };
            let c = IndexEntry::decode(c.value())?;
            if c.status != Status::Keep || c.rejected || c.task_id != p.task_id {
                continue;
            }
            min |= Goal::Minimize.better(c.metric, p.metric);
            max |= Goal::Maximize.better(c.metric, p.metric);
        }
        if (min, max) != (p.displaced_min, p.displaced_max) {
            p.displaced_min = min;
            p.displaced_max = max;
            self.t.index.insert(parent, p.encode().as_slice())?;
            self.place_on_frontier(parent, &p)?;
        }
        Ok(())
    }

    /// Verdicts whose open challenge is older than the timeout, recomputed (a challenge with
    /// responses is decided when its time is up). Returns the records whose verdict changed.
    pub fn decide_timed_out(&mut self) -> Result<Vec<String>, StoreError> {
        let deadline = self.now - verdict::challenge_timeout();
        let due: Vec<String> = self
            .t
            .open_challenges
            .iter()?
            .filter_map(|item| item.ok())
            .filter(|(_, t)| t.value() <= deadline)
            .map(|(k, _)| k.value().to_string())
            .collect();
        let mut changed = Vec::new();
        for id in due {
            let before = self
                .t
                .verdicts
                .get(id.as_str())?
                .map(|b| b.value().to_vec());
            self.apply_verdict(&id)?;
            let after = self
                .t
                .verdicts
                .get(id.as_str())?
                .map(|b| b.value().to_vec());
            if before != after {
                changed.push(id);
            }
        }
        Ok(changed)
    }

    /// Indexes events stored before events were indexed by record, and applies their verdicts
    /// (once, at open).
    pub fn backfill_verdicts(&mut self) -> Result<u64, StoreError> {
        if self.t.control_by_experiment.len()? > 0 || self.t.control_events.len()? == 0 {
            return Ok(0);
        }
        let events: Vec<ControlEvent> = self
            .t
            .control_events
            .iter()?
            .map(|item| {
                item.map_err(StoreError::from)
                    .and_then(|(_, v)| super::control::parse_event(v.value()))
            })
            .collect::<Result<_, _>>()?;
        let mut subjects = std::collections::BTreeSet::new();
        for e in &events {
            self.index_event(e)?;
            self.t
                .control_dedupe
                .insert(e.dedupe_key().as_str(), e.id.as_str())?;
            if let Some(s) = subject(e) {
                subjects.insert(s.to_string());
            }
        }
        for s in &subjects {
            self.apply_verdict(s)?;
        }
        Ok(events.len() as u64)
    }
}

/// The claim a record makes, judged with its class's tolerance.
pub fn claim_of(record: &spore_spec::ExperimentRecord) -> Claim {
    let class = hardware::verification_class(&record.gpu_model);
    Claim {
        id: record.id.clone(),
        publisher: record.node_id.clone(),
        tolerance: verdict::tolerance(&class),
        class,
        claimed: record.val_bpb.value(),
    }
}

/// The claim a record makes, with its task's tolerance: a command task's evaluator (when this
/// node has it) names a relative tolerance, used when it is larger than the class's.
fn claim_in(
    tasks: &impl ReadableTable<&'static str, &'static [u8]>,
    artifacts: &impl ReadableTable<&'static str, &'static [u8]>,
    record: &spore_spec::ExperimentRecord,
) -> Result<Claim, StoreError> {
    let mut claim = claim_of(record);
    let Some(row) = tasks.get(record.task_id.as_str())? else {
        return Ok(claim);
    };
    let row = super::tasks::TaskRow::decode(row.value())?;
    if row.manifest.artifact_type != crate::command_task::ARTIFACT_TYPE {
        return Ok(claim);
    }
    if let Some(doc) = artifacts.get(row.manifest.prepare_cid.as_str())? {
        if let Ok(evaluator) = crate::command_task::Evaluator::parse(doc.value()) {
            claim.tolerance = claim
                .tolerance
                .max(evaluator.tolerance * claim.claimed.abs());
        }
    }
    Ok(claim)
}

fn events_about(
    by_experiment: &impl ReadableTable<&'static [u8], ()>,
    events: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Vec<ControlEvent>, StoreError> {
    let prefix = id.as_bytes().to_vec();
    let mut out = Vec::new();
    for item in by_experiment.range(prefix.as_slice()..prefix_end(&prefix).as_slice())? {
        let (k, _) = item?;
        let event_id = String::from_utf8_lossy(&k.value()[id.len()..]).into_owned();
        if let Some(bytes) = events.get(event_id.as_str())? {
            out.push(super::control::parse_event(bytes.value())?);
        }
    }
    Ok(out)
}

impl Reader {
    /// The claim `record` makes, with its task's tolerance (see `claim_in`).
    pub fn claim(&self, record: &spore_spec::ExperimentRecord) -> Result<Claim, StoreError> {
        claim_in(&self.t.tasks, &self.t.artifacts, record)
    }

    /// The verdict summary of record `id` (`None`: no event is about it).
    pub fn verdict_summary(&self, id: &str) -> Result<Option<VerdictSummary>, StoreError> {
        self.t
            .verdicts
            .get(id)?
            .map(|b| VerdictSummary::decode(b.value()))
            .transpose()
    }

    /// The events about record `id`.
    pub fn events_about(&self, id: &str) -> Result<Vec<ControlEvent>, StoreError> {
        events_about(&self.t.control_by_experiment, &self.t.control_events, id)
    }

    /// The full verdict on record `id`, recomputed now.
    pub fn verdict(&self, id: &str) -> Result<Option<Verdict>, StoreError> {
        let Some(record) = self.experiment(id)? else {
            return Ok(None);
        };
        let events = self.events_about(id)?;
        Ok(Some(verdict::verdict(
            &self.claim(&record)?,
            &events,
            self.now,
            verdict::challenge_timeout(),
        )))
    }

    /// The next time (Unix seconds, after this snapshot's "now") an undecided challenge runs
    /// out of time, if any. Deadlines already passed are not returned: what could be decided
    /// then was (a challenge nobody answered stays open, and a late response decides it when it
    /// is stored), so a waiter never wakes for them again and again.
    pub fn next_challenge_deadline(&self) -> Result<Option<i64>, StoreError> {
        let mut next: Option<i64> = None;
        for item in self.t.open_challenges.iter()? {
            let deadline = item?.1.value().saturating_add(verdict::challenge_timeout());
            if deadline > self.now {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        }
        Ok(next)
    }

    /// Records with a challenge not decided yet.
    pub fn open_challenges(&self) -> Result<Vec<String>, StoreError> {
        self.t
            .open_challenges
            .iter()?
            .map(|item| item.map(|(k, _)| k.value().to_string()).map_err(Into::into))
            .collect()
    }
}
