//! Simulation tests: a processor cluster with a fixed capacity per replica, an input rate that steps,
//! lag that accumulates tick by tick, pods that become ready one tick after they are added, and
//! optionally a store restore (with a much lower processing rate) after every change of replicas.

use super::*;

/// Seconds between two decisions, as a controller resyncing every 15 s would make them.
const TICK: u64 = 15;

fn policy(max_replicas: u32) -> AutoscalePolicy {
    AutoscalePolicy {
        min_replicas: 1,
        max_replicas,
        target_lag_seconds: 30.0,
        scale_down_stabilization_seconds: 300,
    }
}

/// A small deterministic noise source (xorshift64*), uniform in `[-amplitude, amplitude]`.
struct Noise {
    state: u64,
    amplitude: f64,
}

impl Noise {
    fn factor(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let unit = f64::from(
            u32::try_from(self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32).unwrap_or(0),
        ) / f64::from(u32::MAX);
        1.0 + self.amplitude * (2.0 * unit - 1.0)
    }
}

struct Cluster {
    /// Records per second one ready replica processes when not restoring.
    capacity: f64,
    partitions: u32,
    replicas: u32,
    /// Replicas added by the last decision, not ready until the next tick has passed.
    starting: u32,
    lag: f64,
    input_rate: f64,
    now: u64,
    /// Ticks a restore lasts after each change of replicas (0: no restores).
    restore_ticks: u64,
    restoring_left: u64,
    /// Fraction of the capacity left for processing while restoring.
    restore_speed: f64,
    noise: Option<Noise>,
    policy: AutoscalePolicy,
    state: AutoscalerState,
    decisions: Vec<ScalingDecision>,
}

impl Cluster {
    fn new(capacity: f64, partitions: u32, replicas: u32, input_rate: f64) -> Self {
        Self {
            capacity,
            partitions,
            replicas,
            starting: 0,
            lag: 0.0,
            input_rate,
            now: 1_000_000,
            restore_ticks: 0,
            restoring_left: 0,
            restore_speed: 0.1,
            noise: None,
            policy: policy(64),
            state: AutoscalerState::default(),
            decisions: Vec::new(),
        }
    }

    /// One tick of processing followed by one decision, which is applied.
    fn tick(&mut self) -> &ScalingDecision {
        let ready = self.replicas - self.starting;
        self.starting = 0;
        let restoring = self.restoring_left > 0;
        self.restoring_left = self.restoring_left.saturating_sub(1);
        let per_replica = if restoring {
            self.capacity * self.restore_speed
        } else {
            self.capacity
        };
        let noise = self.noise.as_mut().map_or(1.0, Noise::factor);
        let input_rate = self.input_rate * noise;
        let seconds = 15.0;
        let can_process = per_replica * f64::from(ready) * seconds;
        let processed = (self.lag + input_rate * seconds).min(can_process);
        self.lag += input_rate * seconds - processed;
        self.now += TICK;

        let measure_noise = self.noise.as_mut().map_or(1.0, Noise::factor);
        let observation = ProcessorObservation {
            now_seconds: self.now,
            current_replicas: self.replicas,
            ready_replicas: ready,
            partitions: self.partitions,
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            total_lag: self.lag.round() as u64,
            input_rate,
            processing_rate: (ready > 0).then(|| processed / seconds * measure_noise),
            // A restoring task is busy, just not with input records.
            busy_ratio: (can_process > 0.0).then(|| {
                if restoring {
                    1.0
                } else {
                    processed / can_process
                }
            }),
            restoring,
        };
        let decision = decide(&self.policy, &observation, &mut self.state);
        if decision.desired_replicas != self.replicas {
            self.starting = decision.desired_replicas.saturating_sub(self.replicas);
            self.replicas = decision.desired_replicas;
            if self.restore_ticks > 0 {
                self.restoring_left = self.restore_ticks;
            }
        }
        self.decisions.push(decision);
        self.decisions.last().unwrap()
    }

    fn run(&mut self, ticks: usize) -> Vec<u32> {
        (0..ticks).map(|_| self.tick().desired_replicas).collect()
    }
}

fn changes(replicas: &[u32]) -> usize {
    replicas.windows(2).filter(|w| w[0] != w[1]).count()
}

fn ups(replicas: &[u32]) -> usize {
    replicas.windows(2).filter(|w| w[1] > w[0]).count()
}

/// Replicas that keep up with `input` at `capacity` each with the scale-down headroom.
fn steady(input: f64, capacity: f64) -> u32 {
    replicas_for(input / SCALE_DOWN_UTILISATION, capacity)
}

#[test]
fn a_step_up_in_load_converges_within_two_decisions() {
    for target in [3_500.0, 6_500.0, 12_000.0, 25_000.0] {
        let mut cluster = Cluster::new(1_000.0, 32, 3, 2_000.0);
        let before = cluster.run(40);
        assert!(before.iter().all(|&r| r == 3), "{before:?}");

        cluster.input_rate = target;
        let after = cluster.run(200);
        // Capacity covers the new input after at most two decisions...
        let enough = after
            .iter()
            .position(|&r| f64::from(r) * 1_000.0 >= target)
            .unwrap();
        assert!(enough < 2, "{target}: {after:?}");
        // ...with at most two scale-ups, and it settles on what the input needs, lag drained.
        assert!(ups(&after) <= 2, "{target}: {after:?}");
        assert!(
            after[100..].iter().all(|&r| r == steady(target, 1_000.0)),
            "{target}: {after:?}"
        );
        assert!(cluster.lag < 1.0, "{target}: lag {}", cluster.lag);
    }
}

#[test]
fn a_step_down_waits_for_the_window_then_goes_straight_to_what_the_input_needs() {
    let mut cluster = Cluster::new(1_000.0, 32, 8, 6_500.0);
    assert!(cluster.run(40).iter().all(|&r| r == 8));
    cluster.input_rate = 2_000.0;
    let after = cluster.run(100);
    let window_ticks = usize::try_from(300 / TICK).unwrap();
    assert!(
        after[..window_ticks - 1].iter().all(|&r| r == 8),
        "{after:?}"
    );
    assert_eq!(changes(&after), 1, "{after:?}");
    assert_eq!(after.last(), Some(&steady(2_000.0, 1_000.0)));
    assert_eq!(
        cluster.decisions.last().unwrap().reason,
        ScalingReason::Steady
    );
    assert!(
        cluster
            .decisions
            .iter()
            .any(|d| d.reason == ScalingReason::ScaleDown)
    );
}

#[test]
fn a_fresh_state_still_waits_a_full_window_before_scaling_down() {
    // As after an operator restart: eight replicas run, the load needs three.
    let mut cluster = Cluster::new(1_000.0, 32, 8, 2_000.0);
    let replicas = cluster.run(40);
    let window_ticks = usize::try_from(300 / TICK).unwrap();
    assert!(
        replicas[..window_ticks - 1].iter().all(|&r| r == 8),
        "{replicas:?}"
    );
    assert_eq!(changes(&replicas), 1, "{replicas:?}");
    assert_eq!(replicas.last(), Some(&steady(2_000.0, 1_000.0)));
}

#[test]
fn constant_load_never_flaps() {
    for (seed, input) in [
        1_000.0, 2_950.0, 3_333.0, 4_499.0, 5_000.0, 7_777.0, 9_999.0, 15_001.0,
    ]
    .into_iter()
    .enumerate()
    {
        let mut cluster = Cluster::new(1_000.0, 64, 1, input);
        cluster.noise = Some(Noise {
            state: 0x9E37_79B9 + seed as u64,
            amplitude: 0.05,
        });
        let replicas = cluster.run(2_000);
        // From one replica: up (once or twice while the first pods start), then perhaps down when the
        // overshoot leaves the window, and then nothing for the rest of the run.
        let first_down = replicas
            .windows(2)
            .position(|w| w[1] < w[0])
            .unwrap_or(replicas.len());
        assert_eq!(
            ups(&replicas[first_down..]),
            0,
            "{input}: {:?}",
            &replicas[..80]
        );
        assert!(changes(&replicas) <= 4, "{input}: {:?}", &replicas[..80]);
        // Noise on the input can still let one more replica go late in the run (the window saw no
        // peak that needed it), but never makes a replica come back.
        let last = replicas.last().copied().unwrap_or(0);
        assert!(f64::from(last) * 1_000.0 >= input * 1.05, "{input}: {last}");
        assert!(cluster.lag < input, "{input}: lag {}", cluster.lag);
    }
}

#[test]
fn lag_from_a_restore_does_not_trigger_scale_ups() {
    let mut cluster = Cluster::new(1_000.0, 32, 5, 4_000.0);
    assert!(cluster.run(40).iter().all(|&r| r == 5));
    // A pod restart: every task restores for two minutes at a tenth of its speed, lag piles up.
    cluster.restoring_left = 8;
    let replicas = cluster.run(200);
    assert!(replicas.iter().all(|&r| r == 5), "{replicas:?}");
    assert!(
        cluster
            .decisions
            .iter()
            .any(|d| d.reason == ScalingReason::Restoring)
    );
    assert!(cluster.lag < 1.0, "lag {}", cluster.lag);
}

#[test]
fn restores_after_every_scale_do_not_start_a_scale_up_loop() {
    for target in [6_500.0, 12_000.0] {
        let mut cluster = Cluster::new(1_000.0, 32, 3, 2_000.0);
        cluster.restore_ticks = 8;
        assert!(cluster.run(40).iter().all(|&r| r == 3));
        cluster.input_rate = target;
        let after = cluster.run(300);
        assert!(ups(&after) <= 2, "{target}: {after:?}");
        assert!(changes(&after) <= 3, "{target}: {after:?}");
        assert_eq!(
            after.last(),
            Some(&steady(target, 1_000.0)),
            "{target}: {after:?}"
        );
        assert!(cluster.lag < 1.0, "{target}: lag {}", cluster.lag);
    }
}

#[test]
fn from_zero_replicas_one_starts_then_the_measured_rate_sizes_the_rest() {
    let mut cluster = Cluster::new(1_000.0, 32, 0, 3_000.0);
    cluster.policy.min_replicas = 0;
    let replicas = cluster.run(60);
    assert_eq!(replicas[0], 1);
    assert_eq!(cluster.decisions[0].reason, ScalingReason::NoMetrics);
    // The new pod is not ready for one tick; the decision after that uses its measured rate.
    assert!(replicas[2] >= 3, "{replicas:?}");
    assert_eq!(replicas.last(), Some(&steady(3_000.0, 1_000.0)));
}

#[test]
fn load_beyond_the_cap_runs_exactly_the_cap() {
    for (partitions, max_replicas) in [(8, 64), (64, 8), (7, 7)] {
        let mut cluster = Cluster::new(1_000.0, partitions, 2, 50_000.0);
        cluster.policy = policy(max_replicas);
        let replicas = cluster.run(50);
        let cap = partitions.min(max_replicas);
        assert_eq!(replicas[0], cap, "{replicas:?}");
        assert!(replicas.iter().all(|&r| r == cap), "{replicas:?}");
        assert_eq!(
            cluster.decisions.last().unwrap().reason,
            ScalingReason::Steady
        );
    }
    // Just below the cap: 7.5 replicas of load gets the 8th, never stays one short.
    let mut cluster = Cluster::new(1_000.0, 8, 7, 7_500.0);
    let replicas = cluster.run(50);
    assert!(replicas.iter().all(|&r| r == 8), "{replicas:?}");
}

#[test]
fn without_a_busy_ratio_a_caught_up_processor_holds_and_does_not_flap() {
    // Only throughput is measured: it equals the input rate when caught up, so capacity is unknown
    // and the autoscaler keeps what runs rather than guess downwards.
    let mut cluster = Cluster::new(1_000.0, 32, 6, 2_000.0);
    let mut replicas = Vec::new();
    for _ in 0..200 {
        let mut state = cluster.state.clone();
        let observation = ProcessorObservation {
            now_seconds: cluster.now,
            current_replicas: cluster.replicas,
            ready_replicas: cluster.replicas,
            partitions: 32,
            total_lag: 0,
            input_rate: 2_000.0,
            processing_rate: Some(2_000.0),
            busy_ratio: None,
            restoring: false,
        };
        let decision = decide(&cluster.policy, &observation, &mut state);
        cluster.state = state;
        cluster.now += TICK;
        replicas.push(decision.desired_replicas);
    }
    assert!(replicas.iter().all(|&r| r == 6), "{replicas:?}");
}

#[test]
fn every_reason_has_a_condition_word_and_decisions_explain_their_numbers() {
    let mut cluster = Cluster::new(1_000.0, 32, 3, 6_500.0);
    cluster.tick();
    let decision = cluster.tick();
    assert_eq!(decision.reason.to_string(), decision.reason.as_str());
    assert!(
        cluster.decisions[0]
            .message
            .contains("capacity 1000.0 records/s per replica"),
        "{}",
        cluster.decisions[0].message
    );
    for reason in [
        ScalingReason::ScaleUp,
        ScalingReason::ScaleDown,
        ScalingReason::Steady,
        ScalingReason::Stabilizing,
        ScalingReason::Restoring,
        ScalingReason::NoMetrics,
        ScalingReason::AtBounds,
    ] {
        assert!(reason.as_str().chars().all(char::is_alphanumeric));
        assert!(reason.as_str().starts_with(char::is_uppercase));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Random capacities, partition counts and load steps (up or down): capacity covers the new load
    /// within two decisions, there are at most two scale-ups, no scale-up ever follows a scale-down,
    /// and the count ends where the input rate puts it.
    #[test]
    fn random_load_steps_converge_without_flapping(
        capacity in 200.0f64..5_000.0,
        partitions in 4u32..=64,
        before in 0.2f64..20.0,
        after in 0.2f64..20.0,
        restore_ticks in 0u64..=6,
    ) {
        let cap = partitions;
        let start = steady(before * capacity, capacity).clamp(1, cap);
        let mut cluster = Cluster::new(capacity, partitions, start, before * capacity);
        cluster.restore_ticks = restore_ticks;
        cluster.run(60);
        cluster.input_rate = after * capacity;
        let replicas = cluster.run(300);
        let needed_for_input = replicas_for(after * capacity, capacity).min(cap);
        let enough = replicas.iter().position(|&r| r >= needed_for_input);
        proptest::prop_assert!(enough.is_some_and(|i| i < 2), "{:?}", &replicas[..20]);
        proptest::prop_assert!(ups(&replicas) <= 2, "{:?}", &replicas[..40]);
        let first_down = replicas.windows(2).position(|w| w[1] < w[0]).unwrap_or(replicas.len());
        proptest::prop_assert_eq!(ups(&replicas[first_down..]), 0, "{:?}", &replicas[..60]);
        let last = replicas.last().copied().unwrap_or(0);
        proptest::prop_assert!(last >= needed_for_input && last <= steady(after * capacity, capacity).clamp(1, cap),
            "{} for {} records/s: {:?}", last, after * capacity, &replicas[..60]);
        proptest::prop_assert!(replicas.iter().all(|&r| (1..=cap).contains(&r)));
    }
}
