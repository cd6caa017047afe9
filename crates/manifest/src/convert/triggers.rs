//! `[[trigger.<type>]]` tables → typed triggers, including Spin's naming of inline components.

use std::collections::HashSet;
use std::time::Duration;

use indexmap::IndexMap;
use toml::Spanned;

use super::{Cx, Result, Triggers, component};
use crate::error::Span;
use crate::model::*;
use crate::names::is_valid_component_id;
use crate::raw::*;

pub(crate) struct TriggerBuilder<'a> {
    cx: &'a Cx,
    components: &'a mut IndexMap<String, Component>,
    app_vars: &'a IndexMap<String, Variable>,
    /// Trigger ids as Spin would assign them; only used to name inline components like Spin.
    spin_ids: HashSet<String>,
    /// Component references, checked once all inline components exist.
    refs: Vec<(String, Span)>,
    out: Triggers,
}

impl<'a> TriggerBuilder<'a> {
    pub(crate) fn new(
        cx: &'a Cx,
        components: &'a mut IndexMap<String, Component>,
        app_vars: &'a IndexMap<String, Variable>,
    ) -> Self {
        TriggerBuilder {
            cx,
            components,
            app_vars,
            spin_ids: HashSet::new(),
            refs: Vec::new(),
            out: Triggers::default(),
        }
    }

    pub(crate) fn build(&mut self, raw: RawTriggers) -> Result<()> {
        self.collect_explicit_ids(&raw)?;
        for (_, list) in raw.0 {
            let mut counter = 1;
            match list {
                RawTriggerList::Http(ts) => {
                    for t in ts {
                        let t = self.http(t.into_inner(), &mut counter)?;
                        self.out.http.push(t);
                    }
                }
                RawTriggerList::Redis(ts) => {
                    for t in ts {
                        let t = self.redis(t, &mut counter)?;
                        self.out.redis.push(t);
                    }
                }
                RawTriggerList::Nats(ts) => {
                    for t in ts {
                        let t = self.nats(t, &mut counter)?;
                        self.out.nats.push(t);
                    }
                }
                RawTriggerList::Cron(ts) => {
                    for t in ts {
                        let t = self.cron(t, &mut counter)?;
                        self.out.cron.push(t);
                    }
                }
                RawTriggerList::Directory(ts) => {
                    for t in ts {
                        let t = self.directory(t, &mut counter)?;
                        self.out.directory.push(t);
                    }
                }
            }
        }
        Ok(())
    }

    fn collect_explicit_ids(&mut self, raw: &RawTriggers) -> Result<()> {
        for (_, list) in &raw.0 {
            let ids: Vec<&Spanned<String>> = match list {
                RawTriggerList::Http(ts) => {
                    ts.iter().filter_map(|t| t.get_ref().id.as_ref()).collect()
                }
                RawTriggerList::Redis(ts) => {
                    ts.iter().filter_map(|t| t.get_ref().id.as_ref()).collect()
                }
                RawTriggerList::Nats(ts) => {
                    ts.iter().filter_map(|t| t.get_ref().id.as_ref()).collect()
                }
                RawTriggerList::Cron(ts) => {
                    ts.iter().filter_map(|t| t.get_ref().id.as_ref()).collect()
                }
                RawTriggerList::Directory(ts) => {
                    ts.iter().filter_map(|t| t.get_ref().id.as_ref()).collect()
                }
            };
            for id in ids {
                if !self.spin_ids.insert(id.get_ref().clone()) {
                    let msg = format!("duplicate trigger id `{}`", id.get_ref());
                    return Err(self.cx.err(
                        id.span(),
                        msg,
                        "trigger ids must be unique across all triggers; rename one",
                    ));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<Triggers> {
        for (id, span) in &self.refs {
            if !self.components.contains_key(id) {
                let known: Vec<&str> = self.components.keys().map(String::as_str).collect();
                let msg = format!("trigger refers to component `{id}`, which is not defined");
                let help = format!(
                    "define [component.{id}] or use one of: {}",
                    known.join(", ")
                );
                return Err(self.cx.err(*span, msg, help));
            }
        }
        Ok(self.out)
    }

    /// Spin's trigger id for a trigger: explicit, else `<component>-<type>-trigger`, else
    /// `<type>-trigger<N>`.
    fn spin_trigger_id(
        &mut self,
        kind: TriggerKind,
        id: &Option<Spanned<String>>,
        comp: &RawComponentRef,
        counter: &mut u32,
    ) -> String {
        if let Some(id) = id.as_ref().filter(|id| !id.get_ref().is_empty()) {
            return id.get_ref().clone();
        }
        if let RawComponentRef::Id(c) = comp {
            let natural = format!("{c}-{}-trigger", kind.name());
            if self.spin_ids.insert(natural.clone()) {
                return natural;
            }
        }
        loop {
            let candidate = format!("{}-trigger{counter}", kind.name());
            if self.spin_ids.insert(candidate.clone()) {
                return candidate;
            }
            *counter += 1;
        }
    }

    /// Spin names an inline component `<trigger-id>-component`, else `inline-component<N>`.
    fn inline_id(&self, trigger_id: &str) -> String {
        let natural = format!("{trigger_id}-component");
        if is_valid_component_id(&natural) && !self.components.contains_key(&natural) {
            return natural;
        }
        (1..)
            .map(|n| format!("inline-component{n}"))
            .find(|id| !self.components.contains_key(id))
            .expect("unbounded")
    }

    fn component_ref(
        &mut self,
        kind: TriggerKind,
        id: &Option<Spanned<String>>,
        raw: Spanned<RawComponentRef>,
        counter: &mut u32,
    ) -> Result<(String, Span)> {
        let trigger_id = self.spin_trigger_id(kind, id, raw.get_ref(), counter);
        let span: Span = raw.span().into();
        match raw.into_inner() {
            RawComponentRef::Id(component) => {
                self.refs.push((component.clone(), span));
                Ok((component, span))
            }
            RawComponentRef::Inline(raw_component) => {
                let component_id = self.inline_id(&trigger_id);
                let c = component(self.cx, component_id.clone(), *raw_component, self.app_vars)?;
                self.components.insert(component_id.clone(), c);
                Ok((component_id, span))
            }
        }
    }

    fn http(&mut self, t: RawHttpTrigger, counter: &mut u32) -> Result<HttpTrigger> {
        let executor = executor(self.cx, t.executor)?;
        let route = route(self.cx, t.route)?;
        let (component, component_span) =
            self.component_ref(TriggerKind::Http, &t.id, t.component, counter)?;
        Ok(HttpTrigger {
            id: t.id.map(Spanned::into_inner),
            route,
            component,
            component_span,
            executor,
        })
    }

    fn redis(&mut self, t: Spanned<RawRedisTrigger>, counter: &mut u32) -> Result<RedisTrigger> {
        let t = t.into_inner();
        let channel = non_empty(
            self.cx,
            t.channel,
            "redis trigger `channel`",
            "channel = \"messages\"",
        )?;
        let (component, component_span) =
            self.component_ref(TriggerKind::Redis, &t.id, t.component, counter)?;
        Ok(RedisTrigger {
            id: t.id.map(Spanned::into_inner),
            channel,
            address: t.address,
            component,
            component_span,
        })
    }

    fn nats(&mut self, t: Spanned<RawNatsTrigger>, counter: &mut u32) -> Result<NatsTrigger> {
        let t = t.into_inner();
        let subject = non_empty(
            self.cx,
            t.subject,
            "nats trigger `subject`",
            "subject = \"orders.>\"",
        )?;
        let (component, component_span) =
            self.component_ref(TriggerKind::Nats, &t.id, t.component, counter)?;
        Ok(NatsTrigger {
            id: t.id.map(Spanned::into_inner),
            subject,
            queue_group: t.queue_group,
            durable: t.durable,
            component,
            component_span,
        })
    }

    fn cron(&mut self, t: Spanned<RawCronTrigger>, counter: &mut u32) -> Result<CronTrigger> {
        let trigger_span = t.span();
        let t = t.into_inner();
        let (schedule, schedule_span) = match (t.cron_expression, t.interval) {
            (Some(expr), None) => (
                Schedule::Cron(cron_expression(self.cx, &expr)?),
                expr.span().into(),
            ),
            (None, Some(interval)) => (
                Schedule::Interval(parse_interval(self.cx, &interval)?),
                interval.span().into(),
            ),
            (Some(_), Some(interval)) => {
                let msg = "cron trigger has both `cron_expression` and `interval`";
                return Err(self.cx.err(interval.span(), msg, "keep only one of them"));
            }
            (None, None) => {
                let msg = "cron trigger needs `cron_expression` or `interval`";
                let help = "add e.g. `interval = \"30s\"` or `cron_expression = \"0 */5 * * * *\"`";
                return Err(self.cx.err(trigger_span, msg, help));
            }
        };
        let (component, component_span) =
            self.component_ref(TriggerKind::Cron, &t.id, t.component, counter)?;
        Ok(CronTrigger {
            id: t.id.map(Spanned::into_inner),
            schedule,
            schedule_span,
            component,
            component_span,
        })
    }
}

impl TriggerBuilder<'_> {
    fn directory(&mut self, t: Spanned<RawDirectoryTrigger>, counter: &mut u32) -> Result<DirectoryTrigger> {
        let t = t.into_inner();
        let path_span = t.path.span();
        let path = self.trigger_dir(t.path, "path", "path = \"inbox\"")?;
        let output_span = t.output.span();
        let output = self.trigger_dir(t.output, "output", "output = \"outbox\"")?;
        if output.starts_with(&path) || path.starts_with(&output) {
            return Err(self.cx.err(
                output_span,
                "directory trigger `output` must be apart from its watched `path` (neither inside the other)",
                "write the results to a sibling directory, e.g. `path = \"inbox\"`, `output = \"outbox\"`",
            ));
        }
        let pattern = match t.pattern {
            Some(pattern) => {
                if let Err(err) = glob::Pattern::new(pattern.get_ref()) {
                    return Err(self.cx.err(
                        pattern.span(),
                        format!("invalid file name pattern `{}`: {err}", pattern.get_ref()),
                        "write a glob over file names, e.g. `pattern = \"*.csv\"`",
                    ));
                }
                if pattern.get_ref().contains('/') {
                    return Err(self.cx.err(
                        pattern.span(),
                        "directory trigger `pattern` matches file names, not paths",
                        "remove the `/`: only the files directly in `path` are watched",
                    ));
                }
                Some(pattern.into_inner())
            }
            None => None,
        };
        let (component, component_span) =
            self.component_ref(TriggerKind::Directory, &t.id, t.component, counter)?;
        Ok(DirectoryTrigger {
            id: t.id.map(Spanned::into_inner),
            path,
            path_span: path_span.into(),
            pattern,
            output,
            component,
            component_span,
        })
    }

    /// A directory of a directory trigger, absolute (relative to the manifest's directory).
    fn trigger_dir(&self, value: Spanned<String>, key: &str, example: &str) -> Result<std::path::PathBuf> {
        let span = value.span();
        let written = non_empty(self.cx, value, &format!("directory trigger `{key}`"), example)?;
        let path = super::normalize(&self.cx.dir.join(&written));
        if path == self.cx.dir {
            return Err(self.cx.err(
                span,
                format!("directory trigger `{key}` must not be the manifest's own directory"),
                format!("name a directory of its own, e.g. `{example}`"),
            ));
        }
        Ok(path)
    }
}

fn non_empty(cx: &Cx, value: Spanned<String>, what: &str, example: &str) -> Result<String> {
    if value.get_ref().trim().is_empty() {
        return Err(cx.err(
            value.span(),
            format!("{what} must not be empty"),
            format!("write it like `{example}`"),
        ));
    }
    Ok(value.into_inner())
}

fn route(cx: &Cx, raw: Spanned<RawRoute>) -> Result<HttpRoute> {
    let span = raw.span();
    match raw.into_inner() {
        RawRoute::Path(route) if route.starts_with('/') => Ok(HttpRoute::Path {
            route,
            span: span.into(),
        }),
        RawRoute::Path(route) => {
            let msg = format!("route `{route}` must start with `/`");
            Err(cx.err(span, msg, format!("write it as \"/{route}\"")))
        }
        RawRoute::Private(p) if p.private => Ok(HttpRoute::Private),
        RawRoute::Private(_) => {
            let help = "use `route = { private = true }` or a path like \"/api/...\"";
            Err(cx.err(
                span,
                "`route = { private = false }` does not declare a route",
                help,
            ))
        }
    }
}

const EXECUTOR_HELP: &str = "Kiln runs `executor = { type = \"http\" }` (alias `spin`, the default) and \
    `{ type = \"wagi\", entrypoint = \"_start\", argv = \"${SCRIPT_NAME} ${ARGS}\" }`";

/// `executor = { type = "http" | "spin" | "wagi", … }`, as Spin's manifest has it.
fn executor(cx: &Cx, executor: Option<Spanned<toml::Value>>) -> Result<HttpExecutor> {
    let Some(executor) = executor else {
        return Ok(HttpExecutor::Http);
    };
    let span = executor.span();
    let fail = |msg: String, help: &str| Err(cx.err(span.clone(), msg, help));
    let Some(table) = executor.get_ref().as_table() else {
        return fail("`executor` must be a table with a `type`".into(), EXECUTOR_HELP);
    };
    let kind = table.get("type").and_then(|v| v.as_str());
    let extra = |allowed: &[&str]| table.keys().find(|key| key.as_str() != "type" && !allowed.contains(&key.as_str())).cloned();
    match kind {
        Some(kind @ ("http" | "spin")) => match extra(&[]) {
            None => Ok(HttpExecutor::Http),
            Some(key) => fail(format!("the `{kind}` executor takes no `{key}`"), "write `executor = { type = \"http\" }`"),
        },
        Some("wagi") => {
            if let Some(key) = extra(&["entrypoint", "argv"]) {
                return fail(format!("unknown key `{key}` in the `wagi` executor"), EXECUTOR_HELP);
            }
            let text = |key: &str, default: String| match table.get(key) {
                None => Ok(default),
                Some(toml::Value::String(value)) => Ok(value.clone()),
                Some(_) => Err(cx.err(span.clone(), format!("the `wagi` executor's `{key}` must be a string"), EXECUTOR_HELP)),
            };
            let defaults = WagiExecutor::default();
            let wagi = WagiExecutor { entrypoint: text("entrypoint", defaults.entrypoint)?, argv: text("argv", defaults.argv)? };
            if wagi.entrypoint != "_start" {
                return fail(
                    format!("the `wagi` executor's entrypoint `{}` is not supported", wagi.entrypoint),
                    "Kiln runs a WAGI module's `_start` (as Spin does, through `wasi:cli/run`): remove `entrypoint`",
                );
            }
            Ok(HttpExecutor::Wagi(wagi))
        }
        Some("wasip3-unstable") => fail(
            "the `wasip3-unstable` executor (spin-sdk 5's WASI 0.3 preview) is not supported; Spin has dropped it too".into(),
            "rebuild the component with spin-sdk 7 (WASI 0.3) and remove `executor`: Kiln finds WASI 0.3 handlers by their export",
        ),
        Some(other) => fail(format!("unknown executor type `{other}`"), EXECUTOR_HELP),
        None => fail("`executor` must be a table with a `type`".into(), EXECUTOR_HELP),
    }
}

/// Only the shape is checked (5 to 7 fields); the cron trigger parses the expression itself and
/// reports through `Manifest::error_at(schedule_span)`.
fn cron_expression(cx: &Cx, expr: &Spanned<String>) -> Result<String> {
    let fields = expr.get_ref().split_whitespace().count();
    if (5..=7).contains(&fields) {
        return Ok(expr.get_ref().clone());
    }
    let msg = format!(
        "cron expression `{}` has {fields} fields; expected 5 to 7",
        expr.get_ref()
    );
    Err(cx.err(
        expr.span(),
        msg,
        "e.g. `cron_expression = \"0 */5 * * * *\"` (sec min hour day month weekday)",
    ))
}

/// `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"2d"`: a positive integer and one unit.
fn parse_interval(cx: &Cx, raw: &Spanned<String>) -> Result<Duration> {
    let text = raw.get_ref().trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let millis_per_unit = match unit.trim() {
        "ms" => Some(1),
        "s" => Some(1_000),
        "m" => Some(60_000),
        "h" => Some(3_600_000),
        "d" => Some(86_400_000),
        _ => None,
    };
    let millis = number
        .parse::<u64>()
        .ok()
        .zip(millis_per_unit)
        .and_then(|(n, per)| n.checked_mul(per));
    match millis {
        Some(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => {
            let msg = format!("invalid interval `{}`", raw.get_ref());
            Err(cx.err(
                raw.span(),
                msg,
                "write a positive number and a unit (ms, s, m, h, d), like \"30s\" or \"5m\"",
            ))
        }
    }
}
