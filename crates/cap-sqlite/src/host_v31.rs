//! `spin:sqlite/sqlite@3.1.0`: 3.0.0's functions (served by the same code) plus `async func`
//! variants. An `async func` reaches the instance only inside `Accessor::with`, so each takes what it
//! needs (the database, the connection) out of the instance and does the SQLite work on the blocking
//! pool without holding it.

use super::*;
use crate::bindings_v31::spin::sqlite::sqlite as v31;
use wasmtime::component::{Accessor, FutureReader, StreamReader};

/// Host functions get the instance's [`SqliteInstance`].
type SqliteData = HasSelf<SqliteInstance>;

pub(crate) fn link(linker: &mut Linker<KilnState>) -> Result<()> {
    v31::add_to_linker::<KilnState, SqliteData>(linker, |s| s.capability::<SqliteInstance>())?;
    Ok(())
}

impl v31::Host for SqliteInstance {}

conversions!(v31, from_v31, to_v31, v31_error, v31_result);

impl v31::HostConnection for SqliteInstance {
    async fn open(&mut self, database: String) -> wasmtime::Result<Result<Resource<Connection>, v31::Error>> {
        Ok(SqliteInstance::open(self, database).await.map_err(v31_error))
    }

    async fn execute(&mut self, conn: Resource<Connection>, statement: String, parameters: Vec<v31::Value>) -> wasmtime::Result<Result<v31::QueryResult, v31::Error>> {
        let params = parameters.into_iter().map(from_v31).collect();
        Ok(SqliteInstance::execute(self, &conn, statement, params).await.map(v31_result).map_err(v31_error))
    }

    async fn last_insert_rowid(&mut self, conn: Resource<Connection>) -> wasmtime::Result<i64> {
        Ok(SqliteInstance::last_insert_rowid(self, &conn))
    }

    async fn changes(&mut self, conn: Resource<Connection>) -> wasmtime::Result<u64> {
        Ok(SqliteInstance::changes(self, &conn))
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
    }
}

/// The columns, a stream of the rows and the statement's final result, as `execute-async` returns.
type RowStream = (Vec<String>, StreamReader<v31::RowResult>, FutureReader<Result<(), v31::Error>>);

impl<T> v31::HostConnectionWithStore<T> for SqliteData {
    async fn open_async(accessor: &Accessor<T, Self>, database: String) -> wasmtime::Result<Result<Resource<Connection>, v31::Error>> {
        let opened = async {
            let db = accessor.with(|mut access| access.get().database_to_open(&database))?;
            let conn = connect(db).await?;
            accessor.with(|mut access| access.get().push(conn))
        };
        Ok(opened.await.map_err(v31_error))
    }

    /// The statement runs to completion first (rows bounded by the same result limit as
    /// `execute`); its rows are then streamed to the guest.
    async fn execute_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<Connection>,
        statement: String,
        parameters: Vec<v31::Value>,
    ) -> wasmtime::Result<Result<RowStream, v31::Error>> {
        let params = parameters.into_iter().map(from_v31).collect();
        let result = match accessor.with(|mut access| access.get().shared(&conn)) {
            Ok(shared) => execute(shared, statement, params).await,
            Err(e) => Err(e),
        };
        let result = match result {
            Ok(result) => result,
            Err(e) => return Ok(Err(v31_error(e))),
        };
        let v31::QueryResult { columns, rows } = v31_result(result);
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, rows)?;
            let done = FutureReader::new(&mut access, std::future::ready(wasmtime::Result::<Result<(), v31::Error>>::Ok(Ok(()))))?;
            Ok(Ok((columns, rows, done)))
        })
    }

    async fn last_insert_rowid_async(accessor: &Accessor<T, Self>, conn: Resource<Connection>) -> wasmtime::Result<i64> {
        Ok(accessor.with(|mut access| access.get().last_insert_rowid(&conn)))
    }

    async fn changes_async(accessor: &Accessor<T, Self>, conn: Resource<Connection>) -> wasmtime::Result<u64> {
        Ok(accessor.with(|mut access| access.get().changes(&conn)))
    }
}
