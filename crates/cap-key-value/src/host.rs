//! The guest-facing interfaces, all over [`KeyValueInstance`]: bindings generated from the WIT in
//! the repository's `wit/` directory, host functions mapping each interface's arguments and errors
//! onto [`Bucket`] and [`Cas`].

use crate::store::{Bucket, Cas, Error};
use crate::{KeyValueInstance, MAX_OPEN_HANDLES};
use kiln_engine::KilnState;
use wasmtime::component::{HasSelf, Linker, Resource};

/// `fermyon:spin/key-value@2.0.0`.
pub(crate) mod bindings_v2 {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin@2.0.0"],
        inline: "
            package kiln:key-value-v2;
            world imports { import fermyon:spin/key-value@2.0.0; }
        ",
        world: "kiln:key-value-v2/imports",
        imports: { default: async | trappable },
        with: { "fermyon:spin/key-value.store": crate::store::Bucket },
    });
}

/// `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2` (Spin 3).
pub(crate) mod draft2 {
    wasmtime::component::bindgen!({
        path: ["../../wit/keyvalue-2024-10-17"],
        world: "wasi:keyvalue/imports@0.2.0-draft2",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::store::Bucket,
            "wasi:keyvalue/atomics.cas": crate::store::Cas,
        },
    });
}

/// `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft` (wasmCloud, wasmtime).
pub(crate) mod draft {
    wasmtime::component::bindgen!({
        path: ["../../wit/keyvalue@0.2.0-draft"],
        world: "wasi:keyvalue/imports@0.2.0-draft",
        imports: { default: async | trappable },
        with: { "wasi:keyvalue/store.bucket": crate::store::Bucket },
    });
}

type State = HasSelf<KeyValueInstance>;

fn instance(state: &mut KilnState) -> &mut KeyValueInstance {
    state.capability::<KeyValueInstance>()
}

/// Adds every interface version to the linker.
pub(crate) fn link(linker: &mut Linker<KilnState>) -> anyhow::Result<()> {
    bindings_v2::fermyon::spin::key_value::add_to_linker::<KilnState, State>(linker, instance)?;
    draft2::wasi::keyvalue::store::add_to_linker::<KilnState, State>(linker, instance)?;
    draft2::wasi::keyvalue::atomics::add_to_linker::<KilnState, State>(linker, instance)?;
    draft2::wasi::keyvalue::batch::add_to_linker::<KilnState, State>(linker, instance)?;
    draft::wasi::keyvalue::store::add_to_linker::<KilnState, State>(linker, instance)?;
    draft::wasi::keyvalue::atomics::add_to_linker::<KilnState, State>(linker, instance)?;
    draft::wasi::keyvalue::batch::add_to_linker::<KilnState, State>(linker, instance)?;
    // `async func`s need component-model concurrency; without it wasmtime refuses to define them.
    if linker.engine().get_concurrency_support() {
        crate::host_v3::link(linker)?;
    }
    Ok(())
}

impl KeyValueInstance {
    /// Opens `label` and puts the handle in the table.
    pub(crate) fn open_bucket(&mut self, label: &str) -> Result<Resource<Bucket>, Error> {
        let bucket = self.grants.open(label)?;
        if self.open_buckets >= MAX_OPEN_HANDLES {
            return Err(Error::StoreTableFull);
        }
        let handle = self
            .table
            .push(bucket)
            .map_err(|e| Error::Other(e.to_string()))?;
        self.open_buckets += 1;
        Ok(handle)
    }

    /// The bucket behind a handle. Handles come from this table, so a miss is a host bug: trap.
    pub(crate) fn bucket<T: 'static>(&self, handle: &Resource<T>) -> wasmtime::Result<Bucket> {
        let handle = Resource::<Bucket>::new_borrow(handle.rep());
        Ok(self.table.get(&handle)?.clone())
    }

    pub(crate) fn close_bucket<T: 'static>(&mut self, handle: Resource<T>) -> wasmtime::Result<()> {
        self.table
            .delete(Resource::<Bucket>::new_own(handle.rep()))?;
        self.open_buckets = self.open_buckets.saturating_sub(1);
        Ok(())
    }

    fn push_cas(&mut self, cas: Cas) -> Result<Resource<Cas>, Error> {
        if self.open_cas >= MAX_OPEN_HANDLES {
            return Err(Error::Other(format!(
                "too many compare-and-swap handles are open (the limit is {MAX_OPEN_HANDLES})"
            )));
        }
        let handle = self
            .table
            .push(cas)
            .map_err(|e| Error::Other(e.to_string()))?;
        self.open_cas += 1;
        Ok(handle)
    }

    fn take_cas(&mut self, handle: Resource<Cas>) -> wasmtime::Result<Cas> {
        let cas = self.table.delete(handle)?;
        self.open_cas = self.open_cas.saturating_sub(1);
        Ok(cas)
    }
}

// ---------------------------------------------------------------------------------------------
// fermyon:spin/key-value@2.0.0

mod host_v2 {
    use super::*;
    use bindings_v2::fermyon::spin::key_value::{self as kv, Error as KvError};

    fn err(e: Error) -> KvError {
        match e {
            Error::StoreTableFull => KvError::StoreTableFull,
            Error::NoSuchStore => KvError::NoSuchStore,
            Error::AccessDenied => KvError::AccessDenied,
            Error::Unavailable(m) | Error::Other(m) => KvError::Other(m),
        }
    }

    impl kv::Host for KeyValueInstance {}

    impl kv::HostStore for KeyValueInstance {
        async fn open(
            &mut self,
            label: String,
        ) -> wasmtime::Result<Result<Resource<Bucket>, KvError>> {
            Ok(self.open_bucket(&label).map_err(err))
        }

        async fn get(
            &mut self,
            store: Resource<Bucket>,
            key: String,
        ) -> wasmtime::Result<Result<Option<Vec<u8>>, KvError>> {
            Ok(self.bucket(&store)?.get(key).await.map_err(err))
        }

        async fn set(
            &mut self,
            store: Resource<Bucket>,
            key: String,
            value: Vec<u8>,
        ) -> wasmtime::Result<Result<(), KvError>> {
            Ok(self.bucket(&store)?.set(key, value).await.map_err(err))
        }

        async fn delete(
            &mut self,
            store: Resource<Bucket>,
            key: String,
        ) -> wasmtime::Result<Result<(), KvError>> {
            Ok(self.bucket(&store)?.delete(key).await.map_err(err))
        }

        async fn exists(
            &mut self,
            store: Resource<Bucket>,
            key: String,
        ) -> wasmtime::Result<Result<bool, KvError>> {
            Ok(self.bucket(&store)?.exists(key).await.map_err(err))
        }

        async fn get_keys(
            &mut self,
            store: Resource<Bucket>,
        ) -> wasmtime::Result<Result<Vec<String>, KvError>> {
            Ok(self.bucket(&store)?.get_keys().await.map_err(err))
        }

        async fn drop(&mut self, store: Resource<Bucket>) -> wasmtime::Result<()> {
            self.close_bucket(store)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// wasi:keyvalue@0.2.0-draft2

mod draft2_impl {
    use super::*;
    use draft2::wasi::keyvalue::{atomics, batch, store};

    pub(super) fn err(e: Error) -> store::Error {
        match e {
            Error::NoSuchStore => store::Error::NoSuchStore,
            Error::AccessDenied => store::Error::AccessDenied,
            Error::StoreTableFull => store::Error::Other(format!(
                "too many key-value stores are open (the limit is {MAX_OPEN_HANDLES})"
            )),
            Error::Unavailable(m) | Error::Other(m) => store::Error::Other(m),
        }
    }

    impl store::Host for KeyValueInstance {
        async fn open(
            &mut self,
            identifier: String,
        ) -> wasmtime::Result<Result<Resource<Bucket>, store::Error>> {
            Ok(self.open_bucket(&identifier).map_err(err))
        }
    }

    impl store::HostBucket for KeyValueInstance {
        async fn get(
            &mut self,
            bucket: Resource<Bucket>,
            key: String,
        ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
            Ok(self.bucket(&bucket)?.get(key).await.map_err(err))
        }

        async fn set(
            &mut self,
            bucket: Resource<Bucket>,
            key: String,
            value: Vec<u8>,
        ) -> wasmtime::Result<Result<(), store::Error>> {
            Ok(self.bucket(&bucket)?.set(key, value).await.map_err(err))
        }

        async fn delete(
            &mut self,
            bucket: Resource<Bucket>,
            key: String,
        ) -> wasmtime::Result<Result<(), store::Error>> {
            Ok(self.bucket(&bucket)?.delete(key).await.map_err(err))
        }

        async fn exists(
            &mut self,
            bucket: Resource<Bucket>,
            key: String,
        ) -> wasmtime::Result<Result<bool, store::Error>> {
            Ok(self.bucket(&bucket)?.exists(key).await.map_err(err))
        }

        /// Pages of up to 1000 keys; the cursor is opaque to the guest (a decimal number).
        async fn list_keys(
            &mut self,
            bucket: Resource<Bucket>,
            cursor: Option<String>,
        ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
            let bucket = self.bucket(&bucket)?;
            let cursor = match cursor.as_deref().map(str::parse::<u64>) {
                None => None,
                Some(Ok(c)) => Some(c),
                Some(Err(_)) => {
                    return Ok(Err(store::Error::Other(format!(
                        "invalid list-keys cursor `{}`: pass back a cursor this host returned",
                        cursor.unwrap_or_default()
                    ))));
                }
            };
            Ok(bucket
                .list_keys(cursor)
                .await
                .map_err(err)
                .map(|page| store::KeyResponse {
                    keys: page.keys,
                    cursor: page.cursor.map(|c| c.to_string()),
                }))
        }

        async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
            self.close_bucket(bucket)
        }
    }

    impl atomics::Host for KeyValueInstance {
        async fn increment(
            &mut self,
            bucket: Resource<Bucket>,
            key: String,
            delta: i64,
        ) -> wasmtime::Result<Result<i64, store::Error>> {
            Ok(self
                .bucket(&bucket)?
                .increment(key, delta)
                .await
                .map_err(err))
        }

        async fn swap(
            &mut self,
            cas: Resource<Cas>,
            value: Vec<u8>,
        ) -> wasmtime::Result<Result<(), atomics::CasError>> {
            let cas = self.take_cas(cas)?;
            Ok(match cas.swap(value).await {
                Ok(None) => Ok(()),
                Ok(Some(latest)) => match self.push_cas(latest) {
                    Ok(handle) => Err(atomics::CasError::CasFailed(handle)),
                    Err(e) => Err(atomics::CasError::StoreError(err(e))),
                },
                Err(e) => Err(atomics::CasError::StoreError(err(e))),
            })
        }
    }

    impl atomics::HostCas for KeyValueInstance {
        async fn new(
            &mut self,
            bucket: Resource<Bucket>,
            key: String,
        ) -> wasmtime::Result<Result<Resource<Cas>, store::Error>> {
            let bucket = self.bucket(&bucket)?;
            Ok(match Cas::new(bucket, key).await {
                Ok(cas) => self.push_cas(cas).map_err(err),
                Err(e) => Err(err(e)),
            })
        }

        async fn current(
            &mut self,
            cas: Resource<Cas>,
        ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
            let cas = self.table.get_mut(&cas)?;
            Ok(cas.current().await.map_err(err))
        }

        async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
            self.take_cas(cas).map(drop)
        }
    }

    impl batch::Host for KeyValueInstance {
        async fn get_many(
            &mut self,
            bucket: Resource<Bucket>,
            keys: Vec<String>,
        ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, store::Error>> {
            let bucket = self.bucket(&bucket)?;
            Ok(bucket
                .get_many(keys.clone())
                .await
                .map(|values| keys.into_iter().zip(values).collect())
                .map_err(err))
        }

        async fn set_many(
            &mut self,
            bucket: Resource<Bucket>,
            key_values: Vec<(String, Vec<u8>)>,
        ) -> wasmtime::Result<Result<(), store::Error>> {
            Ok(self
                .bucket(&bucket)?
                .set_many(key_values)
                .await
                .map_err(err))
        }

        async fn delete_many(
            &mut self,
            bucket: Resource<Bucket>,
            keys: Vec<String>,
        ) -> wasmtime::Result<Result<(), store::Error>> {
            Ok(self.bucket(&bucket)?.delete_many(keys).await.map_err(err))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// wasi:keyvalue@0.2.0-draft

mod draft_impl {
    use super::*;
    use draft::wasi::keyvalue::{atomics, batch, store};

    fn err(e: Error) -> store::Error {
        match e {
            Error::NoSuchStore => store::Error::NoSuchStore,
            Error::AccessDenied => store::Error::AccessDenied,
            Error::StoreTableFull => store::Error::Other(format!(
                "too many key-value stores are open (the limit is {MAX_OPEN_HANDLES})"
            )),
            Error::Unavailable(m) | Error::Other(m) => store::Error::Other(m),
        }
    }

    impl store::Host for KeyValueInstance {
        async fn open(
            &mut self,
            identifier: String,
        ) -> wasmtime::Result<Result<Resource<Bucket>, store::Error>> {
            // wasmCloud components open `""` for the store linked to them.
            let label = self.linked_label(&identifier).to_string();
            Ok(self.open_bucket(&label).map_err(err))
        }
    }

    impl store::HostBucket for KeyValueInstance {
        async fn get(
            &mut self,
            bucket: Resource<Bucket>,
            key: String,
        ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
            Ok(self.bucket(&bucket)?.get(key).await.map_err(err))
        }

        async fn set(
            &mut self,
            bucket: Resource<Bucket>,
            key: String,
            value: Vec<u8>,
        ) -> wasmtime::Result<Result<(), store::Error>> {
            Ok(self.bucket(&bucket)?.set(key, value).await.map_err(err))
        }

        async fn delete(
            &mut self,
            bucket: Resource<Bucket>,
            key: String,
        ) -> wasmtime::Result<Result<(), store::Error>> {
            Ok(self.bucket(&bucket)?.delete(key).await.map_err(err))
        }

        async fn exists(
            &mut self,
            bucket: Resource<Bucket>,
            key: String,
        ) -> wasmtime::Result<Result<bool, store::Error>> {
            Ok(self.bucket(&bucket)?.exists(key).await.map_err(err))
        }

        async fn list_keys(
            &mut self,
            bucket: Resource<Bucket>,
            cursor: Option<u64>,
        ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
            let bucket = self.bucket(&bucket)?;
            Ok(bucket
                .list_keys(cursor)
                .await
                .map(|page| store::KeyResponse {
                    keys: page.keys,
                    cursor: page.cursor,
                })
                .map_err(err))
        }

        async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
            self.close_bucket(bucket)
        }
    }

    impl atomics::Host for KeyValueInstance {
        /// This draft's counters are unsigned: a delta past `i64::MAX` or a negative result is an
        /// error rather than a wrapped number.
        async fn increment(
            &mut self,
            bucket: Resource<Bucket>,
            key: String,
            delta: u64,
        ) -> wasmtime::Result<Result<u64, store::Error>> {
            let bucket = self.bucket(&bucket)?;
            let Ok(delta) = i64::try_from(delta) else {
                return Ok(Err(store::Error::Other(format!(
                    "cannot increment `{key}` by {delta}: the limit is {}",
                    i64::MAX
                ))));
            };
            Ok(match bucket.increment(key.clone(), delta).await {
                Ok(value) => u64::try_from(value).map_err(|_| {
                    store::Error::Other(format!("`{key}` holds a negative number ({value})"))
                }),
                Err(e) => Err(err(e)),
            })
        }
    }

    impl batch::Host for KeyValueInstance {
        async fn get_many(
            &mut self,
            bucket: Resource<Bucket>,
            keys: Vec<String>,
        ) -> wasmtime::Result<Result<Vec<Option<(String, Vec<u8>)>>, store::Error>> {
            let bucket = self.bucket(&bucket)?;
            Ok(bucket
                .get_many(keys.clone())
                .await
                .map(|values| {
                    keys.into_iter()
                        .zip(values)
                        .map(|(k, v)| v.map(|v| (k, v)))
                        .collect()
                })
                .map_err(err))
        }

        async fn set_many(
            &mut self,
            bucket: Resource<Bucket>,
            key_values: Vec<(String, Vec<u8>)>,
        ) -> wasmtime::Result<Result<(), store::Error>> {
            Ok(self
                .bucket(&bucket)?
                .set_many(key_values)
                .await
                .map_err(err))
        }

        async fn delete_many(
            &mut self,
            bucket: Resource<Bucket>,
            keys: Vec<String>,
        ) -> wasmtime::Result<Result<(), store::Error>> {
            Ok(self.bucket(&bucket)?.delete_many(keys).await.map_err(err))
        }
    }
}
