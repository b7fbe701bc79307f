//! `drover bench scheduler`: placements per second of the pure scheduler.
//!
//! Registers service jobs of 1,000 allocations each (with a kernel
//! constraint and a host-group glob that about 69 % of the synthetic nodes
//! satisfy) one after the other on a synthetic cluster held in the Raft
//! state machine's in-memory `State` (no log, no disk), schedules each
//! against the view the leader uses, verifies the plan and commits it with
//! the state machine's `ApplyPlan`, until the cluster holds the target
//! number of allocations. Only `schedule` counts towards placements per
//! second; verification and commit are reported separately.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;

use drover_scheduler::harness::{registration, synthetic_node, synthetic_service_job};
use drover_scheduler::{random_uuid, schedule, verify_plan};
use drover_server::StateView;
use drover_state::{Command, State};
use drover_types::{EvalId, EvalStatus, EvalTrigger, Evaluation, Timestamp};

/// Allocations per job.
const ALLOCS_PER_JOB: u32 = 1_000;

#[derive(Debug, Serialize)]
struct Report {
    hardware: String,
    num_nodes: usize,
    num_allocs_placed: usize,
    num_jobs: usize,
    num_unplaced: u64,
    schedule_seconds: f64,
    placements_per_second: f64,
    last_tenth_placements_per_second: f64,
    verify_seconds: f64,
    commit_seconds: f64,
}

pub(crate) fn run(num_nodes: usize, num_allocs: usize, json: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(num_nodes > 0, "--nodes must be at least 1");
    anyhow::ensure!(num_allocs >= ALLOCS_PER_JOB as usize, "--allocs must be at least {ALLOCS_PER_JOB}");
    let mut rng = SmallRng::seed_from_u64(20_240_601);
    let now = Timestamp::from_millis(1_700_000_000_000);
    let mut state = State::new();
    for number in 0..num_nodes {
        let registration = registration(&synthetic_node(number, &mut rng));
        propose(&mut state, Command::RegisterNode { registration, evals: Vec::new(), now })?;
    }
    let num_jobs = num_allocs / ALLOCS_PER_JOB as usize;
    let num_tail_jobs = (num_jobs / 10).max(1);
    let (mut schedule_time, mut tail_schedule_time) = (Duration::ZERO, Duration::ZERO);
    let (mut verify_time, mut commit_time) = (Duration::ZERO, Duration::ZERO);
    let (mut num_placed, mut num_tail_placed, mut num_unplaced) = (0usize, 0usize, 0u64);
    for job_number in 0..num_jobs {
        let job = synthetic_service_job(&format!("bench-{job_number:05}"), ALLOCS_PER_JOB, true);
        let job_id = job.id.clone();
        let eval_id = EvalId::new(random_uuid(&mut rng));
        let eval = Evaluation::new(eval_id.clone(), job_id.clone(), job.priority, EvalTrigger::JobRegister, now);
        propose(&mut state, Command::RegisterJob { job, eval, now })?;
        // The evaluation as the broker hands it out: stored, with the job's index.
        let eval = state.eval(&eval_id).map(|stored| Evaluation::clone(stored)).context("the evaluation is stored")?;

        let started = Instant::now();
        let plan = schedule(&StateView::new(&state), state.job(&job_id).map(|job| job.as_ref()), &eval, now, &mut rng);
        let elapsed = started.elapsed();
        schedule_time += elapsed;
        num_placed += plan.place.len();
        num_unplaced += plan.failed.values().map(|failure| u64::from(failure.num_unplaced)).sum::<u64>();
        if job_number >= num_jobs - num_tail_jobs {
            tail_schedule_time += elapsed;
            num_tail_placed += plan.place.len();
        }

        let started = Instant::now();
        let verified = verify_plan(&StateView::new(&state), &plan);
        verify_time += started.elapsed();
        anyhow::ensure!(verified.is_fully_accepted(), "a plan on an unchanged cluster must be accepted in full");
        let mut completed = eval;
        completed.status = EvalStatus::Complete;
        let command =
            Command::ApplyPlan { plan: Box::new(verified.accepted), eval: completed, blocked_eval: None, now };
        let started = Instant::now();
        propose(&mut state, command)?;
        commit_time += started.elapsed();
    }
    let report = Report {
        hardware: super::hardware(),
        num_nodes,
        num_allocs_placed: num_placed,
        num_jobs,
        num_unplaced,
        schedule_seconds: schedule_time.as_secs_f64(),
        placements_per_second: num_placed as f64 / schedule_time.as_secs_f64(),
        last_tenth_placements_per_second: num_tail_placed as f64 / tail_schedule_time.as_secs_f64(),
        verify_seconds: verify_time.as_secs_f64(),
        commit_seconds: commit_time.as_secs_f64(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("hardware                 {}", report.hardware);
        println!("nodes                    {}", report.num_nodes);
        println!(
            "allocations placed       {} ({} jobs, {} unplaced)",
            report.num_allocs_placed, report.num_jobs, report.num_unplaced
        );
        println!("scheduling time          {:.2} s", report.schedule_seconds);
        println!("placements/s             {:.0}", report.placements_per_second);
        println!("placements/s, last 10 %  {:.0}", report.last_tenth_placements_per_second);
        println!("plan verification        {:.2} s", report.verify_seconds);
        println!("plan commit (state)      {:.2} s", report.commit_seconds);
    }
    Ok(ExitCode::SUCCESS)
}

/// Applies `command` at the next Raft index, as every server does once it
/// is committed.
fn propose(state: &mut State, command: Command) -> anyhow::Result<()> {
    let index = state.last_index() + 1;
    match state.apply(index, &command) {
        drover_state::CommandResponse::Rejected { error, .. } => {
            anyhow::bail!("the state machine refused {command}: {error}")
        }
        _ => Ok(()),
    }
}
