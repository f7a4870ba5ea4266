//! The file being parsed: turns byte spans of values into errors located by file, line
//! and column, and names the key a toml error is about.

use std::fmt;
use std::fmt::Debug;
use std::ops::{Range, RangeInclusive};
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ConfigError;

/// The file being parsed: turns spans into located errors.
pub(super) struct Source<'a> {
    pub(super) text: &'a str,
    pub(super) path: &'a Path,
}

impl Source<'_> {
    /// The directory that a relative `key_file` is relative to.
    pub(super) fn directory(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }

    /// An error at byte `offset` of the text.
    pub(super) fn error_at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        ConfigError {
            path: self.path.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            message: message.into(),
        }
    }

    /// `key = value: problem`, at `value`.
    pub(super) fn invalid<T: Debug>(
        &self,
        key: &str,
        value: &Spanned<T>,
        problem: impl fmt::Display,
    ) -> ConfigError {
        self.error_at(
            value.span().start,
            format!("{key} = {:?}: {problem}", value.get_ref()),
        )
    }

    /// `value` as a `T` within `range`.
    pub(super) fn integer<T>(
        &self,
        key: &str,
        value: &Spanned<i64>,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: TryFrom<i64> + PartialOrd + fmt::Display,
    {
        T::try_from(*value.get_ref())
            .ok()
            .filter(|number| range.contains(number))
            .ok_or_else(|| {
                self.invalid(
                    key,
                    value,
                    format!("must be {}..={}", range.start(), range.end()),
                )
            })
    }

    /// [`Self::integer`], or `default` when the key is absent.
    pub(super) fn optional<T>(
        &self,
        key: &str,
        value: &Option<Spanned<i64>>,
        range: RangeInclusive<T>,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T: TryFrom<i64> + PartialOrd + fmt::Display,
    {
        value
            .as_ref()
            .map_or(Ok(default), |value| self.integer(key, value, range))
    }

    /// A syntax or type error of the toml crate, with the key it is about when found.
    pub(super) fn toml_error(&self, error: &toml::de::Error) -> ConfigError {
        let span = error.span().unwrap_or(0..0);
        let (table, _) = DeTable::parse_recoverable(self.text);
        let key = (!span.is_empty())
            .then(|| key_in_table(table.get_ref(), "", &span))
            .flatten();
        let message = match key {
            Some(key) => format!("{key}: {}", error.message()),
            None => error.message().to_owned(),
        };
        self.error_at(span.start, message)
    }
}

/// The dotted path (`heartbeat.port`, `link[1].peer`) of the innermost key or value of
/// `table` whose span holds `span`.
fn key_in_table(table: &DeTable<'_>, prefix: &str, span: &Range<usize>) -> Option<String> {
    table.iter().find_map(|(key, value)| {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        if holds(&key.span(), span) {
            Some(path)
        } else {
            key_in_value(value, path, span)
        }
    })
}

fn key_in_value(value: &Spanned<DeValue<'_>>, path: String, span: &Range<usize>) -> Option<String> {
    let inner = match value.get_ref() {
        DeValue::Table(table) => key_in_table(table, &path, span),
        DeValue::Array(array) => array
            .iter()
            .enumerate()
            .find_map(|(index, item)| key_in_value(item, format!("{path}[{index}]"), span)),
        DeValue::String(_)
        | DeValue::Integer(_)
        | DeValue::Float(_)
        | DeValue::Boolean(_)
        | DeValue::Datetime(_) => None,
    };
    inner.or_else(|| holds(&value.span(), span).then_some(path))
}

fn holds(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}
