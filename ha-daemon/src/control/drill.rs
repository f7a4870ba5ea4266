//! `ha-daemon drill`: the timeline of one coordinated switchover as the nodes' event
//! streams tell it. Pure: lines in, a table out.
//!
//! Every line at or after the drill's start (CLOCK_MONOTONIC ns) is kept per node: the
//! cluster events (claims, releases, switchover steps) and every step of the group runs
//! (each resource's start or stop, at its own offset). A node's part ends with its
//! switchover step `completed` or `failed`; every run of that node is printed before
//! its end (the core hears a run's result before it can end the switchover), so the
//! drill is done when every watched node has ended.

use std::fmt;

use serde_json::Value;

/// The timelines of the watched nodes since the drill began.
#[derive(Clone, Debug, PartialEq)]
pub struct Drill {
    began_ns: u64,
    nodes: Vec<NodeTimeline>,
}

#[derive(Clone, Debug, PartialEq)]
struct NodeTimeline {
    id: u16,
    entries: Vec<(u64, String)>,
    ended: Option<End>,
}

/// How a node's part of the switchover ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    /// `completed` or `failed`.
    pub step: String,
    /// The holder as that node saw it: `us`, `peer` or `nobody`.
    pub owner: String,
}

impl Drill {
    /// A drill that began at `began_ns`, watching the nodes `ids` (in stream order).
    pub fn new(began_ns: u64, ids: &[u16]) -> Self {
        Self {
            began_ns,
            nodes: ids
                .iter()
                .map(|&id| NodeTimeline {
                    id,
                    entries: Vec::new(),
                    ended: None,
                })
                .collect(),
        }
    }

    /// Takes one line of stream `node`. Lines before the drill and lines of no interest
    /// (detector events, survey reports) are skipped.
    pub fn observe(&mut self, node: usize, line: &Value) {
        let Some(timeline) = self.nodes.get_mut(node) else {
            return;
        };
        let Some(at) = line["monotonic_ns"]
            .as_u64()
            .filter(|&at| at >= self.began_ns)
        else {
            return;
        };
        if let Some(event) = line.get("cluster") {
            let kind = event["type"].as_str().unwrap_or("?");
            let mut text = kind.replace('_', " ");
            if let Some(object) = event.as_object() {
                for (key, value) in object {
                    match (key.as_str(), value) {
                        ("type" | "at", _) => {}
                        // A switchover step: its name, then its details.
                        ("step", Value::Object(step)) => {
                            text.push_str(&format!(" {}", compact(&value["step"])));
                            for (key, value) in step.iter().filter(|(key, _)| *key != "step") {
                                text.push_str(&format!(" {key}={}", compact(value)));
                            }
                        }
                        _ => text.push_str(&format!(" {key}={}", compact(value))),
                    }
                }
            }
            if kind == "switchover"
                && let Some(step @ ("completed" | "failed")) = event["step"]["step"].as_str()
            {
                timeline.ended = Some(End {
                    step: step.to_owned(),
                    owner: event["step"]["owner"].as_str().unwrap_or("?").to_owned(),
                });
            }
            timeline.entries.push((at, text));
        } else if let Some(run) = line.get("run") {
            let started = run["started_ns"].as_u64().unwrap_or(at);
            for step in run["timeline"]["steps"].as_array().into_iter().flatten() {
                let offset = step["offset_ms"].as_f64().unwrap_or(0.0);
                let mut text = format!(
                    "  {} {} ({}, {}) {:.1} ms",
                    step["call"].as_str().unwrap_or("?"),
                    step["resource"].as_str().unwrap_or("?"),
                    step["agent"].as_str().unwrap_or("?"),
                    step["purpose"].as_str().unwrap_or("?"),
                    step["duration_ms"].as_f64().unwrap_or(0.0)
                );
                if let Some(error) = step["error"].as_str() {
                    text.push_str(&format!(": {error}"));
                }
                timeline
                    .entries
                    .push((started + (offset * 1e6) as u64, text));
            }
            timeline.entries.push((
                at,
                format!(
                    "{} run ended: {}",
                    run["action"].as_str().unwrap_or("?"),
                    run["result"]["type"].as_str().unwrap_or("?")
                ),
            ));
        }
    }

    /// Whether every watched node has ended its part.
    pub fn done(&self) -> bool {
        self.nodes.iter().all(|node| node.ended.is_some())
    }

    /// The first failed end, if any node's part failed.
    pub fn failure(&self) -> Option<(u16, &End)> {
        self.nodes.iter().find_map(|node| {
            node.ended
                .as_ref()
                .filter(|end| end.step == "failed")
                .map(|end| (node.id, end))
        })
    }
}

impl fmt::Display for Drill {
    /// Per node, every entry in time order, as milliseconds after the drill began.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for node in &self.nodes {
            writeln!(f, "node {}:", node.id)?;
            let mut entries = node.entries.clone();
            entries.sort_by_key(|(at, _)| *at);
            for (at, text) in entries {
                let ms = at.saturating_sub(self.began_ns) as f64 / 1e6;
                writeln!(f, "  {ms:>9.1} ms  {text}")?;
            }
            match &node.ended {
                Some(end) => writeln!(f, "  {} (owner: {})", end.step, end.owner)?,
                None => writeln!(f, "  (did not end)")?,
            }
        }
        Ok(())
    }
}

/// A JSON value as short text: strings bare, objects as `key=value` lists.
fn compact(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Object(object) => object
            .iter()
            .map(|(key, value)| format!("{key}={}", compact(value)))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn switchover(at: u64, step: Value) -> Value {
        json!({ "monotonic_ns": at, "cluster": { "type": "switchover", "at": at, "step": step } })
    }

    #[test]
    fn both_nodes_timelines_end_with_their_switchover_step() {
        let mut drill = Drill::new(1_000_000_000, &[1, 2]);
        // Before the drill: ignored.
        drill.observe(
            0,
            &switchover(999_000_000, json!({ "step": "completed", "owner": "us" })),
        );
        assert!(!drill.done());
        drill.observe(
            0,
            &switchover(
                1_001_000_000,
                json!({ "step": "requested", "reason": "operator" }),
            ),
        );
        drill.observe(
            0,
            &json!({ "monotonic_ns": 1_010_000_000u64, "run": {
                "action": "release", "result": { "type": "released" }, "started_ns": 1_002_000_000u64,
                "timeline": { "steps": [{ "call": "stop", "resource": "ip", "agent": "vip",
                    "purpose": "stop", "offset_ms": 1.0, "duration_ms": 2.5, "error": null }] } } }),
        );
        drill.observe(
            0,
            &switchover(
                1_020_000_000,
                json!({ "step": "completed", "owner": "peer" }),
            ),
        );
        assert!(!drill.done(), "node 2 has not ended");
        drill.observe(
            1,
            &json!({ "monotonic_ns": 1_015_000_000u64, "event": { "type": "link_up" } }),
        );
        drill.observe(
            1,
            &switchover(1_030_000_000, json!({ "step": "completed", "owner": "us" })),
        );
        assert!(drill.done());
        assert_eq!(drill.failure(), None);
        let table = drill.to_string();
        println!("{table}");
        let expected = [
            "node 1:",
            "        1.0 ms  switchover requested reason=operator",
            "        3.0 ms    stop ip (vip, stop) 2.5 ms",
            "       10.0 ms  release run ended: released",
            "       20.0 ms  switchover completed owner=peer",
            "  completed (owner: peer)",
            "node 2:",
            "       30.0 ms  switchover completed owner=us",
            "  completed (owner: us)",
        ];
        assert_eq!(table.lines().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn a_failed_step_is_reported_with_the_owner() {
        let mut drill = Drill::new(0, &[1]);
        drill.observe(
            0,
            &switchover(5, json!({ "step": "failed", "owner": "us" })),
        );
        assert!(drill.done());
        let (node, end) = drill.failure().expect("failed");
        assert_eq!(node, 1);
        assert_eq!(end.owner, "us");
    }
}
