//! `spin:redis/redis@3.0.0`: the same operations, as `async func`s. A host function reaches the
//! instance only inside `Accessor::with`, so each call takes what it needs (a connection handle,
//! the deadline) out of the instance, then awaits Redis without holding it.

use super::*;
use redis::aio::MultiplexedConnection;
use wasmtime::component::Accessor;

fn conn_of<T>(
    accessor: &Accessor<T, RedisData>,
    conn: &Resource<RedisConnection>,
) -> Result<(MultiplexedConnection, Duration), v3::Error> {
    accessor.with(|mut access| {
        let instance = access.get();
        let c = instance.conn(conn).map_err(v3_error)?;
        Ok((c, instance.timeouts.call))
    })
}

impl v3::Host for RedisInstance {}

impl v3::HostConnection for RedisInstance {
    async fn drop(&mut self, conn: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
    }
}

impl<T> v3::HostConnectionWithStore<T> for RedisData {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> Result<Resource<RedisConnection>, v3::Error> {
        let timeouts = accessor
            .with(|mut access| {
                let instance = access.get();
                instance.check_open(&address).map(|()| instance.timeouts)
            })
            .map_err(v3_error)?;
        let conn = ops::connect(&address, timeouts).await.map_err(v3_error)?;
        accessor
            .with(|mut access| access.get().push(RedisConnection { conn }))
            .map_err(v3_error)
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), v3::Error> {
        let (mut c, limit) = conn_of(accessor, &conn)?;
        ops::with_deadline(limit, ops::publish(&mut c, &channel, &payload))
            .await
            .map_err(v3_error)
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<Option<Vec<u8>>, v3::Error> {
        let (mut c, limit) = conn_of(accessor, &conn)?;
        ops::with_deadline(limit, ops::get(&mut c, &key))
            .await
            .map_err(v3_error)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), v3::Error> {
        let (mut c, limit) = conn_of(accessor, &conn)?;
        ops::with_deadline(limit, ops::set(&mut c, &key, &value))
            .await
            .map_err(v3_error)
    }

    async fn incr(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<i64, v3::Error> {
        let (mut c, limit) = conn_of(accessor, &conn)?;
        ops::with_deadline(limit, ops::incr(&mut c, &key))
            .await
            .map_err(v3_error)
    }

    async fn del(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> Result<u32, v3::Error> {
        let (mut c, limit) = conn_of(accessor, &conn)?;
        ops::with_deadline(limit, ops::del(&mut c, &keys))
            .await
            .map_err(v3_error)
    }

    async fn sadd(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v3::Error> {
        let (mut c, limit) = conn_of(accessor, &conn)?;
        ops::with_deadline(limit, ops::sadd(&mut c, &key, &values))
            .await
            .map_err(v3_error)
    }

    async fn smembers(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<Vec<String>, v3::Error> {
        let (mut c, limit) = conn_of(accessor, &conn)?;
        ops::with_deadline(limit, ops::smembers(&mut c, &key))
            .await
            .map_err(v3_error)
    }

    async fn srem(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v3::Error> {
        let (mut c, limit) = conn_of(accessor, &conn)?;
        ops::with_deadline(limit, ops::srem(&mut c, &key, &values))
            .await
            .map_err(v3_error)
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        command: String,
        arguments: Vec<v3::RedisParameter>,
    ) -> Result<Vec<v3::RedisResult>, v3::Error> {
        let (mut c, limit) = conn_of(accessor, &conn)?;
        let args = arguments
            .into_iter()
            .map(|a| match a {
                v3::RedisParameter::Int64(i) => Param::Int(i),
                v3::RedisParameter::Binary(b) => Param::Binary(b),
            })
            .collect();
        let results = ops::with_deadline(limit, ops::execute(&mut c, &command, args))
            .await
            .map_err(v3_error)?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                RedisResult::Nil => v3::RedisResult::Nil,
                RedisResult::Status(s) => v3::RedisResult::Status(s),
                RedisResult::Int(i) => v3::RedisResult::Int64(i),
                RedisResult::Binary(b) => v3::RedisResult::Binary(b),
            })
            .collect())
    }
}
