//! Skill resolution for invocations: which version of `namespace/name` a tenant runs, and the
//! prepared form of that version (parsed manifest, compiled input schema, loaded component).
//!
//! Skill metadata is cached per (tenant, skill) and re-read after `metadata_recheck_ms`;
//! changes through this server evict it at once. Prepared versions are immutable and cached
//! by (skill id, version) in an LRU.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;
use omniforge_registry::{
    Manifest, Permission, Permissions, PublishedVersion, Sha256Digest, describe_permissions,
    parse_requirement, resolve,
};
use omniforge_runtime::{ComponentDigest, LoadedSkill, Runtime};
use omniforge_store::{Database, Installation, Skill, SkillVersion, StoreError, TenantId};
use omniforge_types::SkillName;
use semver::{Version, VersionReq};

use crate::compiles::{Compiles, Source};

/// A skill as one tenant sees it, with every version's manifest parsed.
pub struct Listing {
    /// The skill.
    pub skill: Skill,
    /// Its versions, newest first, with their manifests.
    pub versions: Vec<(SkillVersion, Manifest)>,
    /// The tenant's installation, when the skill is another tenant's.
    pub installation: Option<Installation>,
}

impl Listing {
    /// `version` with its manifest, if it was published.
    pub fn version(&self, version: &Version) -> Option<&(SkillVersion, Manifest)> {
        self.versions.iter().find(|(v, _)| v.version == *version)
    }
}

/// A version ready to run.
pub struct Prepared {
    /// Its manifest.
    pub manifest: Manifest,
    /// Its input schema, compiled.
    pub validator: Option<jsonschema::Validator>,
    /// Its output schema, compiled: outputs are checked against it after the skill returns.
    pub output_validator: Option<jsonschema::Validator>,
    /// Its component, loaded.
    pub loaded: Arc<LoadedSkill>,
}

/// A newer version the installation does not use yet because it asks for more permissions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PendingUpdate {
    /// The newer version.
    pub version: String,
    /// What it asks for beyond the accepted permissions.
    #[schema(value_type = Vec<String>)]
    pub new_permissions: Vec<Permission>,
}

/// What an invocation runs.
pub struct Resolved {
    /// The skill.
    pub listing: Arc<Listing>,
    /// The chosen version.
    pub version: Version,
    /// Its prepared form.
    pub prepared: Arc<Prepared>,
    /// A newer version waiting for the installation to accept its permissions.
    pub pending: Option<PendingUpdate>,
}

/// Why a skill cannot be invoked.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No such skill visible to the tenant.
    #[error("no such skill")]
    NotFound,
    /// The requirement is not semver.
    #[error("the version requirement is malformed: {0}")]
    BadRequirement(String),
    /// No version matches.
    #[error("{0}")]
    NoMatch(String),
    /// Another tenant's public skill the tenant has not installed.
    #[error("another tenant's public skill, not installed")]
    NotInstalled,
    /// Every matching version asks for permissions the installation has not accepted.
    #[error("version {} asks for permissions not accepted: {}", .0.version, describe_permissions(&.0.new_permissions))]
    PermissionsNotAccepted(PendingUpdate),
    /// The chosen version's component is still compiling after the wait allowed for it.
    #[error("version {version} is still compiling")]
    Compiling {
        /// The version.
        version: Version,
    },
    /// Loading failed (storage, database, a component the runtime refuses).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ResolveError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

type ListingCache = LruCache<(TenantId, SkillName), (Instant, Option<Arc<Listing>>)>;

/// Listings kept in memory (misses included, so repeated invocations of a missing name do
/// not each query the database); least recently used evicted.
const LISTING_CAPACITY: usize = 10_000;

/// Resolution and preparation of skills.
pub struct Catalog {
    db: Database,
    runtime: Arc<Runtime>,
    recheck: Duration,
    listings: Mutex<ListingCache>,
    /// Bumped by every [`Catalog::forget`]: a listing read from the database while it
    /// changed is used once but not cached, so a change is never hidden by a read that
    /// raced it.
    generation: AtomicU64,
    prepared: Mutex<LruCache<(String, Version), Arc<Prepared>>>,
    compiles: Arc<Compiles>,
    /// How long resolution waits for a compile before answering [`ResolveError::Compiling`].
    compile_wait: Duration,
}

/// A stored schema (JSON text), compiled; `which` names it in errors.
fn compile_schema(
    which: &str,
    text: Option<&str>,
) -> Result<Option<jsonschema::Validator>, ResolveError> {
    text.map(|text| {
        let broken = |e: &dyn std::fmt::Display| {
            ResolveError::Internal(format!("stored {which} schema: {e}"))
        };
        let schema: serde_json::Value = serde_json::from_str(text).map_err(|e| broken(&e))?;
        jsonschema::validator_for(&schema).map_err(|e| broken(&e))
    })
    .transpose()
}

impl Catalog {
    /// A catalog over the database, the blob store and the runtime.
    pub fn new(
        db: Database,
        runtime: Arc<Runtime>,
        compiles: Arc<Compiles>,
        recheck: Duration,
        compile_wait: Duration,
    ) -> Self {
        Self {
            db,
            runtime,
            recheck,
            listings: Mutex::new(LruCache::new(
                NonZeroUsize::new(LISTING_CAPACITY).expect("positive"),
            )),
            generation: AtomicU64::new(0),
            prepared: Mutex::new(LruCache::new(NonZeroUsize::new(1024).expect("positive"))),
            compiles,
            compile_wait,
        }
    }

    fn listings(&self) -> MutexGuard<'_, ListingCache> {
        self.listings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every tenant's cached view of `skill` (after a change).
    pub fn forget(&self, skill: &SkillName) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut listings = self.listings();
        let stale: Vec<_> = listings
            .iter()
            .filter(|((_, name), _)| name == skill)
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            listings.pop(&key);
        }
    }

    /// Forgets every cached view (changes may have been missed).
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.listings().clear();
    }

    /// The skill as `tenant` sees it.
    pub async fn listing(
        &self,
        tenant: &TenantId,
        skill: &SkillName,
    ) -> Result<Option<Arc<Listing>>, StoreError> {
        let key = (tenant.clone(), skill.clone());
        if let Some((at, listing)) = self.listings().get(&key)
            && at.elapsed() < self.recheck
        {
            return Ok(listing.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        // Boxed: the database read is the rare path, and inline it would make every
        // invocation's future (moved and copied on each request) as large as sqlx's.
        let listing = Box::pin(self.load_listing(tenant, skill)).await?;
        let mut listings = self.listings();
        if self.generation.load(Ordering::SeqCst) == generation {
            listings.put(key, (Instant::now(), listing.clone()));
        }
        Ok(listing)
    }

    async fn load_listing(
        &self,
        tenant: &TenantId,
        skill: &SkillName,
    ) -> Result<Option<Arc<Listing>>, StoreError> {
        let store = self.db.tenant(tenant);
        Ok(match store.skill(skill.namespace(), skill.name()).await? {
            None => None,
            Some(skill) => {
                let mut versions = Vec::new();
                for v in store.versions(&skill.id).await? {
                    let manifest: Manifest = serde_json::from_str(&v.manifest).map_err(|e| {
                        StoreError::Corrupt(format!("manifest of {}: {e}", v.version))
                    })?;
                    versions.push((v, manifest));
                }
                let installation = if skill.tenant_id == *tenant {
                    None
                } else {
                    store.installation(&skill.id).await?
                };
                Some(Arc::new(Listing {
                    skill,
                    versions,
                    installation,
                }))
            }
        })
    }

    /// Chooses and prepares the version of `skill` that `tenant` runs for `requirement`
    /// (default: the newest that is not yanked).
    pub async fn resolve(
        &self,
        tenant: &TenantId,
        skill: &SkillName,
        requirement: Option<&str>,
    ) -> Result<Resolved, ResolveError> {
        let listing = self
            .listing(tenant, skill)
            .await?
            .ok_or(ResolveError::NotFound)?;
        let (chosen, pending) = choose(&listing, tenant, requirement)?;
        let prepared = self.prepare(&listing, &chosen).await?;
        Ok(Resolved {
            listing,
            version: chosen,
            prepared,
            pending,
        })
    }

    async fn prepare(
        &self,
        listing: &Listing,
        version: &Version,
    ) -> Result<Arc<Prepared>, ResolveError> {
        let key = (listing.skill.id.clone(), version.clone());
        if let Some(prepared) = self
            .prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(Arc::clone(prepared));
        }
        let (stored, manifest) = listing
            .versions
            .iter()
            .find(|(v, _)| v.version == *version)
            .ok_or_else(|| ResolveError::Internal("the chosen version vanished".into()))?;
        let prepared = Arc::new(Box::pin(self.prepare_version(stored, manifest.clone())).await?);
        self.prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(key, Arc::clone(&prepared));
        Ok(prepared)
    }

    /// Loads a stored version's component (compiling it if no replica-local artifact exists,
    /// waiting for that at most the catalog's compile wait) and compiles its input schema.
    pub async fn prepare_version(
        &self,
        stored: &SkillVersion,
        manifest: Manifest,
    ) -> Result<Prepared, ResolveError> {
        let digest = stored.component_sha256;
        let blob = digest;
        let loaded = match self.load(&digest)? {
            Some(loaded) => loaded,
            None => {
                let compiling = self.compiles.start(digest, Source::Blob(blob));
                match compiling.wait(self.compile_wait).await {
                    None => {
                        return Err(ResolveError::Compiling {
                            version: stored.version.clone(),
                        });
                    }
                    Some(Err(e)) => return Err(ResolveError::Internal(e)),
                    Some(Ok(())) => self.load(&digest)?.ok_or_else(|| {
                        ResolveError::Internal(format!("{digest} compiled but cannot be loaded"))
                    })?,
                }
            }
        };
        Ok(Prepared {
            manifest,
            validator: compile_schema("input", stored.input_schema.as_deref())?,
            output_validator: compile_schema("output", stored.output_schema.as_deref())?,
            loaded,
        })
    }

    fn load(&self, digest: &ComponentDigest) -> Result<Option<Arc<LoadedSkill>>, ResolveError> {
        self.runtime
            .load_compiled(digest)
            .map_err(|e| ResolveError::Internal(format!("loading {digest}: {e}")))
    }

    /// Whether the component `blob` is compiled on this server (an invocation will not wait).
    pub fn is_compiled(&self, blob: &Sha256Digest) -> bool {
        self.runtime.is_compiled(blob)
    }
}

/// The version of `listing` that `tenant` runs for `requirement` (default: the newest not
/// yanked), and a newer one its installation has not accepted the permissions of. Reads only
/// the listing: nothing is loaded or compiled.
pub fn choose(
    listing: &Listing,
    tenant: &TenantId,
    requirement: Option<&str>,
) -> Result<(Version, Option<PendingUpdate>), ResolveError> {
    let requirement = requirement.unwrap_or("*");
    let wanted = parse_requirement(requirement)
        .map_err(|e| ResolveError::BadRequirement(format!("{requirement:?}: {e}")))?;
    let published: Vec<PublishedVersion> = listing
        .versions
        .iter()
        .map(|(v, _)| PublishedVersion {
            version: v.version.clone(),
            yanked: v.yanked,
        })
        .collect();
    let no_match =
        || ResolveError::NoMatch(format!("no published version matches {requirement:?}"));
    let (chosen, pending) = if listing.skill.tenant_id == *tenant {
        let chosen = resolve(&published, &wanted).ok_or_else(no_match)?;
        (chosen.version.clone(), None)
    } else {
        let installation = listing
            .installation
            .as_ref()
            .ok_or(ResolveError::NotInstalled)?;
        let installed: VersionReq = parse_requirement(&installation.version_req)
            .map_err(|e| ResolveError::Internal(format!("stored requirement: {e}")))?;
        let accepted: Permissions = serde_json::from_str(&installation.accepted_permissions)
            .map_err(|e| ResolveError::Internal(format!("stored permissions: {e}")))?;
        // Newest first: the first matching version that needs nothing new is used; a
        // newer one that needs more is reported.
        let mut pending = None;
        let mut chosen = None;
        for (stored, manifest) in &listing.versions {
            let version = &stored.version;
            let candidate = PublishedVersion {
                version: version.clone(),
                yanked: stored.yanked,
            };
            let matches = |req: &VersionReq| resolve([&candidate], req).is_some();
            if !matches(&wanted) || !matches(&installed) {
                continue;
            }
            let new = manifest.permissions.beyond(&accepted);
            if new.is_empty() {
                chosen = Some(version.clone());
                break;
            }
            pending.get_or_insert(PendingUpdate {
                version: version.to_string(),
                new_permissions: new,
            });
        }
        match (chosen, pending) {
            (Some(chosen), pending) => (chosen, pending),
            (None, Some(pending)) => return Err(ResolveError::PermissionsNotAccepted(pending)),
            (None, None) => return Err(no_match()),
        }
    };
    Ok((chosen, pending))
}
