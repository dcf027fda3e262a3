//! # omniforge-store
//!
//! The database behind OmniForge: SQLite (default) or PostgreSQL, with embedded migrations,
//! and the repositories over it. Tenant-owned rows are reached only through
//! [`Database::tenant`], which scopes every query to one tenant; [`Database::platform`] holds
//! what is above tenants (tenants themselves, authentication lookups).
//!
//! ```no_run
//! # async fn demo() -> Result<(), omniforge_store::StoreError> {
//! let db = omniforge_store::Database::connect("sqlite://./omniforge-data/omniforge.db").await?;
//! let applied = db.migrate().await?;
//! println!("applied {} migrations", applied.len());
//! # Ok(()) }
//! ```

mod agents;
mod audit;
mod census;
mod database;
mod error;
mod installations;
mod kv;
mod migrations;
mod platform;
mod records;
mod rows;
mod secrets;
mod skills;
mod tasks;
mod tenant;
mod usage;

pub use agents::{
    Agent, AgentFilter, AgentSort, AgentStatus, ExportedAgent, ExportedAgentVersion, NewAgent,
    NewPin, Pin, Saved,
};
pub use audit::MAX_PAGE;
pub use census::Census;
pub use database::{Backend, Database};
pub use error::StoreError;
pub use installations::Installation;
pub use kv::{KV_ENTRY_OVERHEAD, KvExportEntry, KvIncrement, KvQuota, KvUsage, KvWrite};
pub use migrations::MigrationStatus;
pub use omniforge_types::{AgentId, ApiKeyId, SecretName, TaskId, TenantId, UserId};
pub use platform::{Bootstrapped, Platform};
pub use records::{
    ApiKey, ApiKeyCredential, AuditContext, AuditEvent, AuditFilter, NewApiKey, NewUser,
    PLATFORM_ACTOR, Role, Tenant, TenantExport, TenantStatus, User, UserStatus, new_id, now_ms,
};
pub use secrets::{SealedSecret, SecretRecord, StoredSecret};
pub use skills::{NewVersion, Skill, SkillQuery, SkillSort, SkillUpdate, SkillVersion, Visibility};
pub use tasks::{
    Canceled, Claim, Ending, EventKind, Finish, Idempotency, JournalRow, NewEvent, NewTask,
    QueuedTask, Release, StateCount, StepChange, StepWrite, Submission, Task, TaskEvent,
    TaskFilter, TaskListener, TaskSort, TaskState, TaskTarget, TaskTiming, TaskUsage,
};
pub use tenant::TenantStore;
pub use usage::{UsageCounters, UsageDelta};

#[cfg(feature = "testing")]
pub mod testing;
