//! `kiln apps list|show|rm`: the apps of a `kiln serve` host, through its admin API.

use crate::client::{AdminClient, App, AppList, ConnectArgs, SLOW_CALL_TIMEOUT, check_app_name};
use anyhow::Result;
use reqwest::Method;
use std::time::{Duration, UNIX_EPOCH};

#[derive(clap::Args)]
pub(crate) struct AppsArgs {
    #[command(subcommand)]
    command: AppsCommand,
}

#[derive(clap::Subcommand)]
enum AppsCommand {
    /// List the deployed apps: name, version, status, URL and request counts.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Show one app: URL, routes, limits and counters.
    Show(AppArgs),
    /// Remove an app: it stops taking requests, the ones in flight finish, and its data is deleted.
    #[command(alias = "remove")]
    Rm(AppArgs),
}

#[derive(clap::Args)]
struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct AppArgs {
    /// The app's name.
    name: String,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print the server's JSON (for `rm`: nothing, the server answers with no body).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: AppsArgs) -> Result<()> {
    match args.command {
        AppsCommand::List(args) => list(&args),
        AppsCommand::Show(args) => show(&args),
        AppsCommand::Rm(args) => remove(&args),
    }
}

fn list(args: &ListArgs) -> Result<()> {
    let client = AdminClient::connect(&args.connect)?;
    let answer = client.call(client.request(Method::GET, "/v1/apps"), "listing the apps", &client.wrong_address_hint())?;
    if args.json {
        println!("{}", answer.pretty_json());
        return Ok(());
    }
    let list: AppList = answer.parse("listing the apps")?;
    if list.apps.is_empty() {
        println!("No apps deployed on {}; deploy one with `kiln deploy`.", client.host());
        return Ok(());
    }
    print!("{}", apps_table(&list.apps));
    Ok(())
}

fn show(args: &AppArgs) -> Result<()> {
    check_app_name(&args.name)?;
    let client = AdminClient::connect(&args.connect)?;
    let what = format!("showing `{}`", args.name);
    let request = client.request(Method::GET, &format!("/v1/apps/{}", args.name));
    let answer = client.call(request, &what, &no_such_app_hint(&client))?;
    if args.json {
        println!("{}", answer.pretty_json());
        return Ok(());
    }
    print!("{}", details(&answer.parse::<App>(&what)?));
    Ok(())
}

fn remove(args: &AppArgs) -> Result<()> {
    check_app_name(&args.name)?;
    let client = AdminClient::connect(&args.connect)?;
    let request = client.request(Method::DELETE, &format!("/v1/apps/{}", args.name)).timeout(SLOW_CALL_TIMEOUT);
    let answer = client.call(request, &format!("removing `{}`", args.name), &no_such_app_hint(&client))?;
    if args.json {
        // A 204 has no body; whatever a server does send is passed on as it came.
        print!("{}", answer.body);
    } else {
        println!("Removed `{}`.", args.name);
    }
    Ok(())
}

/// A 404 for a named app most likely means a typo.
fn no_such_app_hint(client: &AdminClient) -> String {
    format!("`kiln apps list` shows the apps deployed on {}", client.host())
}

/// The `list` table: one row per app, columns as wide as their widest cell.
fn apps_table(apps: &[App]) -> String {
    let header = ["NAME", "VERSION", "STATUS", "URL", "REQUESTS", "ERRORS"].map(String::from).to_vec();
    let rows = apps.iter().map(|app| {
        vec![
            app.name.clone(),
            app.version.to_string(),
            app.status.clone(),
            app.url.clone(),
            app.requests_total.to_string(),
            app.errors_total.to_string(),
        ]
    });
    table(std::iter::once(header).chain(rows).collect())
}

/// The app's routes, each as a full URL with the component serving it.
pub(crate) fn routes_table(app: &App) -> String {
    if app.routes.is_empty() {
        return "No public routes.\n".to_string();
    }
    let base = app.url.trim_end_matches('/');
    let rows = app.routes.iter().map(|route| vec![format!("  {base}{}", route.route), format!("→ {}", route.component)]).collect();
    format!("Routes:\n{}", table(rows))
}

/// Left-aligned columns separated by two spaces, without trailing spaces.
fn table(rows: Vec<Vec<String>>) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|i| rows.iter().filter_map(|row| row.get(i)).map(|cell| cell.chars().count()).max().unwrap_or(0)).collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// Everything `show` knows about one app.
fn details(app: &App) -> String {
    let mut rows = vec![
        field("Name", &app.name),
        field("Version", &app.version.to_string()),
        field("Status", &app.status),
        field("URL", &app.url),
    ];
    if let Some(prefix) = &app.route_prefix {
        rows.push(field("Route prefix", &format!("{prefix} (on every host name)")));
    }
    if app.deployed_at > 0 {
        let when = UNIX_EPOCH + Duration::from_secs(app.deployed_at);
        rows.push(field("Deployed", &humantime::format_rfc3339_seconds(when).to_string()));
    }
    rows.push(field("Requests", &format!("{} ({} errors, {} in flight)", app.requests_total, app.errors_total, app.in_flight)));
    if !app.triggers.is_empty() {
        rows.push(field("Events", &format!("{} ({} failed)", app.events_total, app.event_errors_total)));
    }
    rows.push(field("Limits", &limits(app)));
    format!("{}{}{}", table(rows), routes_table(app), triggers_table(app))
}

fn field(name: &str, value: &str) -> Vec<String> {
    vec![format!("{name}:"), value.to_string()]
}

fn limits(app: &App) -> String {
    let limits = &app.limits;
    format!(
        "{} at once, {} MiB memory, {} timeout, {} bytes of request body",
        limits.max_concurrency,
        limits.memory_limit_mib,
        humantime::format_duration(Duration::from_millis(limits.request_timeout_ms)),
        limits.max_request_body
    )
}

/// The app's event triggers: a line per subscription or schedule, and the state of any that is not
/// well.
fn triggers_table(app: &App) -> String {
    let mut text = String::new();
    for trigger in &app.triggers {
        text.push_str(&format!("Trigger {}:{}\n", trigger.kind, if trigger.state == "ok" { String::new() } else { format!(" {}", trigger.state) }));
        for line in &trigger.subscriptions {
            text.push_str(&format!("  {line}\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(json: &str) -> App {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_list_table_aligns_its_columns() {
        let apps = [
            app(r#"{"name":"hello","version":3,"status":"loaded","url":"http://hello.localhost:3000/","requests_total":10,"errors_total":1}"#),
            app(r#"{"name":"a","version":12,"status":"idle","url":"http://a.localhost:3000/"}"#),
        ];
        let expected = "\
NAME   VERSION  STATUS  URL                           REQUESTS  ERRORS
hello  3        loaded  http://hello.localhost:3000/  10        1
a      12       idle    http://a.localhost:3000/      0         0
";
        assert_eq!(apps_table(&apps), expected);
    }

    #[test]
    fn details_show_everything_readably() {
        let shown = details(&app(
            r#"{"name":"hello","version":3,"status":"loaded","url":"http://hello.localhost:3000/","route_prefix":"/shop",
                "routes":[{"component":"hello","route":"/..."}],
                "limits":{"max_concurrency":100,"memory_limit_mib":128,"request_timeout_ms":30000,"max_request_body":10485760},
                "deployed_at":86400,"requests_total":10,"errors_total":1,"in_flight":2}"#,
        ));
        for needle in [
            "Name:          hello",
            "Route prefix:  /shop",
            "Deployed:      1970-01-02T00:00:00Z",
            "Requests:      10 (1 errors, 2 in flight)",
            "100 at once, 128 MiB memory, 30s timeout, 10485760 bytes of request body",
            "  http://hello.localhost:3000/...  → hello",
        ] {
            assert!(shown.contains(needle), "{needle:?} missing from:\n{shown}");
        }
    }

    #[test]
    fn details_list_event_triggers_and_their_state() {
        let shown = details(&app(
            r#"{"name":"orders","events_total":7,"event_errors_total":2,
                "triggers":[{"kind":"redis","subscriptions":["sub: redis channel `orders` on redis://db:6379"],"state":"redis redis://db:6379: connection lost (closed); reconnecting"},
                            {"kind":"cron","subscriptions":["tick: cron every 1s"],"state":"ok"}]}"#,
        ));
        for needle in [
            "7 (2 failed)",
            "Trigger redis: redis redis://db:6379: connection lost (closed); reconnecting\n  sub: redis channel `orders` on redis://db:6379\n",
            "Trigger cron:\n  tick: cron every 1s\n",
        ] {
            assert!(shown.contains(needle), "{needle:?} missing from:\n{shown}");
        }
    }

    #[test]
    fn an_app_without_routes_says_so() {
        assert_eq!(routes_table(&app(r#"{"name":"x"}"#)), "No public routes.\n");
    }
}
