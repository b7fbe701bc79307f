//! The job file reader and the API refuse the same jobs (issue 12, finding
//! 13): the API used to accept output files rotated on every byte, restarts
//! and reschedules without pause and other namespaces, all of which a job
//! file refuses. For random settings of those blocks, the job file is read
//! once as HCL and once as the job the API would receive (a valid job with
//! the same values set), and `Job::validate`, the one check the server
//! applies, must accept exactly when the reader does.

use drover_jobspec::{Source, VarInputs, parse_job};
use drover_types::DurationSpec;
use drover_types::job::{DelayFunction, Job, LogPolicy, ReschedulePolicy, RestartMode, RestartPolicy, UpdateStrategy};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Settings {
    restart_attempts: u32,
    restart_interval: u64,
    restart_delay: u64,
    restart_delay_mode: bool,
    reschedule_delay: u64,
    reschedule_max_delay: u64,
    reschedule_exponential: bool,
    max_files: u64,
    max_file_size: u64,
    min_healthy_time: u64,
    healthy_deadline: u64,
    progress_deadline: u64,
    stagger: u64,
    namespace: Option<&'static str>,
    /// The one block set from these values (0 restart, 1 reschedule,
    /// 2 update, 3 logs, 4 namespace); the others keep their defaults, so
    /// that about half of the jobs are valid and both answers are tried.
    varied: u8,
}

fn settings() -> impl Strategy<Value = Settings> {
    let seconds = || prop::sample::select(vec![0_u64, 1, 4, 5, 10, 15, 60, 300, 600, 1_800]);
    (
        (0_u32..5, seconds(), seconds(), any::<bool>()),
        (seconds(), seconds(), any::<bool>()),
        (
            prop::sample::select(vec![0_u64, 1, 10, 1_000, 1_001]),
            prop::sample::select(vec![0_u64, 1, 10, 1_048_576, 1_048_577]),
        ),
        (seconds(), seconds(), seconds(), seconds()),
        prop::sample::select(vec![None, Some("default"), Some("team-a")]),
        0_u8..5,
    )
        .prop_map(
            |(
                (restart_attempts, restart_interval, restart_delay, restart_delay_mode),
                (reschedule_delay, reschedule_max_delay, reschedule_exponential),
                (max_files, max_file_size),
                (min_healthy_time, healthy_deadline, progress_deadline, stagger),
                namespace,
                varied,
            )| Settings {
                restart_attempts,
                restart_interval,
                restart_delay,
                restart_delay_mode,
                reschedule_delay,
                reschedule_max_delay,
                reschedule_exponential,
                max_files,
                max_file_size,
                min_healthy_time,
                healthy_deadline,
                progress_deadline,
                stagger,
                namespace,
                varied,
            },
        )
}

/// The job file with the varied block of `settings`; with `plain`,
/// without it (the valid job the API body is made from).
fn job_file(settings: &Settings, plain: bool) -> String {
    let s = settings;
    let varied = if plain { u8::MAX } else { s.varied };
    let namespace = match (varied, s.namespace) {
        (4, Some(namespace)) => format!("namespace = \"{namespace}\""),
        _ => String::new(),
    };
    let group_block = match varied {
        0 => format!(
            "restart {{\n attempts = {}\n interval = \"{}s\"\n delay = \"{}s\"\n mode = \"{}\"\n }}",
            s.restart_attempts,
            s.restart_interval,
            s.restart_delay,
            if s.restart_delay_mode { "delay" } else { "fail" },
        ),
        1 => format!(
            "reschedule {{\n delay = \"{}s\"\n max_delay = \"{}s\"\n delay_function = \"{}\"\n }}",
            s.reschedule_delay,
            s.reschedule_max_delay,
            if s.reschedule_exponential { "exponential" } else { "constant" },
        ),
        2 => format!(
            "update {{\n min_healthy_time = \"{}s\"\n healthy_deadline = \"{}s\"\n progress_deadline = \"{}s\"\n stagger = \"{}s\"\n }}",
            s.min_healthy_time, s.healthy_deadline, s.progress_deadline, s.stagger,
        ),
        _ => String::new(),
    };
    let logs = match varied {
        3 => format!("logs {{\n max_files = {}\n max_file_size = {}\n }}", s.max_files, s.max_file_size),
        _ => String::new(),
    };
    format!(
        r#"
job "agree" {{
  {namespace}
  group "g" {{
    {group_block}
    task "t" {{
      driver = "exec"
      config {{ command = "/bin/true" }}
      {logs}
    }}
  }}
}}
"#
    )
}

/// The job the API would receive: the plain job with the varied block set
/// to the same values.
fn api_job(settings: &Settings) -> Job {
    let s = settings;
    let mut job = parse_job(&Source::new("plain.nomad.hcl", job_file(s, true)), &VarInputs::default())
        .expect("the plain job is valid");
    let group = &mut job.groups[0];
    match s.varied {
        0 => {
            group.restart = RestartPolicy {
                attempts: s.restart_attempts,
                interval: DurationSpec::from_secs(s.restart_interval),
                delay: DurationSpec::from_secs(s.restart_delay),
                mode: if s.restart_delay_mode { RestartMode::Delay } else { RestartMode::Fail },
            }
        }
        1 => {
            group.reschedule = Some(ReschedulePolicy {
                delay: DurationSpec::from_secs(s.reschedule_delay),
                max_delay: DurationSpec::from_secs(s.reschedule_max_delay),
                delay_function: if s.reschedule_exponential {
                    DelayFunction::Exponential
                } else {
                    DelayFunction::Constant
                },
                ..group.reschedule.unwrap_or(ReschedulePolicy::SERVICE_DEFAULT)
            })
        }
        2 => {
            group.update = Some(UpdateStrategy {
                min_healthy_time: DurationSpec::from_secs(s.min_healthy_time),
                healthy_deadline: DurationSpec::from_secs(s.healthy_deadline),
                progress_deadline: DurationSpec::from_secs(s.progress_deadline),
                stagger: DurationSpec::from_secs(s.stagger),
                ..group.update.unwrap_or_default()
            })
        }
        // Out-of-range numbers reach the API as they are.
        3 => {
            group.tasks[0].logs = Some(LogPolicy {
                max_files: u32::try_from(s.max_files).unwrap_or(u32::MAX),
                max_file_size_mb: s.max_file_size,
            })
        }
        _ => job.namespace = s.namespace.map(str::to_owned),
    }
    job
}

proptest! {
    #[test]
    fn the_api_accepts_a_job_exactly_when_its_job_file_is_accepted(settings in settings()) {
        let file = parse_job(&Source::new("agree.nomad.hcl", job_file(&settings, false)), &VarInputs::default());
        let api = api_job(&settings).validate();
        prop_assert_eq!(
            file.is_ok(),
            api.is_ok(),
            "job file: {:?}\nAPI: {:?}",
            file.as_ref().err().map(ToString::to_string),
            api.err()
        );
    }
}
