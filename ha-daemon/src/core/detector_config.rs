//! Settings of the failure detector, with their defaults and their invariants.

use std::time::Duration;

use super::dampening::DampeningConfig;

/// Settings of the detector. Build with [`DetectorConfig::default`] or
/// [`DetectorConfig::for_interval`], then adjust; [`DetectorConfig::validate`] states
/// (and [`super::detector::Detector::new`] enforces) the invariants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Heartbeat (and echo) interval `T` of the peer. Default 5 ms; 1 ms to 1000 ms.
    pub interval: Duration,
    /// Shortest dead time. Default `3·T + 2 ms`; at least `2·T`.
    pub dead_after_min: Duration,
    /// Longest dead time, and the dead time before any measurement. Default `50·T`;
    /// at least `dead_after_min`, at most 60 s.
    pub dead_after_max: Duration,
    /// Consecutive good intervals a down link needs to come up. Default 3.
    pub rise: u32,
    /// Accepted probability that one inter-arrival gap ends in a false "link down".
    /// Default 10⁻⁶; between 0 (exclusive) and 0.01.
    pub false_down_target: f64,
    /// How long after the newest verified heartbeat kernel heartbeat counts still prove
    /// the peer's daemon alive. Default 1 s or `dead_after_min`, whichever is longer; at
    /// least `dead_after_min`, at most 60 s.
    pub unverified_grace: Duration,
    /// Flap dampening.
    pub dampening: DampeningConfig,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self::for_interval(Duration::from_millis(5))
    }
}

impl DetectorConfig {
    /// The defaults for heartbeat interval `interval`.
    pub fn for_interval(interval: Duration) -> Self {
        let dead_after_min = interval * 3 + Duration::from_millis(2);
        let intervals_in_two_seconds =
            u32::try_from(Duration::from_secs(2).as_nanos() / interval.as_nanos().max(1))
                .unwrap_or(u32::MAX);
        Self {
            interval,
            dead_after_min,
            dead_after_max: (interval * 50).max(dead_after_min),
            rise: 3,
            false_down_target: 1e-6,
            unverified_grace: Duration::from_secs(1).max(dead_after_min),
            dampening: DampeningConfig {
                max_rise: intervals_in_two_seconds.max(10),
                ..DampeningConfig::default()
            },
        }
    }

    /// Checks every invariant listed on the fields; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let Self {
            interval,
            dead_after_min,
            dead_after_max,
            rise,
            false_down_target,
            unverified_grace,
            dampening,
        } = *self;
        if !(Duration::from_millis(1)..=Duration::from_millis(1000)).contains(&interval) {
            return Err(ConfigError::new(
                "interval",
                format!("must be between 1 ms and 1000 ms, got {interval:?}"),
            ));
        }
        if dead_after_min < interval * 2 {
            return Err(ConfigError::new(
                "dead_after_min",
                format!(
                    "must be at least two intervals ({:?}), got {dead_after_min:?}",
                    interval * 2
                ),
            ));
        }
        if dead_after_max < dead_after_min || dead_after_max > Duration::from_secs(60) {
            return Err(ConfigError::new(
                "dead_after_max",
                format!(
                    "must be between dead_after_min ({dead_after_min:?}) and 60 s, got {dead_after_max:?}"
                ),
            ));
        }
        if rise == 0 {
            return Err(ConfigError::new("rise", "must be at least 1"));
        }
        if !(false_down_target > 0.0 && false_down_target <= 0.01) {
            return Err(ConfigError::new(
                "false_down_target",
                format!("must be above 0 and at most 0.01, got {false_down_target}"),
            ));
        }
        if unverified_grace < dead_after_min || unverified_grace > Duration::from_secs(60) {
            return Err(ConfigError::new(
                "unverified_grace",
                format!(
                    "must be between dead_after_min ({dead_after_min:?}) and 60 s, got {unverified_grace:?}"
                ),
            ));
        }
        dampening.validate()?;
        if dampening.max_rise < rise {
            return Err(ConfigError::new(
                "dampening.max_rise",
                format!("must be at least rise ({rise}), got {}", dampening.max_rise),
            ));
        }
        Ok(())
    }
}

/// A configuration value the detector cannot work with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct ConfigError {
    /// The field, as named in the config file (e.g. `dampening.half_life`).
    pub field: &'static str,
    /// What is wrong, with the value found.
    pub problem: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DetectorConfig {
        DetectorConfig::default()
    }

    #[test]
    fn defaults_are_valid_and_scale_with_the_interval() {
        let config = config();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.interval, Duration::from_millis(5));
        assert_eq!(config.dead_after_min, Duration::from_millis(17));
        assert_eq!(config.dead_after_max, Duration::from_millis(250));
        assert_eq!(config.dampening.max_rise, 400);
        for interval in [1, 10, 100, 1000] {
            let config = DetectorConfig::for_interval(Duration::from_millis(interval));
            assert_eq!(config.validate(), Ok(()), "{interval} ms");
        }
    }

    #[test]
    fn validation_names_the_field() {
        let field = |edit: fn(&mut DetectorConfig)| {
            let mut config = config();
            edit(&mut config);
            config.validate().unwrap_err().field
        };
        assert_eq!(field(|c| c.interval = Duration::ZERO), "interval");
        assert_eq!(
            field(|c| c.interval = Duration::from_millis(1001)),
            "interval"
        );
        assert_eq!(
            field(|c| c.dead_after_min = Duration::from_millis(9)),
            "dead_after_min"
        );
        assert_eq!(
            field(|c| c.dead_after_max = Duration::from_millis(16)),
            "dead_after_max"
        );
        assert_eq!(
            field(|c| c.dead_after_max = Duration::from_secs(61)),
            "dead_after_max"
        );
        assert_eq!(field(|c| c.rise = 0), "rise");
        assert_eq!(field(|c| c.false_down_target = 0.0), "false_down_target");
        assert_eq!(
            field(|c| c.false_down_target = f64::NAN),
            "false_down_target"
        );
        assert_eq!(field(|c| c.false_down_target = 0.5), "false_down_target");
        assert_eq!(
            field(|c| c.unverified_grace = Duration::from_millis(16)),
            "unverified_grace"
        );
        assert_eq!(
            field(|c| c.dampening.half_life = Duration::ZERO),
            "dampening.half_life"
        );
        assert_eq!(field(|c| c.dampening.max_rise = 2), "dampening.max_rise");
    }
}
