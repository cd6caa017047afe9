//! Deploy (an archive, or a reference to pull), update (build the new version fully, then swap) and
//! remove (drain, then delete) an app.

use super::*;

impl Platform {
    // ---- deploy, update, remove --------------------------------------------------------------

    /// Deploys `archive` as app `name` (a new app, or a new version of one). Returns once the new
    /// version is what new requests get; `true` when the app is new. On a host of a cluster, a
    /// deploy by reference is also recorded in the cluster's shared state, so every host serves it.
    pub async fn deploy(self: &Arc<Self>, name: &str, query: Option<&str>, archive: bytes::Bytes) -> Result<(AppInfo, bool), ApiError> {
        let by_reference = DeployParams::parse(query, self.config.ceilings).is_ok_and(|params| params.reference.is_some());
        let desired = match &self.cluster {
            Some(_) if by_reference => {
                let runtime_config = (!archive.is_empty()).then(|| String::from_utf8_lossy(&archive).into_owned());
                Some(Desired::new(query.unwrap_or_default(), runtime_config))
            }
            _ => None,
        };
        let deployed = self.deploy_as(name, query, archive, desired.clone()).await?;
        if let (Some(cluster), Some(desired)) = (&self.cluster, &desired) {
            cluster.publish_deployed(name, desired).await.map_err(|err| {
                ApiError::new(StatusCode::BAD_GATEWAY, format!("`{name}` is deployed on this host, but the cluster's Redis did not take it: {err:#}"))
            })?;
        }
        Ok(deployed)
    }

    /// Deploys what the cluster wants for `name` on this host, without announcing it again.
    pub(crate) async fn deploy_desired(self: &Arc<Self>, name: &str, desired: &Desired) -> Result<(), ApiError> {
        let body = bytes::Bytes::from(desired.runtime_config.clone().unwrap_or_default());
        self.deploy_as(name, Some(&desired.query), body, Some(desired.clone())).await.map(|_| ())
    }

    /// What the cluster asked for when `name` was deployed through it, if it was.
    pub(crate) fn desired_of(&self, name: &str) -> Option<Desired> {
        self.entry(name).and_then(|entry| entry.current.load().record.desired.clone())
    }

    /// Whether `name` is deployed here from an archive (not through the cluster).
    pub(crate) fn has_local_app(&self, name: &str) -> bool {
        self.entry(name).is_some_and(|entry| entry.current.load().record.desired.is_none())
    }

    /// The apps this host serves because the cluster asked for them.
    pub(crate) fn cluster_apps(&self) -> Vec<String> {
        let apps = self.apps.read().unwrap_or_else(|p| p.into_inner());
        apps.by_name.values().filter(|entry| entry.current.load().record.desired.is_some()).map(|entry| entry.name.clone()).collect()
    }

    pub(super) async fn deploy_as(self: &Arc<Self>, name: &str, query: Option<&str>, archive: bytes::Bytes, desired: Option<Desired>) -> Result<(AppInfo, bool), ApiError> {
        if !valid_app_name(name) {
            return Err(ApiError::bad_request(format!(
                "`{name}` is not a valid app name: use 1-63 lowercase letters, digits and `-`, not starting or ending with `-` (it becomes `{name}.{}`)",
                self.config.domain
            )));
        }
        let params = DeployParams::parse(query, self.config.ceilings).map_err(ApiError::bad_request)?;
        // Pulled before the deploy lock: a slow registry holds up only this deploy.
        let upload = match &params.reference {
            Some(reference) => {
                // With a reference, the body is the app's runtime config (or empty).
                let runtime_config = match archive.is_empty() {
                    true => None,
                    false => Some(String::from_utf8(archive.to_vec()).map_err(|_| {
                        ApiError::bad_request(format!("with `reference={reference}` the body is the app's runtime-config.toml, which must be UTF-8 text"))
                    })?),
                };
                Upload::Pulled { dir: self.pull(reference, params.insecure).await?, runtime_config }
            }
            None => Upload::Archive(archive),
        };
        let _change = self.changes.lock().await;
        self.check_prefix_free(name, params.route_prefix.as_deref())?;
        let existing = self.entry(name);
        let previous = existing.as_ref().map(|entry| entry.current.load_full());
        let metrics = match &existing {
            Some(entry) => entry.metrics.clone(),
            None => self.metrics.app(name, self.tracing.as_ref()),
        };
        let record = AppRecord {
            name: name.to_string(),
            version: previous.as_ref().map_or(1, |v| v.record.version + 1),
            route_prefix: params.route_prefix.clone(),
            // Set from the manifest and the request once the archive is unpacked.
            limits: self.config.default_limits,
            deployed_at: unix_now(),
            desired,
        };

        let (platform, metrics_for_load) = (self.clone(), metrics.clone());
        let prepared = on_blocking_thread(move || platform.prepare_version(record, &params.limits, &upload, &metrics_for_load)).await;
        let Prepared { version, loaded, plans } = match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                if existing.is_none() {
                    self.metrics.remove_app(name);
                }
                return Err(err);
            }
        };
        let version = Arc::new(version);
        let keep_loaded = previous.as_ref().is_some_and(|v| v.loaded.load().is_some());
        let loaded = Arc::new(loaded);
        if keep_loaded {
            version.loaded.store(Some(loaded.clone()));
        }
        let replaced = self.install(name, version.clone(), metrics);
        self.metrics.set_apps(self.app_count());
        let entry = self.entry(name).ok_or_else(|| ApiError::internal(anyhow::anyhow!("app `{name}` vanished during its deploy")))?;
        self.switch_events(&entry, &version, loaded, plans).await;
        tracing::info!("deployed `{name}` version {}", version.record.version);
        if let Some(old) = replaced {
            self.retire(old);
        }
        Ok((self.info(&entry), previous.is_none()))
    }

    /// Unpacks, checks and compiles a version, and records it as current on disk. Nothing is
    /// visible to requests yet; on any error nothing is left behind.
    /// Pulls `reference` into the data directory's cache (blobs verified); returns the pulled app's
    /// directory. Registry errors are the request's (400), naming the reference.
    pub(super) async fn pull(&self, reference: &str, insecure: bool) -> Result<PathBuf, ApiError> {
        let cache = kiln_oci::Cache::new(&self.data.cache_dir());
        let options = kiln_oci::RegistryOptions { insecure, credentials: kiln_oci::Credentials::default_location() };
        let pulled = kiln_oci::pull(reference, &cache, &options).await.map_err(|err| ApiError::bad_request(format!("{err:#}")))?;
        tracing::info!("pulled {reference} ({})", pulled.digest);
        let dir = pulled.manifest_path.parent().ok_or_else(|| ApiError::internal(anyhow::anyhow!("the pulled app has no directory")))?;
        Ok(dir.to_path_buf())
    }

    pub(super) fn prepare_version(&self, record: AppRecord, requested: &AppLimitsSpec, upload: &Upload, metrics: &Arc<AppMetrics>) -> Result<Prepared, ApiError> {
        let dir = self.data.version_dir(&record.name, record.version);
        let result = self.unpack_and_load(&record, requested, upload, &dir, metrics);
        match result {
            Ok(prepared) => {
                let json = serde_json::to_vec_pretty(&prepared.version.record).map_err(|err| ApiError::internal(err.into()))?;
                write_atomically(&self.data.app_dir(&record.name).join("app.json"), &json).map_err(ApiError::internal)?;
                Ok(prepared)
            }
            Err(err) => {
                let _ = std::fs::remove_dir_all(&dir);
                if record.version == 1 {
                    // A first deploy that failed leaves no app behind (its state was never used).
                    let _ = std::fs::remove_dir_all(self.data.app_dir(&record.name));
                }
                Err(err)
            }
        }
    }

    pub(super) fn unpack_and_load(&self, record: &AppRecord, requested: &AppLimitsSpec, upload: &Upload, dir: &Path, metrics: &Arc<AppMetrics>) -> Result<Prepared, ApiError> {
        let app_dir = self.data.app_dir(&record.name);
        std::fs::create_dir_all(&app_dir).map_err(|err| ApiError::internal(err.into()))?;
        let staging = app_dir.join(format!(".staging-{}", random_hex(6)));
        std::fs::create_dir(&staging).map_err(|err| ApiError::internal(err.into()))?;
        let unpacked = match upload {
            Upload::Archive(bytes) => archive::unpack(bytes, &staging, self.config.max_upload.saturating_mul(4)).map_err(archive_error),
            Upload::Pulled { dir: app_dir, runtime_config } => copy_tree(app_dir, &staging)
                .and_then(|()| match runtime_config {
                    Some(text) => std::fs::write(staging.join("runtime-config.toml"), text).map_err(anyhow::Error::from),
                    None => Ok(()),
                })
                .map_err(|err| ApiError::internal(err.context("cannot copy the pulled app"))),
        };
        if let Err(err) = unpacked {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(err);
        }
        let _ = std::fs::remove_dir_all(dir);
        std::fs::rename(&staging, dir).map_err(|err| ApiError::internal(err.into()))?;
        sync_dir(&app_dir);
        let (version, manifest) = self.describe_version(record.clone(), Some(requested))?;
        self.check_manifest(&version, &manifest)?;
        // Compiling (or finding the artifact in the cache) and linking now proves the version can
        // serve before it replaces the one that does.
        let loaded = self.load(&version, metrics)?;
        let plans = self.plans(&version, &loaded)?;
        // Deploy-time only: a restored app whose Redis is down keeps retrying instead.
        for trigger in self.triggers.iter().filter(|trigger| trigger.is_used_by(&loaded.app.manifest)) {
            trigger.probe(&loaded.app).map_err(|err| ApiError::bad_request(relative_to(&version.dir, &format!("{err:#}"))))?;
        }
        Ok(Prepared { version, loaded, plans })
    }


    /// What `kiln serve` can run, checked before compiling, and sources shared as blobs.
    pub(super) fn check_manifest(&self, version: &AppVersion, manifest: &Manifest) -> Result<(), ApiError> {
        let located = |err: anyhow::Error| ApiError::bad_request(relative_to(&version.dir, &format!("{err:#}")));
        kiln_trigger_http::check_routes(manifest).map_err(located)?;
        let events = self.triggers.iter().filter(|trigger| trigger.is_used_by(manifest));
        if manifest.http_triggers.is_empty() && events.clone().next().is_none() {
            return Err(ApiError::bad_request("the app has no triggers: bind a component to `[[trigger.http]]`, `[[trigger.redis]]`, `[[trigger.nats]]` or `[[trigger.cron]]`"));
        }
        for trigger in events {
            trigger.check(manifest).map_err(located)?;
        }
        if let Some(trigger) = manifest.directory_triggers.first() {
            let message = "`[[trigger.directory]]` runs under `kiln up` and in containers only: an app on a shared host may not watch or write the host's directories";
            return Err(located(manifest.error_at(&trigger.path_span, message, "run this app with `kiln up`, or send its files as messages to a `[[trigger.nats]]`").into()));
        }
        for component in manifest.components.values() {
            if let kiln_manifest::ComponentSource::Local(path) = &component.source {
                // On a shared host a `source` may only name a file the app uploaded: `../` would
                // reach other apps' versions or the host's files.
                if !path.starts_with(&version.dir) {
                    let message = format!("component `{}`: `source` must be a file in the uploaded archive", component.id);
                    return Err(located(manifest.error_at(&component.source_span, message, "kiln deploy packs sources from elsewhere under kiln-sources/").into()));
                }
                self.data.share_blob(path).map_err(ApiError::internal)?;
            }
            // The same for a dependency's file; URL and registry dependencies are not fetched here.
            for dependency in &component.dependencies {
                let inside = matches!(&dependency.source, kiln_manifest::DependencySource::Local(path) if path.starts_with(&version.dir));
                if !inside && !matches!(dependency.source, kiln_manifest::DependencySource::AppComponent(_)) {
                    let message = format!("component `{}`: dependency `{}` must be a file in the uploaded archive or another component of the app", component.id, dependency.name);
                    return Err(located(manifest.error_at(&dependency.span, message, "give it as `{ path = \"…\" }` inside the application directory, or `{ component = \"…\" }`").into()));
                }
            }
        }
        Ok(())
    }

    /// Removes app `name`: new requests get 404 at once, running ones finish (up to the app's
    /// deadline), then its files and state are deleted. An app deployed through the cluster is
    /// removed from the cluster's shared state too, so every host removes it.
    pub async fn remove(self: &Arc<Self>, name: &str) -> Result<(), ApiError> {
        let through_cluster = self.desired_of(name).is_some();
        self.remove_local(name).await?;
        if let (Some(cluster), true) = (&self.cluster, through_cluster) {
            cluster.publish_removed(name).await.map_err(|err| {
                ApiError::new(StatusCode::BAD_GATEWAY, format!("`{name}` is removed from this host, but the cluster's Redis did not take it: {err:#}"))
            })?;
        }
        Ok(())
    }

    /// Removes app `name` from this host only.
    pub(crate) async fn remove_local(self: &Arc<Self>, name: &str) -> Result<(), ApiError> {
        let _change = self.changes.lock().await;
        let entry = {
            let mut apps = self.apps.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            let entry = apps.by_name.remove(name).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no app `{name}`")))?;
            apps.rebuild_prefixes();
            entry
        };
        self.metrics.set_apps(self.app_count());
        let version = entry.current.load_full();
        Self::stop_events(&entry, version.record.limits.request_timeout()).await;
        drain(&version, version.record.limits.request_timeout() + Duration::from_secs(1)).await;
        self.metrics.remove_app(name);
        let app_dir = self.data.app_dir(name);
        let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&app_dir)).await;
        if let Ok(Err(err)) = removed {
            tracing::warn!("app `{name}` removed, but its directory could not be deleted: {err}");
        }
        tracing::info!("removed `{name}`");
        Ok(())
    }

    /// Lets the requests on a replaced version finish, then deletes its directory.
    pub(super) fn retire(self: &Arc<Self>, old: Arc<AppVersion>) {
        tokio::spawn(async move {
            drain(&old, old.record.limits.request_timeout() + Duration::from_secs(1)).await;
            let dir = old.dir.clone();
            drop(old);
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        });
    }

    pub(super) fn check_prefix_free(&self, name: &str, prefix: Option<&str>) -> Result<(), ApiError> {
        let Some(prefix) = prefix else { return Ok(()) };
        let apps = self.apps.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (taken, entry) in &apps.by_prefix {
            if entry.name != name && prefixes_overlap(taken, prefix) {
                return Err(ApiError::new(StatusCode::CONFLICT, format!("route prefix `{prefix}` overlaps `{taken}` of app `{}`", entry.name)));
            }
        }
        Ok(())
    }
}
