//! Schedules: when the next tick is.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use kiln_manifest::{CronTrigger, Manifest, ManifestError, Schedule};
use std::fmt;
use std::time::Duration;

/// A trigger's schedule, parsed.
#[derive(Clone, Debug)]
pub enum Plan {
    /// A cron expression, evaluated in UTC (as the plugin does).
    Cron { expression: String, cron: Box<Cron> },
    /// A fixed interval; the first tick is one interval after start.
    Interval(Duration),
}

/// Parses a cron expression as Spin's cron plugin does (croner, seconds first, day-of-month and
/// day-of-week both required to match), also accepting a trailing year and, beyond the plugin,
/// classic 5-field crontab lines (run at second 0).
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let fields = expression.split_whitespace().count();
    if !(5..=7).contains(&fields) {
        return Err(format!("a cron expression has 6 fields (sec min hour day-of-month month day-of-week) or 7 (with a year), not {fields}"));
    }
    let parser = CronParser::builder().seconds(Seconds::Optional).year(Year::Optional).dom_and_dow(true).build();
    parser.parse(expression).map_err(|err| err.to_string())
}

impl Plan {
    /// The plan of one `[[trigger.cron]]`; errors point at its `cron_expression` or `interval`.
    pub fn from_manifest(manifest: &Manifest, trigger: &CronTrigger) -> Result<Plan, ManifestError> {
        match &trigger.schedule {
            Schedule::Cron(expression) => match parse_cron(expression) {
                Ok(cron) => Ok(Plan::Cron { expression: expression.clone(), cron: Box::new(cron) }),
                Err(err) => Err(manifest.error_at(
                    &trigger.schedule_span,
                    format!("invalid cron expression `{expression}`: {err}"),
                    "fields are `sec min hour day-of-month month day-of-week [year]`, e.g. \"0 */5 * * * *\" (every five minutes)",
                )),
            },
            Schedule::Interval(interval) if interval.is_zero() => {
                Err(manifest.error_at(&trigger.schedule_span, "the interval must be longer than zero", "e.g. interval = \"30s\""))
            }
            Schedule::Interval(interval) => Ok(Plan::Interval(*interval)),
        }
    }

    /// The first tick strictly after `after`; `None` when there is none (a cron expression whose
    /// last year has passed).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Plan::Cron { cron, .. } => cron.find_next_occurrence(&after, false).ok(),
            Plan::Interval(interval) => chrono::Duration::from_std(*interval).ok().and_then(|d| after.checked_add_signed(d)),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plan::Cron { expression, .. } => write!(f, "`{expression}`"),
            Plan::Interval(interval) => write!(f, "every {}", humanize(*interval)),
        }
    }
}

fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}
