//! `drover bench scheduler`: placements per second of the pure scheduler.
//!
//! Registers service jobs of 1,000 allocations each (with a kernel
//! constraint and a host-group glob that about 69 % of the synthetic nodes
//! satisfy) one after the other on a synthetic cluster, schedules each,
//! verifies the plan and commits it through the scheduler's harness, until
//! the cluster holds the target number of allocations. Only `schedule`
//! counts towards placements per second; verification and commit are
//! reported separately.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;

use drover_scheduler::harness::{Cluster, synthetic_service_job};
use drover_scheduler::{ClusterView, schedule, verify_plan};
use drover_types::{EvalTrigger, Timestamp};

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
    let mut cluster = Cluster::synthetic(num_nodes, &mut rng);
    let now = Timestamp::from_millis(1_700_000_000_000);
    let num_jobs = num_allocs / ALLOCS_PER_JOB as usize;
    let num_tail_jobs = (num_jobs / 10).max(1);
    let (mut schedule_time, mut tail_schedule_time) = (Duration::ZERO, Duration::ZERO);
    let (mut verify_time, mut commit_time) = (Duration::ZERO, Duration::ZERO);
    let (mut num_placed, mut num_tail_placed, mut num_unplaced) = (0usize, 0usize, 0u64);
    for job_number in 0..num_jobs {
        let job = synthetic_service_job(&format!("bench-{job_number:05}"), ALLOCS_PER_JOB, true);
        let job_id = job.id.clone();
        cluster.register_job(job, now);
        let eval = cluster.evaluation(&job_id, EvalTrigger::JobRegister, now, &mut rng);

        let started = Instant::now();
        let plan = schedule(&cluster, cluster.job(&job_id), &eval, now, &mut rng);
        let elapsed = started.elapsed();
        schedule_time += elapsed;
        num_placed += plan.place.len();
        num_unplaced += plan.failed.values().map(|failure| u64::from(failure.num_unplaced)).sum::<u64>();
        if job_number >= num_jobs - num_tail_jobs {
            tail_schedule_time += elapsed;
            num_tail_placed += plan.place.len();
        }

        let started = Instant::now();
        let verified = verify_plan(&cluster, &plan);
        verify_time += started.elapsed();
        anyhow::ensure!(verified.is_fully_accepted(), "a plan on an unchanged cluster must be accepted in full");
        let started = Instant::now();
        cluster.apply(&verified.accepted, now);
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
        println!("plan commit (harness)    {:.2} s", report.commit_seconds);
    }
    Ok(ExitCode::SUCCESS)
}
