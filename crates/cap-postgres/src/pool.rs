//! Addresses, grants, the app's connection pools (one per address), and running statements.

use crate::types;
use crate::v4::{self, Column, DbError, ParameterValue, QueryError, RowSet};
use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Timeouts};
use kiln_outbound::{AllowedHosts, OutboundUrl};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::Host;
use tokio_postgres::types::ToSql;

/// Connections one app keeps per address, at most (in use or idle).
const MAX_POOL_SIZE: usize = 32;

/// How long Kiln waits for Postgres.
#[derive(Clone, Copy, Debug)]
pub struct PgTimeouts {
    /// Connecting (TCP, TLS, authentication), and waiting for a pooled connection to be free.
    pub connect: Duration,
}

impl Default for PgTimeouts {
    fn default() -> Self {
        PgTimeouts {
            connect: Duration::from_secs(5),
        }
    }
}

fn connection_failed(msg: impl std::fmt::Display) -> v4::Error {
    v4::Error::ConnectionFailed(msg.to_string())
}

/// The address as a connection configuration (a `postgres://` URL or `key=value` pairs).
fn parse_address(address: &str) -> Result<tokio_postgres::Config, v4::Error> {
    tokio_postgres::Config::from_str(address)
        .map_err(|e| connection_failed(format!("invalid Postgres address: {e}")))
}

/// Whether every host the address names is allowed as `postgres://host:port`. Unix sockets
/// never are: they are not network hosts the manifest can grant.
pub(crate) fn address_allowed(allowed: &AllowedHosts, address: &str) -> Result<(), v4::Error> {
    let config = parse_address(address)?;
    let ports = config.get_ports();
    let hosts = config.get_hosts();
    let denied = || {
        connection_failed(format!(
            "address {address} is not permitted: add `postgres://host:port` to the component's \
             allowed_outbound_hosts"
        ))
    };
    if hosts.is_empty() {
        return Err(denied());
    }
    for (i, host) in hosts.iter().enumerate() {
        let Host::Tcp(name) = host else {
            return Err(denied());
        };
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let name = if name.contains(':') { format!("[{name}]") } else { name.clone() };
        let url = OutboundUrl::parse(&format!("postgres://{name}:{port}")).map_err(|_| denied())?;
        if !allowed.allows(&url) {
            return Err(denied());
        }
    }
    Ok(())
}

/// The pools of one address, by extra CA root.
type PoolsByRoot = HashMap<Option<Arc<str>>, Pool>;

/// An app's pools, by address, then by the extra CA root a connection builder gave (`set-ca-root`;
/// `None` for a plain `open`). Nested, so finding a pool allocates nothing.
pub(crate) struct Pools {
    pools: Mutex<HashMap<String, PoolsByRoot>>,
    timeouts: PgTimeouts,
}

impl Pools {
    pub(crate) fn new(timeouts: PgTimeouts) -> Pools {
        Pools {
            pools: Mutex::default(),
            timeouts,
        }
    }

    /// A connection to `address` (already allowed), from its pool. `ca_root` (PEM, already
    /// checked by [`parse_ca_root`]) is trusted besides the webpki roots.
    pub(crate) async fn connect(&self, address: &str, ca_root: Option<&Arc<str>>) -> Result<Object, v4::Error> {
        let pool = self.pool(address, ca_root)?;
        pool.get()
            .await
            .map_err(|e| connection_failed(format!("cannot connect to Postgres: {e}")))
    }

    fn pool(&self, address: &str, ca_root: Option<&Arc<str>>) -> Result<Pool, v4::Error> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(address).and_then(|by_root| by_root.get(&ca_root.cloned())) {
            return Ok(pool.clone());
        }
        let pool = self.new_pool(address, ca_root)?;
        pools.entry(address.to_string()).or_default().insert(ca_root.cloned(), pool.clone());
        Ok(pool)
    }

    fn new_pool(&self, address: &str, ca_root: Option<&Arc<str>>) -> Result<Pool, v4::Error> {
        let mut config = parse_address(address)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.timeouts.connect);
        }
        // A connection whose socket closed is replaced; one a guest may have left in a
        // transaction never comes back (see `PgConnection`).
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = Manager::from_config(config, tls(ca_root)?, manager_config);
        let wait = Some(self.timeouts.connect);
        Pool::builder(manager)
            .max_size(MAX_POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts {
                wait,
                create: wait,
                recycle: wait,
            })
            .build()
            .map_err(|e| v4::Error::Other(format!("cannot make a connection pool: {e}")))
    }
}

/// TLS for addresses that ask for it (`sslmode=require`; `prefer`, the default, uses it when the
/// server offers it): rustls with ring and the webpki roots, plus `ca_root` if given.
fn tls(ca_root: Option<&Arc<str>>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, v4::Error> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = ca_root {
        for certificate in parse_ca_root(pem)? {
            roots.add(certificate).map_err(invalid_ca_root)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| v4::Error::Other(format!("cannot configure TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn invalid_ca_root(e: impl std::fmt::Display) -> v4::Error {
    v4::Error::Other(format!("invalid CA root certificate: {e} (expected one or more PEM `CERTIFICATE` blocks)"))
}

/// The certificates of a PEM text (`set-ca-root`'s argument): at least one, each well formed.
pub(crate) fn parse_ca_root(pem: &str) -> Result<Vec<CertificateDer<'static>>, v4::Error> {
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(invalid_ca_root)?;
    if certificates.is_empty() {
        return Err(invalid_ca_root("no certificate found"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for certificate in &certificates {
        roots.add(certificate.clone()).map_err(invalid_ca_root)?;
    }
    Ok(certificates)
}

/// Whether a statement leaves the session as it found it. Anything else (`BEGIN`, `SET`,
/// `LISTEN`, DDL, …) may leave a transaction or session state behind, so the connection is not
/// handed to another instance afterwards.
pub(crate) fn keeps_session_clean(statement: &str) -> bool {
    let first = statement
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "WITH" | "VALUES" | "TABLE" | "MERGE"
    )
}

fn query_failed(e: tokio_postgres::Error) -> v4::Error {
    let Some(db) = e.as_db_error() else {
        return v4::Error::QueryFailed(QueryError::Text(e.to_string()));
    };
    let mut extras = Vec::new();
    let mut extra = |name: &str, value: Option<&str>| {
        if let Some(value) = value {
            extras.push((name.to_string(), value.to_string()));
        }
    };
    extra("hint", db.hint());
    extra("schema", db.schema());
    extra("table", db.table());
    extra("column", db.column());
    extra("constraint", db.constraint());
    v4::Error::QueryFailed(QueryError::DbError(DbError {
        as_text: db.to_string(),
        severity: db.severity().to_string(),
        code: db.code().code().to_string(),
        message: db.message().to_string(),
        detail: db.detail().map(str::to_string),
        extras,
    }))
}

/// Prepares `statement` and checks the parameters against the types the server expects, so a
/// mismatch is `bad-parameter` before anything runs.
async fn prepare(
    client: &tokio_postgres::Client,
    statement: &str,
    params: &[types::SqlParam],
) -> Result<tokio_postgres::Statement, v4::Error> {
    let prepared = client.prepare(statement).await.map_err(query_failed)?;
    let expected = prepared.params();
    if expected.len() != params.len() {
        return Err(v4::Error::BadParameter(format!(
            "the statement takes {} parameters, {} were given",
            expected.len(),
            params.len()
        )));
    }
    let mut scratch = BytesMut::new();
    for (i, (param, ty)) in params.iter().zip(expected).enumerate() {
        scratch.clear();
        param.to_sql_checked(ty, &mut scratch).map_err(|e| {
            v4::Error::BadParameter(format!("parameter ${} (a {}): {e}", i + 1, ty.name()))
        })?;
    }
    Ok(prepared)
}

fn refs(params: &[types::SqlParam]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

pub(crate) async fn query(
    client: &tokio_postgres::Client,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<RowSet, v4::Error> {
    let params = types::params(params).map_err(v4::Error::BadParameter)?;
    let prepared = prepare(client, statement, &params).await?;
    let rows = client
        .query(&prepared, &refs(&params))
        .await
        .map_err(query_failed)?;
    let columns = prepared
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            data_type: types::data_type(c.type_()),
        })
        .collect();
    let rows = rows
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| types::column_value(row, i))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(v4::Error::ValueConversionFailed)?;
    Ok(RowSet { columns, rows })
}

pub(crate) async fn execute(
    client: &tokio_postgres::Client,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<u64, v4::Error> {
    let params = types::params(params).map_err(v4::Error::BadParameter)?;
    let prepared = prepare(client, statement, &params).await?;
    client
        .execute(&prepared, &refs(&params))
        .await
        .map_err(query_failed)
}
