//! `spin:mysql/mysql@3.0.0`: the same operations as `async func`s. A host function reaches the
//! instance only inside `Accessor::with`, so each call takes what it needs out of the instance and
//! awaits MySQL without holding it. `query` runs to completion first, then streams its rows.

use super::*;
use wasmtime::component::{Accessor, FutureReader, StreamReader};

impl v3::Host for MysqlInstance {}

impl v3::HostConnection for MysqlInstance {
    async fn drop(&mut self, conn: Resource<MysqlConnection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
    }
}

/// The columns, a stream of the rows and the statement's final result, as `query` returns.
type Rows = (
    Vec<v3::Column>,
    StreamReader<Vec<v3::DbValue>>,
    FutureReader<Result<(), v3::Error>>,
);

fn conn_of<T>(
    accessor: &Accessor<T, MysqlData>,
    conn: &Resource<MysqlConnection>,
) -> Result<Arc<tokio::sync::Mutex<mysql_async::Conn>>, DbError> {
    accessor.with(|mut access| access.get().conn(conn))
}

impl<T> v3::HostConnectionWithStore<T> for MysqlData {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<MysqlConnection>, v3::Error>> {
        let opened = async {
            let request = accessor.with(|mut access| access.get().check_open(address))?;
            let conn = request.connect().await?;
            accessor.with(|mut access| access.get().push(conn))
        };
        Ok(opened.await.map_err(conv3::error))
    }

    async fn query(
        accessor: &Accessor<T, Self>,
        conn: Resource<MysqlConnection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> wasmtime::Result<Result<Rows, v3::Error>> {
        let result = async {
            let conn = conn_of(accessor, &conn)?;
            let mut conn = conn.lock().await;
            ops::query(&mut conn, &statement, conv3::params(params)).await
        };
        let RowSet { columns, rows } = match result.await {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(conv3::error(e))),
        };
        let columns = columns.into_iter().map(conv3::column).collect();
        let rows: Vec<Vec<v3::DbValue>> = rows
            .into_iter()
            .map(|row| row.into_iter().map(conv3::value).collect())
            .collect();
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, rows)?;
            let done = FutureReader::new(
                &mut access,
                std::future::ready(wasmtime::Result::<Result<(), v3::Error>>::Ok(Ok(()))),
            )?;
            Ok(Ok((columns, rows, done)))
        })
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        conn: Resource<MysqlConnection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> wasmtime::Result<Result<(), v3::Error>> {
        let result = async {
            let conn = conn_of(accessor, &conn)?;
            let mut conn = conn.lock().await;
            ops::execute(&mut conn, &statement, conv3::params(params)).await
        };
        Ok(result.await.map_err(conv3::error))
    }
}
