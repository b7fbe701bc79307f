//! Placements per second of the scheduler on synthetic fleets.
//!
//! Registers service jobs of 1,000 allocations each (with a kernel
//! constraint and a host-group glob, which about 69 % of synthetic nodes
//! satisfy) one after the other on a synthetic cluster, schedules each with
//! [`schedule`], verifies the plan with [`verify_plan`] and commits it with
//! the harness, until the cluster holds the target number of allocations.
//! Only `schedule` counts towards placements per second; verification and
//! commit times are reported separately.
//!
//! ```text
//! cargo bench -p drover-scheduler --bench scheduler            # all four scenarios
//! cargo bench -p drover-scheduler --bench scheduler -- --quick # 100,000 allocations only
//! cargo bench -p drover-scheduler --bench scheduler -- --only 10000:100000
//! ```

use std::time::{Duration, Instant};

use drover_scheduler::harness::{Cluster, synthetic_service_job};
use drover_scheduler::{ClusterView, schedule, verify_plan};
use drover_types::{EvalTrigger, Timestamp};
use rand::SeedableRng;
use rand::rngs::SmallRng;

/// Allocations per job.
const ALLOCS_PER_JOB: u32 = 1_000;

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let quick = arguments.iter().any(|argument| argument == "--quick");
    // `--only NODES:ALLOCS` runs one scenario (for profiling).
    let only = arguments.iter().position(|argument| argument == "--only").and_then(|position| {
        let (nodes, allocs) = arguments.get(position + 1)?.split_once(':')?;
        Some((nodes.parse::<usize>().ok()?, allocs.parse::<usize>().ok()?))
    });
    let scenarios: Vec<(usize, usize)> = match only {
        Some(scenario) => vec![scenario],
        None if quick => vec![(1_000, 100_000), (10_000, 100_000)],
        None => vec![(1_000, 100_000), (1_000, 1_000_000), (10_000, 100_000), (10_000, 1_000_000)],
    };
    println!(
        "{:>6} {:>10} {:>6} {:>10} {:>13} {:>17} {:>9} {:>9} {:>8}",
        "nodes", "allocs", "jobs", "schedule", "placements/s", "last 10% place/s", "verify", "commit", "unplaced"
    );
    for (num_nodes, num_allocs) in scenarios {
        run_scenario(num_nodes, num_allocs);
    }
}

fn run_scenario(num_nodes: usize, num_allocs: usize) {
    let mut rng = SmallRng::seed_from_u64(20_240_601);
    let mut cluster = Cluster::synthetic(num_nodes, &mut rng);
    let now = Timestamp::from_millis(1_700_000_000_000);
    let num_jobs = num_allocs / ALLOCS_PER_JOB as usize;
    let num_tail_jobs = (num_jobs / 10).max(1);
    let mut schedule_time = Duration::ZERO;
    let mut tail_schedule_time = Duration::ZERO;
    let mut verify_time = Duration::ZERO;
    let mut commit_time = Duration::ZERO;
    let mut num_placed = 0_usize;
    let mut num_tail_placed = 0_usize;
    let mut num_unplaced = 0_u64;
    for job_number in 0..num_jobs {
        let job = synthetic_service_job(&format!("bench-{job_number:05}"), ALLOCS_PER_JOB, true);
        let job_id = job.id.clone();
        cluster.register_job(job, now);
        let eval = cluster.evaluation(&job_id, EvalTrigger::JobRegister, now, &mut rng);

        let schedule_started = Instant::now();
        let plan = schedule(&cluster, cluster.job(&job_id), &eval, now, &mut rng);
        let elapsed = schedule_started.elapsed();
        schedule_time += elapsed;
        num_placed += plan.place.len();
        num_unplaced += plan.failed.values().map(|failure| u64::from(failure.num_unplaced)).sum::<u64>();
        if job_number >= num_jobs - num_tail_jobs {
            tail_schedule_time += elapsed;
            num_tail_placed += plan.place.len();
        }

        let verify_started = Instant::now();
        let verified = verify_plan(&cluster, &plan);
        verify_time += verify_started.elapsed();
        assert!(verified.is_fully_accepted(), "a plan on an unchanged cluster is accepted in full");

        let commit_started = Instant::now();
        cluster.apply(&verified.accepted, now);
        commit_time += commit_started.elapsed();
    }
    println!(
        "{:>6} {:>10} {:>6} {:>9.2}s {:>13.0} {:>17.0} {:>8.2}s {:>8.2}s {:>8}",
        num_nodes,
        num_placed,
        num_jobs,
        schedule_time.as_secs_f64(),
        num_placed as f64 / schedule_time.as_secs_f64(),
        num_tail_placed as f64 / tail_schedule_time.as_secs_f64(),
        verify_time.as_secs_f64(),
        commit_time.as_secs_f64(),
        num_unplaced,
    );
}
