//! `spin:postgres/postgres@4.2.0` (Spin 4, spin-sdk 7's `pg`): 4.0.0's types and functions (served by
//! the same code) plus a `connection-builder` (an extra CA root to trust) and `async func` variants,
//! which spin-sdk 7 calls for everything.
//!
//! An `async func` reaches the instance only inside `Accessor::with`, so each takes what it needs (the
//! app's pools, the connection's client) out of the instance and talks to Postgres without holding
//! it. `query-async` runs the statement to completion, then streams its rows to the guest, and its
//! final result is then always `ok`: every error is known before the first row.

use crate::convert::{v42_columns, v42_error, v42_params, v42_row, v42_row_set};
use crate::pool::{self, parse_ca_root};
use crate::{PgConnection, PgInstance, v4};
use kiln_engine::KilnState;
use std::sync::Arc;
use wasmtime::component::{Accessor, FutureReader, HasSelf, Linker, Resource, StreamReader};

mod bindings_v42 {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin-postgres@4.2.0"],
        inline: "
            package kiln:postgres-host-v42;
            world host { import spin:postgres/postgres@4.2.0; }
        ",
        imports: { default: async | trappable },
        with: {
            "spin:postgres/postgres.connection": crate::PgConnection,
            "spin:postgres/postgres.connection-builder": crate::host_v42::PgConnectionBuilder,
        },
    });
}

pub(crate) use bindings_v42::spin::postgres::postgres as v42;

/// Host functions get the instance's [`PgInstance`].
type PgData = HasSelf<PgInstance>;

pub(crate) fn link(linker: &mut Linker<KilnState>) -> anyhow::Result<()> {
    v42::add_to_linker::<KilnState, PgData>(linker, |s| s.capability::<PgInstance>())?;
    Ok(())
}

/// A `connection-builder`: the address, and the CA root `set-ca-root` gave (checked PEM).
pub struct PgConnectionBuilder {
    address: String,
    ca_root: Option<Arc<str>>,
}

type Outcome<T> = wasmtime::Result<Result<T, v42::Error>>;

/// The columns, a stream of the rows and the statement's final result, as `query-async` returns.
type RowStream = (Vec<v42::Column>, StreamReader<Vec<v42::DbValue>>, FutureReader<Result<(), v42::Error>>);

impl PgInstance {
    /// Opens a connection the way `build` does: the builder's address and CA root.
    async fn open_from(&mut self, builder: &Resource<PgConnectionBuilder>) -> Result<Resource<PgConnection>, v4::Error> {
        let (address, ca_root) = self.builder_settings(builder)?;
        let pools = self.may_open(&address)?;
        let client = pools.connect(&address, ca_root.as_ref()).await?;
        self.push(client)
    }

    fn builder_settings(&self, builder: &Resource<PgConnectionBuilder>) -> Result<(String, Option<Arc<str>>), v4::Error> {
        let builder = self.table.get(builder).map_err(|_| v4::Error::Other("the connection builder is gone".to_string()))?;
        Ok((builder.address.clone(), builder.ca_root.clone()))
    }
}

impl v42::Host for PgInstance {}

impl v42::HostConnectionBuilder for PgInstance {
    async fn new(&mut self, address: String) -> wasmtime::Result<Resource<PgConnectionBuilder>> {
        Ok(self.table.push(PgConnectionBuilder { address, ca_root: None })?)
    }

    async fn set_ca_root(&mut self, builder: Resource<PgConnectionBuilder>, certificate: String) -> Outcome<()> {
        if let Err(e) = parse_ca_root(&certificate) {
            return Ok(Err(v42_error(e)));
        }
        self.table.get_mut(&builder)?.ca_root = Some(Arc::from(certificate));
        Ok(Ok(()))
    }

    async fn build(&mut self, builder: Resource<PgConnectionBuilder>) -> Outcome<Resource<PgConnection>> {
        Ok(self.open_from(&builder).await.map_err(v42_error))
    }

    async fn drop(&mut self, builder: Resource<PgConnectionBuilder>) -> wasmtime::Result<()> {
        self.table.delete(builder)?;
        Ok(())
    }
}

impl v42::HostConnection for PgInstance {
    async fn open(&mut self, address: String) -> Outcome<Resource<PgConnection>> {
        Ok(PgInstance::open(self, address).await.map_err(v42_error))
    }

    async fn query(&mut self, conn: Resource<PgConnection>, statement: String, params: Vec<v42::ParameterValue>) -> Outcome<v42::RowSet> {
        Ok(PgInstance::query(self, &conn, statement, v42_params(params)).await.map(v42_row_set).map_err(v42_error))
    }

    async fn execute(&mut self, conn: Resource<PgConnection>, statement: String, params: Vec<v42::ParameterValue>) -> Outcome<u64> {
        Ok(PgInstance::execute(self, &conn, statement, v42_params(params)).await.map_err(v42_error))
    }

    async fn drop(&mut self, conn: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
    }
}

impl<T> v42::HostConnectionBuilderWithStore<T> for PgData {
    async fn build_async(accessor: &Accessor<T, Self>, builder: Resource<PgConnectionBuilder>) -> Outcome<Resource<PgConnection>> {
        let settings = accessor.with(|mut access| access.get().builder_settings(&builder));
        Ok(match settings {
            Ok((address, ca_root)) => open_async(accessor, address, ca_root).await.map_err(v42_error),
            Err(e) => Err(v42_error(e)),
        })
    }
}

impl<T> v42::HostConnectionWithStore<T> for PgData {
    async fn open_async(accessor: &Accessor<T, Self>, address: String) -> Outcome<Resource<PgConnection>> {
        Ok(open_async(accessor, address, None).await.map_err(v42_error))
    }

    async fn query_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<v42::ParameterValue>,
    ) -> Outcome<RowStream> {
        let ran = async {
            let client = accessor.with(|mut access| access.get().client(&conn, &statement))?;
            pool::query(client.client()?, &statement, v42_params(params)).await
        };
        let v4::RowSet { columns, rows } = match ran.await {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(v42_error(e))),
        };
        let rows: Vec<_> = rows.into_iter().map(v42_row).collect();
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, rows)?;
            let done = FutureReader::new(&mut access, std::future::ready(wasmtime::Result::<Result<(), v42::Error>>::Ok(Ok(()))))?;
            Ok(Ok((v42_columns(columns), rows, done)))
        })
    }

    async fn execute_async(accessor: &Accessor<T, Self>, conn: Resource<PgConnection>, statement: String, params: Vec<v42::ParameterValue>) -> Outcome<u64> {
        let ran = async {
            let client = accessor.with(|mut access| access.get().client(&conn, &statement))?;
            pool::execute(client.client()?, &statement, v42_params(params)).await
        };
        Ok(ran.await.map_err(v42_error))
    }
}

/// Connects without holding the instance: the grant and the per-instance limit are checked first,
/// the connection is handed to the guest after.
async fn open_async<T>(accessor: &Accessor<T, PgData>, address: String, ca_root: Option<Arc<str>>) -> Result<Resource<PgConnection>, v4::Error> {
    let pools = accessor.with(|mut access| access.get().may_open(&address))?;
    let client = pools.connect(&address, ca_root.as_ref()).await?;
    accessor.with(|mut access| {
        let instance = access.get();
        // Checked again: other opens may have finished while this one connected.
        instance.may_open(&address)?;
        instance.push(client)
    })
}
