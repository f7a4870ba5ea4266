//! One line of `drbdsetup events2` output, parsed.
//!
//! Grammar (DRBD 8.4 with drbd-utils 9, and DRBD 9):
//!
//! ```text
//! line      = [timestamp " "] event " " ( "-" | object *(" " key ":" value) )
//! event     = "exists" | "create" | "change" | "destroy" | "call" | "response"
//! object    = "resource" | "connection" | "device" | "peer-device" | "path" | "helper" | other
//! timestamp = e.g. 2026-11-23T11:53:08.765358+00:00   (with --timestamps)
//! ```
//!
//! `exists -` ends the initial state dump (`--now` stops there; without it, changes
//! follow). A value may itself contain colons (`local:ipv4:192.0.2.1:7789`): a field is
//! split at its first colon.
//!
//! Tolerance: unknown keys and unknown objects are kept, never an error (a newer DRBD
//! adds them). Malformed lines are errors that quote the line and name the problem.
//! Invariant of a parsed line: a known object has its `name`; a `device` or
//! `peer-device` has a numeric `volume`; `volume`, `minor` and `peer-node-id` are
//! numbers wherever they appear.

use std::fmt;

/// The event type: the first word after the optional timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Part of the initial state dump.
    Exists,
    /// An object appeared.
    Create,
    /// Some fields of an object changed (only the changed ones need be listed).
    Change,
    /// An object went away.
    Destroy,
    /// A user-mode helper was called.
    Call,
    /// A user-mode helper returned.
    Response,
}

impl EventType {
    fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "exists" => EventType::Exists,
            "create" => EventType::Create,
            "change" => EventType::Change,
            "destroy" => EventType::Destroy,
            "call" => EventType::Call,
            "response" => EventType::Response,
            _ => return None,
        })
    }

    /// The word as DRBD prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Exists => "exists",
            EventType::Create => "create",
            EventType::Change => "change",
            EventType::Destroy => "destroy",
            EventType::Call => "call",
            EventType::Response => "response",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The object a line is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// A resource: `name`, `role`, ...
    Resource,
    /// A connection to a peer: `name`, `peer-node-id`, `conn-name`, `connection`, `role`.
    Connection,
    /// A local volume: `name`, `volume`, `minor`, `disk`.
    Device,
    /// A volume as replicated to a peer: `name`, `peer-node-id`, `volume`,
    /// `replication`, `peer-disk`.
    PeerDevice,
    /// A network path of a connection (DRBD 9).
    Path,
    /// A user-mode helper call or response.
    Helper,
    /// An object this parser does not know (a newer DRBD); its fields are kept.
    Other(String),
}

impl Object {
    fn from_word(word: &str) -> Self {
        match word {
            "resource" => Object::Resource,
            "connection" => Object::Connection,
            "device" => Object::Device,
            "peer-device" => Object::PeerDevice,
            "path" => Object::Path,
            "helper" => Object::Helper,
            other => Object::Other(other.to_owned()),
        }
    }

    /// The word as DRBD prints it.
    pub fn as_str(&self) -> &str {
        match self {
            Object::Resource => "resource",
            Object::Connection => "connection",
            Object::Device => "device",
            Object::PeerDevice => "peer-device",
            Object::Path => "path",
            Object::Helper => "helper",
            Object::Other(word) => word,
        }
    }

    /// The fields a line about this object must have.
    fn required(&self) -> &'static [&'static str] {
        match self {
            Object::Resource | Object::Connection | Object::Path | Object::Helper => &["name"],
            Object::Device | Object::PeerDevice => &["name", "volume"],
            Object::Other(_) => &[],
        }
    }
}

/// Keys whose values must be numbers wherever they appear.
const NUMERIC_KEYS: [&str; 3] = ["volume", "minor", "peer-node-id"];

/// The `key:value` fields of a line, in their order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The value of `key` (the last one if it repeats).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` as a number (`None` when absent or not a number).
    pub fn number(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse().ok()
    }

    /// The `volume`, `minor` or `peer-node-id` kind of value, checked by the parser.
    pub fn id(&self, key: &str) -> Option<u32> {
        self.get(key)?.parse().ok()
    }

    /// Every field, in line order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// What follows the event type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// `-` after `exists`: the initial state dump is complete.
    EndOfDump,
    /// An object and its fields.
    Object {
        /// Which object.
        object: Object,
        /// Its fields.
        fields: Fields,
    },
}

/// One parsed `events2` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLine {
    /// The leading timestamp (`--timestamps`), verbatim.
    pub timestamp: Option<String>,
    /// The event type.
    pub event: EventType,
    /// The object and fields, or the end of the dump.
    pub body: Body,
}

/// A line that is not `events2` output.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("drbdsetup events2 line {line:?}: {problem}")]
pub struct ParseError {
    /// The line, as given.
    pub line: String,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with a malformed line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Nothing but white space.
    #[error("the line is empty")]
    Empty,
    /// The first word is neither a timestamp nor an event type.
    #[error(
        "{0:?} is not an event type (exists, create, change, destroy, call, response) \
         nor a timestamp"
    )]
    UnknownEvent(String),
    /// The first word starts like a timestamp but is not one.
    #[error("{0:?} is not a timestamp like 2026-11-23T11:53:08.765358+00:00")]
    BadTimestamp(String),
    /// The line ends after the event type.
    #[error("no object after the event type")]
    MissingObject,
    /// `-` after an event type other than `exists`.
    #[error("\"-\" (end of the initial dump) follows only \"exists\", not \"{0}\"")]
    DashAfter(EventType),
    /// Text after `exists -`.
    #[error("\"exists -\" is followed by {0:?}")]
    TrailingAfterDash(String),
    /// A field without a colon, or with an empty key.
    #[error("field {0:?} is not key:value")]
    NotKeyValue(String),
    /// A known object without a field it always has.
    #[error("a {object} line has no {key} field")]
    MissingField {
        /// The object.
        object: String,
        /// The missing key.
        key: &'static str,
    },
    /// `volume`, `minor` or `peer-node-id` with a value that is not a number.
    #[error("field {key}:{value} is not a number")]
    NotANumber {
        /// The key.
        key: String,
        /// Its value.
        value: String,
    },
}

/// Parses one line of `drbdsetup events2` output (a trailing newline is allowed).
pub fn parse_line(line: &str) -> Result<EventLine, ParseError> {
    parse_words(line).map_err(|problem| ParseError {
        line: line.trim_end().to_owned(),
        problem,
    })
}

fn parse_words(line: &str) -> Result<EventLine, Problem> {
    let mut words = line.split_ascii_whitespace();
    let first = words.next().ok_or(Problem::Empty)?;
    let (timestamp, event_word) = match EventType::from_word(first) {
        Some(_) => (None, first),
        None if first.starts_with(|c: char| c.is_ascii_digit()) => {
            if !is_timestamp(first) {
                return Err(Problem::BadTimestamp(first.to_owned()));
            }
            (
                Some(first.to_owned()),
                words.next().ok_or(Problem::MissingObject)?,
            )
        }
        None => return Err(Problem::UnknownEvent(first.to_owned())),
    };
    let event = EventType::from_word(event_word)
        .ok_or_else(|| Problem::UnknownEvent(event_word.to_owned()))?;
    let object_word = words.next().ok_or(Problem::MissingObject)?;
    if object_word == "-" {
        if event != EventType::Exists {
            return Err(Problem::DashAfter(event));
        }
        let rest: Vec<&str> = words.collect();
        if !rest.is_empty() {
            return Err(Problem::TrailingAfterDash(rest.join(" ")));
        }
        return Ok(EventLine {
            timestamp,
            event,
            body: Body::EndOfDump,
        });
    }
    let object = Object::from_word(object_word);
    let fields = Fields(words.map(parse_field).collect::<Result<_, _>>()?);
    for key in object.required() {
        if fields.get(key).is_none() {
            return Err(Problem::MissingField {
                object: object.as_str().to_owned(),
                key,
            });
        }
    }
    for (key, value) in fields.iter() {
        if NUMERIC_KEYS.contains(&key) && value.parse::<u32>().is_err() {
            return Err(Problem::NotANumber {
                key: key.to_owned(),
                value: value.to_owned(),
            });
        }
    }
    Ok(EventLine {
        timestamp,
        event,
        body: Body::Object { object, fields },
    })
}

fn parse_field(word: &str) -> Result<(String, String), Problem> {
    match word.split_once(':') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(Problem::NotKeyValue(word.to_owned())),
    }
}

/// `YYYY-MM-DDTHH:MM:SS` followed by fraction and zone characters only.
fn is_timestamp(word: &str) -> bool {
    let bytes = word.as_bytes();
    let shape = |i: usize, expect: u8| bytes.get(i) == Some(&expect);
    bytes.len() >= 19
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&i| bytes[i].is_ascii_digit())
        && shape(4, b'-')
        && shape(7, b'-')
        && shape(10, b'T')
        && shape(13, b':')
        && shape(16, b':')
        && bytes[19..]
            .iter()
            .all(|b| b.is_ascii_digit() || b"+-:.Z".contains(b))
}

#[cfg(test)]
mod tests {
    use super::super::captures;
    use super::*;

    fn object(line: &EventLine) -> (&Object, &Fields) {
        match &line.body {
            Body::Object { object, fields } => (object, fields),
            Body::EndOfDump => panic!("expected an object line: {line:?}"),
        }
    }

    #[test]
    fn every_line_of_every_events2_capture_parses() {
        let mut lines = 0;
        for capture in captures::events2() {
            let parsed: Vec<EventLine> = capture
                .stdout
                .lines()
                .map(|line| parse_line(line).unwrap_or_else(|e| panic!("{}: {e}", capture.name)))
                .collect();
            lines += parsed.len();
            assert!(
                parsed.iter().any(|line| line.body == Body::EndOfDump),
                "{}: every capture has the end of the initial dump",
                capture.name
            );
        }
        assert!(lines > 150, "only {lines} lines parsed");
    }

    #[test]
    fn a_timestamped_peer_device_line_keeps_every_field() {
        let line = parse_line(
            "2026-11-23T11:53:08.765358+00:00 exists peer-device name:r0 peer-node-id:0 \
             conn-name:peer volume:0 replication:Established peer-disk:UpToDate \
             resync-suspended:no received:339 sent:0 out-of-sync:0 pending:0 unacked:0\n",
        )
        .unwrap();
        assert_eq!(
            line.timestamp.as_deref(),
            Some("2026-11-23T11:53:08.765358+00:00")
        );
        assert_eq!(line.event, EventType::Exists);
        let (object, fields) = object(&line);
        assert_eq!(*object, Object::PeerDevice);
        assert_eq!(fields.get("peer-disk"), Some("UpToDate"));
        assert_eq!(fields.id("peer-node-id"), Some(0));
        assert_eq!(fields.number("received"), Some(339));
        assert_eq!(fields.iter().count(), 12);
    }

    #[test]
    fn the_end_of_the_dump_with_and_without_timestamp() {
        for text in ["exists -", "2026-11-23T11:53:08.773188+00:00 exists -"] {
            assert_eq!(parse_line(text).unwrap().body, Body::EndOfDump, "{text}");
        }
    }

    #[test]
    fn unknown_keys_and_objects_are_kept_not_errors() {
        let line = parse_line("change resource name:r0 role:Primary shiny-new-key:42").unwrap();
        assert_eq!(object(&line).1.get("shiny-new-key"), Some("42"));
        let line = parse_line("exists quorum-thing name:r0 votes:3 weird:a:b").unwrap();
        let (obj, fields) = object(&line);
        assert_eq!(*obj, Object::Other("quorum-thing".into()));
        assert_eq!(fields.get("weird"), Some("a:b"));
        // An unknown object need not have a name.
        assert!(parse_line("create gizmo size:1").is_ok());
    }

    /// Shapes from DRBD 9 (LINBIT's drbd-utils 9 with a DRBD 9 module).
    #[test]
    fn drbd9_lines_parse() {
        let lines = [
            "exists resource name:r0 role:Secondary suspended:no force-io-failures:no \
             may_promote:yes promotion_score:10103",
            "exists connection name:r0 peer-node-id:1 conn-name:node-b connection:Connected \
             role:Secondary congested:no ap-in-flight:0 rs-in-flight:0",
            "exists device name:r0 volume:0 minor:1000 disk:UpToDate client:no quorum:yes \
             open:no",
            "exists peer-device name:r0 peer-node-id:1 conn-name:node-b volume:0 \
             replication:Established peer-disk:UpToDate peer-client:no resync-suspended:no",
            "exists path name:r0 peer-node-id:1 conn-name:node-b \
             local:ipv4:192.0.2.1:7789 peer:ipv4:192.0.2.2:7789 established:yes",
            "call helper name:r0 peer-node-id:1 conn-name:node-b helper:disconnected",
            "response helper name:r0 peer-node-id:1 conn-name:node-b helper:disconnected \
             status:0",
            "2017-03-27T12:39:29.346495-07:00 change resource name:r0 may_promote:no",
        ];
        for text in lines {
            parse_line(text).unwrap_or_else(|e| panic!("{e}"));
        }
        let path = parse_line(lines[4]).unwrap();
        assert_eq!(*object(&path).0, Object::Path);
        assert_eq!(object(&path).1.get("local"), Some("ipv4:192.0.2.1:7789"));
    }

    #[test]
    fn malformed_lines_are_errors_naming_line_and_problem() {
        let cases: [(&str, Problem); 11] = [
            ("", Problem::Empty),
            ("   ", Problem::Empty),
            (
                "frobnicate resource name:r0",
                Problem::UnknownEvent("frobnicate".into()),
            ),
            (
                "2026-11-23 exists -",
                Problem::BadTimestamp("2026-11-23".into()),
            ),
            ("2026-11-23T11:53:08.765358+00:00", Problem::MissingObject),
            (
                "2026-11-23T11:53:08.765358+00:00 frob -",
                Problem::UnknownEvent("frob".into()),
            ),
            ("change", Problem::MissingObject),
            ("change -", Problem::DashAfter(EventType::Change)),
            ("exists - extra", Problem::TrailingAfterDash("extra".into())),
            (
                "change resource name:r0 role",
                Problem::NotKeyValue("role".into()),
            ),
            (
                "change resource name:r0 :x",
                Problem::NotKeyValue(":x".into()),
            ),
        ];
        for (text, problem) in cases {
            let error = parse_line(text).unwrap_err();
            assert_eq!(error.problem, problem, "{text:?}");
            assert_eq!(error.line, text.trim_end());
        }
        let error = parse_line("change device name:r0 volume:zero disk:UpToDate").unwrap_err();
        assert_eq!(
            error.problem,
            Problem::NotANumber {
                key: "volume".into(),
                value: "zero".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "drbdsetup events2 line \"change device name:r0 volume:zero disk:UpToDate\": \
             field volume:zero is not a number"
        );
        assert_eq!(
            parse_line("change device name:r0 disk:UpToDate")
                .unwrap_err()
                .problem,
            Problem::MissingField {
                object: "device".into(),
                key: "volume"
            }
        );
        assert_eq!(
            parse_line("change connection role:Primary")
                .unwrap_err()
                .problem,
            Problem::MissingField {
                object: "connection".into(),
                key: "name"
            }
        );
    }
}
