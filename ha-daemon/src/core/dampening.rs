//! Flap dampening for one link: a penalty per up/down transition that decays with a
//! half-life, and the `rise` requirement it implies.
//!
//! Every transition of the link (up to down, down to up) adds
//! `penalty_per_transition`, capped at `max_penalty`. The penalty halves every
//! `half_life`. While it is at or below `threshold` the link needs the configured `rise`
//! good intervals to come up; above it, every further transition's worth of penalty
//! doubles the requirement:
//!
//! ```text
//! rise_required = min(max_rise, ⌈rise · 2^((penalty − threshold) / penalty_per_transition)⌉)
//! ```
//!
//! With the defaults (1 per transition, half-life 30 s, threshold 4, cap 16) a link that
//! goes down and up twice within a minute is dampened; one that flaps every few seconds
//! reaches the cap and needs `max_rise` good intervals (2 s at 5 ms) in a row, so it stays
//! down through shorter good spells. A link that stays clean is back to the plain `rise`
//! at most `half_life · log2(max_penalty / threshold)` = 60 s after its last transition.
//!
//! Dampening only ever delays a link coming *up*. Going down is never delayed, and the
//! detector declares the peer lost from silence alone, so dampening cannot delay that.

use std::time::Duration;

use super::detector_config::ConfigError;
use super::time::Instant;

/// Settings of flap dampening (see the module doc for the formula).
///
/// Invariants checked by [`DampeningConfig::validate`]: every number finite and
/// positive, `max_penalty > threshold`, `half_life ≥ 1 ms`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DampeningConfig {
    /// Penalty added by one transition. Default 1.
    pub penalty_per_transition: f64,
    /// Time for the penalty to halve. Default 30 s.
    pub half_life: Duration,
    /// Above this penalty the `rise` requirement grows. Default 4 (two quick flaps).
    pub threshold: f64,
    /// The penalty never exceeds this, which bounds the time to recover. Default 16.
    pub max_penalty: f64,
    /// The `rise` requirement never exceeds this many intervals. Default 400 (2 s at the
    /// default 5 ms interval).
    pub max_rise: u32,
}

impl Default for DampeningConfig {
    fn default() -> Self {
        Self {
            penalty_per_transition: 1.0,
            half_life: Duration::from_secs(30),
            threshold: 4.0,
            max_penalty: 16.0,
            max_rise: 400,
        }
    }
}

impl DampeningConfig {
    /// Checks the invariants; the error names the offending field (under `dampening.`)
    /// and says what is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let Self {
            penalty_per_transition,
            half_life,
            threshold,
            max_penalty,
            max_rise,
        } = *self;
        let positive = |field: &'static str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(ConfigError::new(
                    field,
                    format!("must be a positive number, got {value}"),
                ))
            }
        };
        positive("dampening.penalty_per_transition", penalty_per_transition)?;
        positive("dampening.threshold", threshold)?;
        positive("dampening.max_penalty", max_penalty)?;
        if max_penalty <= threshold {
            return Err(ConfigError::new(
                "dampening.max_penalty",
                format!("must be above dampening.threshold ({threshold}), got {max_penalty}"),
            ));
        }
        if half_life < Duration::from_millis(1) {
            return Err(ConfigError::new(
                "dampening.half_life",
                format!("must be at least 1 ms, got {half_life:?}"),
            ));
        }
        if max_rise == 0 {
            return Err(ConfigError::new("dampening.max_rise", "must be at least 1"));
        }
        Ok(())
    }
}

/// The decaying flap penalty of one link.
///
/// Invariant: `0 ≤ penalty ≤ max_penalty` as of `updated`; it only decays between
/// transitions.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Dampening {
    penalty: f64,
    updated: Instant,
}

impl Dampening {
    /// No penalty.
    pub fn new() -> Self {
        Self::default()
    }

    /// The penalty at `now`, decayed since the last transition. A `now` before the last
    /// transition counts as no time passed.
    pub fn penalty(&self, now: Instant, config: &DampeningConfig) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated);
        self.penalty * (-elapsed.as_secs_f64() / config.half_life.as_secs_f64()).exp2()
    }

    /// Adds the penalty of one transition at `now`.
    pub fn record_transition(&mut self, now: Instant, config: &DampeningConfig) {
        let decayed = self.penalty(now, config);
        self.penalty = (decayed + config.penalty_per_transition).min(config.max_penalty);
        self.updated = self.updated.max(now);
    }

    /// How many good intervals the link needs to come up at `now`, given the configured
    /// `rise`. Never below `rise`; never above `max(rise, max_rise)`.
    pub fn rise_required(&self, now: Instant, rise: u32, config: &DampeningConfig) -> u32 {
        let excess = self.penalty(now, config) - config.threshold;
        if excess <= 0.0 {
            return rise;
        }
        let factor = (excess / config.penalty_per_transition).exp2();
        let required = (f64::from(rise) * factor).ceil();
        if required >= f64::from(config.max_rise) {
            config.max_rise.max(rise)
        } else {
            (required as u32).max(rise)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Instant {
        Instant::from_nanos(s * 1_000_000_000)
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(DampeningConfig::default().validate(), Ok(()));
    }

    #[test]
    fn validation_names_the_field() {
        let bad = |edit: fn(&mut DampeningConfig)| {
            let mut config = DampeningConfig::default();
            edit(&mut config);
            config.validate().unwrap_err().field
        };
        assert_eq!(
            bad(|c| c.penalty_per_transition = 0.0),
            "dampening.penalty_per_transition"
        );
        assert_eq!(bad(|c| c.threshold = f64::NAN), "dampening.threshold");
        assert_eq!(bad(|c| c.max_penalty = -1.0), "dampening.max_penalty");
        assert_eq!(bad(|c| c.max_penalty = 4.0), "dampening.max_penalty");
        assert_eq!(bad(|c| c.half_life = Duration::ZERO), "dampening.half_life");
        assert_eq!(bad(|c| c.max_rise = 0), "dampening.max_rise");
    }

    fn ten_second_half_life() -> DampeningConfig {
        DampeningConfig {
            half_life: Duration::from_secs(10),
            ..DampeningConfig::default()
        }
    }

    #[test]
    fn penalty_halves_every_half_life() {
        let config = ten_second_half_life();
        let mut dampening = Dampening::new();
        for _ in 0..8 {
            dampening.record_transition(secs(100), &config);
        }
        assert_eq!(dampening.penalty(secs(100), &config), 8.0);
        assert!((dampening.penalty(secs(110), &config) - 4.0).abs() < 1e-9);
        assert!((dampening.penalty(secs(120), &config) - 2.0).abs() < 1e-9);
        assert_eq!(
            dampening.penalty(secs(50), &config),
            8.0,
            "time before the last transition counts as none"
        );
    }

    #[test]
    fn penalty_is_capped() {
        let config = DampeningConfig::default();
        let mut dampening = Dampening::new();
        for _ in 0..100 {
            dampening.record_transition(secs(1), &config);
        }
        assert_eq!(dampening.penalty(secs(1), &config), config.max_penalty);
    }

    #[test]
    fn rise_doubles_per_transition_above_the_threshold_and_recovers() {
        let config = ten_second_half_life();
        let mut dampening = Dampening::new();
        let rise = 3;
        for _ in 0..4 {
            dampening.record_transition(secs(0), &config);
        }
        assert_eq!(
            dampening.rise_required(secs(0), rise, &config),
            3,
            "at threshold"
        );
        dampening.record_transition(secs(0), &config);
        assert_eq!(dampening.rise_required(secs(0), rise, &config), 6);
        dampening.record_transition(secs(0), &config);
        assert_eq!(dampening.rise_required(secs(0), rise, &config), 12);
        for _ in 0..20 {
            dampening.record_transition(secs(0), &config);
        }
        assert_eq!(
            dampening.rise_required(secs(0), rise, &config),
            config.max_rise
        );
        // 16 → 4 takes two half-lives.
        assert!(dampening.rise_required(secs(19), rise, &config) > rise);
        assert_eq!(dampening.rise_required(secs(20), rise, &config), rise);
    }

    #[test]
    fn with_the_defaults_a_capped_penalty_is_forgiven_within_a_minute() {
        let config = DampeningConfig::default();
        let mut dampening = Dampening::new();
        for _ in 0..50 {
            dampening.record_transition(secs(0), &config);
        }
        assert_eq!(
            dampening.rise_required(secs(0), 3, &config),
            config.max_rise
        );
        assert!(dampening.rise_required(secs(59), 3, &config) > 3);
        assert_eq!(dampening.rise_required(secs(60), 3, &config), 3);
    }

    #[test]
    fn rise_is_never_below_the_configured_rise() {
        let config = DampeningConfig {
            max_rise: 2,
            ..DampeningConfig::default()
        };
        let mut dampening = Dampening::new();
        for _ in 0..10 {
            dampening.record_transition(secs(0), &config);
        }
        assert_eq!(dampening.rise_required(secs(0), 5, &config), 5);
    }
}
