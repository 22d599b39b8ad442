//! Property tests of the autoscaler over random policies and random observation sequences.

use proptest::prelude::*;

use super::*;

fn policies() -> impl Strategy<Value = AutoscalePolicy> {
    (0u32..=6, 1u32..=40, 1u32..=300, 0u64..=900).prop_map(|(min, extra, lag_seconds, window)| {
        AutoscalePolicy {
            min_replicas: min,
            max_replicas: min + extra,
            target_lag_seconds: f64::from(lag_seconds),
            scale_down_stabilization_seconds: window,
        }
    })
}

fn observations() -> impl Strategy<Value = ProcessorObservation> {
    (
        0u32..=50,
        0u32..=50,
        0u32..=48,
        0u64..=5_000_000,
        0.0f64..50_000.0,
        prop::option::of(0.0f64..60_000.0),
        prop::option::of(0.0f64..=1.0),
        prop::bool::weighted(0.2),
        1u64..=120,
    )
        .prop_map(
            |(current, ready, partitions, lag, input, rate, busy, restoring, step)| {
                ProcessorObservation {
                    now_seconds: step,
                    current_replicas: current,
                    ready_replicas: ready.min(current),
                    partitions,
                    total_lag: lag,
                    input_rate: input,
                    processing_rate: rate,
                    busy_ratio: busy,
                    restoring,
                }
            },
        )
}

/// Observations with increasing timestamps (`now_seconds` of the generated ones are steps).
fn sequences() -> impl Strategy<Value = Vec<ProcessorObservation>> {
    prop::collection::vec(observations(), 1..40).prop_map(|mut observations| {
        let mut now = 10_000;
        for observation in &mut observations {
            now += observation.now_seconds;
            observation.now_seconds = now;
        }
        observations
    })
}

fn upper(policy: &AutoscalePolicy, partitions: u32) -> u32 {
    if partitions > 0 {
        policy.max_replicas.min(partitions)
    } else {
        policy.max_replicas
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn decisions_always_stay_within_the_policy_and_the_partition_count(policy in policies(), sequence in sequences()) {
        let mut state = AutoscalerState::default();
        for observation in &sequence {
            let decision = decide(&policy, observation, &mut state);
            let upper = upper(&policy, observation.partitions);
            let lower = policy.min_replicas.min(upper);
            prop_assert!(decision.desired_replicas >= lower && decision.desired_replicas <= upper,
                "{} not in [{lower}, {upper}]: {:?}", decision.desired_replicas, decision);
            prop_assert!(!decision.message.is_empty());
        }
    }

    #[test]
    fn load_that_needs_the_cap_gets_exactly_the_cap(
        policy in policies(), sequence in sequences(), observation in observations(), fraction in 0.0f64..1.0,
    ) {
        let mut state = AutoscalerState::default();
        for earlier in &sequence {
            decide(&policy, earlier, &mut state);
        }
        let upper = upper(&policy, observation.partitions);
        prop_assume!(upper > 0);
        // Load between cap - 1 and cap replicas' worth, measured on saturated, non-restoring replicas.
        let ready = observation.ready_replicas.max(1);
        let observation = ProcessorObservation {
            now_seconds: sequence.last().map_or(0, |o| o.now_seconds) + 15,
            current_replicas: observation.current_replicas.max(ready),
            ready_replicas: ready,
            input_rate: 1_000.0 * (f64::from(upper) - 1.0 + fraction.max(0.01)),
            processing_rate: Some(1_000.0 * f64::from(ready)),
            busy_ratio: Some(1.0),
            restoring: false,
            ..observation
        };
        let decision = decide(&policy, &observation, &mut state);
        prop_assert_eq!(decision.desired_replicas, upper, "{:?}", decision);
    }

    #[test]
    fn scale_up_is_immediate_and_never_below_what_the_input_needs(
        policy in policies(), sequence in sequences(), observation in observations(),
    ) {
        let mut state = AutoscalerState::default();
        for earlier in &sequence {
            decide(&policy, earlier, &mut state);
        }
        let observation = ProcessorObservation { restoring: false, ..observation };
        let Some(capacity) = measured_capacity(&observation) else { return Ok(()) };
        let upper = upper(&policy, observation.partitions);
        let lower = policy.min_replicas.min(upper);
        let for_input = replicas_for(observation.input_rate, capacity).clamp(lower, upper);
        let with_lag = replicas_for(
            observation.input_rate + lag_as_rate(observation.total_lag, policy.target_lag_seconds),
            capacity,
        ).clamp(lower, upper);
        let draining = state.previous_lag.is_some_and(|previous| observation.total_lag < previous);
        let decision = decide(&policy, &observation, &mut state);
        prop_assert!(decision.desired_replicas >= for_input, "{} < {for_input}: {:?}", decision.desired_replicas, decision);
        if !draining && with_lag > observation.current_replicas {
            prop_assert_eq!(decision.desired_replicas, with_lag, "{:?}", decision);
        }
    }

    #[test]
    fn a_restore_never_scales_down_nor_up_on_lag(
        policy in policies(), sequence in sequences(), observation in observations(),
    ) {
        let mut state = AutoscalerState::default();
        for earlier in &sequence {
            decide(&policy, earlier, &mut state);
        }
        let observation = ProcessorObservation { restoring: true, ..observation };
        let upper = upper(&policy, observation.partitions);
        let lower = policy.min_replicas.min(upper);
        let current = observation.current_replicas.clamp(lower, upper);
        let for_input = state
            .capacity_per_replica
            .map_or(0, |capacity| replicas_for(observation.input_rate, capacity).clamp(lower, upper));
        let decision = decide(&policy, &observation, &mut state);
        prop_assert!(decision.desired_replicas >= current, "{:?}", decision);
        prop_assert!(decision.desired_replicas <= current.max(for_input), "{:?}", decision);
    }

    #[test]
    fn the_same_observations_give_the_same_decisions_also_across_a_state_round_trip(
        policy in policies(), sequence in sequences(), split in 0usize..40,
    ) {
        let mut state = AutoscalerState::default();
        let straight: Vec<ScalingDecision> = sequence.iter().map(|o| decide(&policy, o, &mut state)).collect();

        let mut state = AutoscalerState::default();
        let mut replayed = Vec::new();
        for (i, observation) in sequence.iter().enumerate() {
            if i == split {
                // The controller may keep the state in status: it must survive serialization.
                let json = serde_json::to_string(&state).unwrap();
                state = serde_json::from_str(&json).unwrap();
            }
            replayed.push(decide(&policy, observation, &mut state));
        }
        prop_assert_eq!(straight, replayed);
    }
}
