//! drover's domain model.
//!
//! Every other crate speaks in these types: a [`Job`] is parsed from a job
//! file, the scheduler turns it into a [`Plan`] of [`Allocation`]s on
//! [`Node`]s, the Raft state machine stores them, agents run them. The crate
//! does no I/O and knows nothing of HTTP, Raft or the clock: timestamps and
//! ids are values chosen by the caller, so every function here is
//! deterministic.

pub mod acl;
pub mod alloc;
pub mod deployment;
pub mod diff;
pub mod error;
pub mod eval;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod glob;
pub mod ids;
pub mod interpolate;
pub mod job;
pub mod log;
pub mod network;
pub mod node;
pub mod plan;
pub mod resources;
pub mod serde_bytes;
pub mod suggest;
pub mod task_files;
pub mod text;
pub mod time;
pub mod usage;
pub mod validate;
pub mod variable;
pub mod version;
pub mod workflow;

pub use alloc::{
    AllocClientStatus, AllocDeploymentStatus, AllocDesiredStatus, Allocation, CheckHealth, CheckStatus,
    ClientAllocUpdate, DesiredTransition, RescheduleEvent, TaskEvent, TaskEventKind, TaskLifecycleState, TaskState,
};
pub use deployment::{Deployment, DeploymentGroup, DeploymentStatus};
pub use error::{CodedError, ErrorCode};
pub use eval::{EvalStatus, EvalTrigger, Evaluation, PlacementFailure};
pub use ids::{AllocId, DeploymentId, EvalId, JobId, NodeId};
pub use interpolate::{NodeView, interpolate, interpolate_lenient};
pub use job::{
    Affinity, Check, CheckKind, CheckRestart, Constraint, ConstraintOperator, DelayFunction, DisconnectStrategy,
    Driver, EphemeralDisk, HealthCheckMode, Job, JobStatus, JobType, LifecycleHook, LogPolicy, MigrateStrategy,
    ParameterizedConfig, PayloadMode, PeriodicConfig, ReconcileMode, ReschedulePolicy, RestartMode, RestartPolicy,
    Scaling, ServerManaged, Service, Spread, SpreadTarget, Task, TaskConfig, TaskGroup, TaskLifecycle, UpdateStrategy,
};
pub use log::{LogRecord, LogStream};
pub use network::{AllocatedPort, NetworkSpec, PortRange, PortSpec};
pub use node::{
    DrainStrategy, Node, NodeChange, NodeEligibility, NodeLabels, NodeRegistration, NodeStatus, Protection, Retirement,
};
pub use plan::{AllocUpdate, GroupChanges, InPlaceUpdate, Plan, PlanStop};
pub use resources::Resources;
pub use task_files::{
    ArtifactMode, ChangeMode, ChangeScript, TaskArtifact, TaskTemplate, TemplateSource, TemplateWait,
};
pub use time::{DurationSpec, Timestamp};
pub use variable::Variable;
