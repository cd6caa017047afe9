//! `spin:mqtt/mqtt@3.0.0`: the same operations, as `async func`s. A host function reaches the
//! instance only inside `Accessor::with`, so each call takes what it needs out of the instance,
//! then awaits the broker without holding it.

use super::*;
use wasmtime::component::Accessor;

impl v3::Host for MqttInstance {}

impl v3::HostConnection for MqttInstance {
    async fn drop(&mut self, conn: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
    }
}

impl<T> v3::HostConnectionWithStore<T> for MqttData {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> Result<Resource<MqttConnection>, v3::Error> {
        let request = accessor
            .with(|mut access| {
                access
                    .get()
                    .check_open(address, username, password, keep_alive_interval_in_secs)
            })
            .map_err(v3_error)?;
        let conn = request.connect().await.map_err(v3_error)?;
        accessor
            .with(|mut access| access.get().push(conn))
            .map_err(v3_error)
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        conn: Resource<MqttConnection>,
        topic: String,
        payload: Vec<u8>,
        qos: v3::Qos,
    ) -> Result<(), v3::Error> {
        let (client, limit) = accessor
            .with(|mut access| {
                let instance = access.get();
                instance
                    .client(&conn)
                    .map(|client| (client, instance.timeouts.call))
            })
            .map_err(v3_error)?;
        let mut client = client.lock().await;
        client
            .publish(topic, payload, v3_qos(qos), limit)
            .await
            .map_err(v3_error)
    }
}
