//! `spin:key-value/key-value@3.0.0` (Spin 4, spin-sdk 7): the same stores, as `async func`s. A host
//! function reaches the instance only inside `Accessor::with`, so each call takes the bucket (an
//! `Arc` clone) out of the instance, then awaits the store without holding it. Linked only when the
//! engine has component-model concurrency.

use crate::store::{Bucket, Error};
use crate::KeyValueInstance;
use kiln_engine::KilnState;
use wasmtime::component::{Accessor, FutureReader, HasSelf, Linker, Resource, StreamReader};

mod bindings_v3 {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin-key-value@3.0.0"],
        inline: "
            package kiln:key-value-v3;
            world imports { import spin:key-value/key-value@3.0.0; }
        ",
        world: "kiln:key-value-v3/imports",
        imports: { default: async | trappable },
        with: { "spin:key-value/key-value.store": crate::store::Bucket },
    });
}

use bindings_v3::spin::key_value::key_value::{self as kv, Error as KvError};

/// Host functions get the instance's [`KeyValueInstance`].
type KeyValueData = HasSelf<KeyValueInstance>;

pub(crate) fn link(linker: &mut Linker<KilnState>) -> anyhow::Result<()> {
    kv::add_to_linker::<KilnState, KeyValueData>(linker, |state| state.capability::<KeyValueInstance>())?;
    Ok(())
}

fn err(e: Error) -> KvError {
    match e {
        Error::StoreTableFull => KvError::StoreTableFull,
        Error::NoSuchStore => KvError::NoSuchStore,
        Error::AccessDenied => KvError::AccessDenied,
        Error::Unavailable(message) | Error::Other(message) => KvError::Other(message),
    }
}

/// The bucket behind `store`, taken out of the instance for one call.
fn bucket<T>(accessor: &Accessor<T, KeyValueData>, store: &Resource<Bucket>) -> wasmtime::Result<Bucket> {
    accessor.with(|mut access| access.get().bucket(store))
}

impl kv::Host for KeyValueInstance {}

impl kv::HostStore for KeyValueInstance {
    async fn drop(&mut self, store: Resource<Bucket>) -> wasmtime::Result<()> {
        self.close_bucket(store)
    }
}

impl<T> kv::HostStoreWithStore<T> for KeyValueData {
    async fn open(accessor: &Accessor<T, Self>, label: String) -> wasmtime::Result<Result<Resource<Bucket>, KvError>> {
        Ok(accessor.with(|mut access| access.get().open_bucket(&label)).map_err(err))
    }

    async fn get(accessor: &Accessor<T, Self>, store: Resource<Bucket>, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, KvError>> {
        Ok(bucket(accessor, &store)?.get(key).await.map_err(err))
    }

    async fn set(accessor: &Accessor<T, Self>, store: Resource<Bucket>, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), KvError>> {
        Ok(bucket(accessor, &store)?.set(key, value).await.map_err(err))
    }

    async fn delete(accessor: &Accessor<T, Self>, store: Resource<Bucket>, key: String) -> wasmtime::Result<Result<(), KvError>> {
        Ok(bucket(accessor, &store)?.delete(key).await.map_err(err))
    }

    async fn exists(accessor: &Accessor<T, Self>, store: Resource<Bucket>, key: String) -> wasmtime::Result<Result<bool, KvError>> {
        Ok(bucket(accessor, &store)?.exists(key).await.map_err(err))
    }

    /// The keys are gathered first (every page), then streamed; an error listing them ends the
    /// stream empty and resolves the future with it.
    async fn get_keys(accessor: &Accessor<T, Self>, store: Resource<Bucket>) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), KvError>>)> {
        let listed = bucket(accessor, &store)?.get_keys().await.map_err(err);
        accessor.with(|mut access| {
            let (keys, result) = match listed {
                Ok(keys) => (keys, Ok(())),
                Err(e) => (Vec::new(), Err(e)),
            };
            let keys = StreamReader::new(&mut access, keys)?;
            let result = FutureReader::new(&mut access, std::future::ready(wasmtime::Result::<Result<(), KvError>>::Ok(result)))?;
            Ok((keys, result))
        })
    }
}
