//! Broker sessions (Kafka's `BrokerHeartbeatManager`): a broker whose last heartbeat is older than
//! the session timeout is fenced; a fenced broker that heartbeats again is unfenced.
//!
//! Heartbeats only count from when this node became the controller: a new controller gives every
//! broker a full session timeout before fencing it. A fenced broker is unfenced only by a heartbeat
//! sent after it was seen fenced: a broker in controlled shutdown stops heartbeating and then fences
//! itself, and its last heartbeat (still within the timeout) must not bring it back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::cluster::ClusterState;

/// What liveness asks of the cluster now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LivenessChanges {
    /// Live brokers whose session expired.
    pub fence: Vec<i32>,
    /// Fenced brokers that heartbeat again.
    pub unfence: Vec<i32>,
}

/// The controller's view of broker sessions since it became the controller.
#[derive(Debug, Clone)]
pub struct Sessions {
    timeout: Duration,
    active_since: Instant,
    /// When each fenced broker was first seen fenced (or fenced by this controller).
    fenced_since: HashMap<i32, Instant>,
}

impl Sessions {
    /// Sessions of a controller that became active at `now`, with Kafka's
    /// `broker.session.timeout.ms` as `timeout`.
    pub fn new(timeout: Duration, now: Instant) -> Self {
        Sessions {
            timeout,
            active_since: now,
            fenced_since: HashMap::new(),
        }
    }

    /// The brokers to fence and to unfence at `now`, given each broker's last heartbeat as the
    /// metadata store reports it. A broker decided to be fenced counts as fenced from `now`.
    pub fn decide(
        &mut self,
        state: &ClusterState,
        heartbeats: &HashMap<i32, Instant>,
        now: Instant,
    ) -> LivenessChanges {
        self.fenced_since.retain(|id, _| state.fenced.contains(id));
        for &id in &state.fenced {
            self.fenced_since.entry(id).or_insert(now);
        }
        let mut out = LivenessChanges::default();
        for &id in state.brokers.keys() {
            let last = heartbeats.get(&id).copied();
            if let Some(&since) = self.fenced_since.get(&id) {
                if last
                    .is_some_and(|t| t > since && now.saturating_duration_since(t) <= self.timeout)
                {
                    out.unfence.push(id);
                }
            } else {
                let alive = last.map_or(self.active_since, |t| t.max(self.active_since));
                if now.saturating_duration_since(alive) > self.timeout {
                    out.fence.push(id);
                    self.fenced_since.insert(id, now);
                }
            }
        }
        for id in &out.unfence {
            self.fenced_since.remove(id);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tests::cluster;

    const TIMEOUT: Duration = Duration::from_secs(9);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_silent_broker_is_fenced_a_full_timeout_after_its_last_heartbeat() {
        let t0 = Instant::now();
        let mut s = cluster(2);
        let mut sessions = Sessions::new(TIMEOUT, t0);
        let beats: HashMap<i32, Instant> = [(0, t0 + ms(1000)), (1, t0 + ms(5000))].into();
        assert_eq!(
            sessions.decide(&s, &beats, t0 + ms(10_000)),
            LivenessChanges::default()
        );
        let due = sessions.decide(&s, &beats, t0 + ms(10_001));
        assert_eq!(due.fence, vec![0]);
        // Until the fence is applied (a failed commit) the decision is repeated.
        assert_eq!(sessions.decide(&s, &beats, t0 + ms(10_002)).fence, vec![0]);
        s.apply(&crate::cluster::MetadataRecord::FenceBroker { id: 0 });
        // Once fenced, its old heartbeat does not unfence it.
        assert_eq!(
            sessions.decide(&s, &beats, t0 + ms(10_003)),
            LivenessChanges::default()
        );
    }

    #[test]
    fn a_new_controller_gives_brokers_without_heartbeats_a_full_timeout() {
        let t0 = Instant::now();
        let s = cluster(1);
        let mut sessions = Sessions::new(TIMEOUT, t0);
        // A heartbeat from before this controller took over counts as its start.
        let beats: HashMap<i32, Instant> = HashMap::new();
        assert!(sessions.decide(&s, &beats, t0 + TIMEOUT).fence.is_empty());
        assert_eq!(
            sessions.decide(&s, &beats, t0 + TIMEOUT + ms(1)).fence,
            vec![0]
        );
    }

    #[test]
    fn a_fenced_broker_is_unfenced_only_by_a_heartbeat_after_it_was_fenced() {
        let t0 = Instant::now();
        let mut s = cluster(2);
        let mut sessions = Sessions::new(TIMEOUT, t0);
        let mut beats: HashMap<i32, Instant> = [(0, t0 + ms(100)), (1, t0 + ms(100))].into();
        // Broker 1 stopped heartbeating and fenced itself (controlled shutdown).
        s.apply(&crate::cluster::MetadataRecord::FenceBroker { id: 1 });
        assert_eq!(
            sessions.decide(&s, &beats, t0 + ms(200)),
            LivenessChanges::default()
        );
        beats.insert(1, t0 + ms(300));
        let changes = sessions.decide(&s, &beats, t0 + ms(400));
        assert_eq!(changes.unfence, vec![1]);
        assert!(changes.fence.is_empty());
    }

    #[test]
    fn a_stale_heartbeat_does_not_unfence() {
        let t0 = Instant::now();
        let mut s = cluster(1);
        s.apply(&crate::cluster::MetadataRecord::FenceBroker { id: 0 });
        let mut sessions = Sessions::new(TIMEOUT, t0);
        sessions.decide(&s, &HashMap::new(), t0);
        let beats: HashMap<i32, Instant> = [(0, t0 + ms(1))].into();
        assert!(
            sessions
                .decide(&s, &beats, t0 + ms(1) + TIMEOUT + ms(1))
                .unfence
                .is_empty()
        );
    }

    proptest::proptest! {
        /// Over any history of heartbeats: a broker is fenced only once a full timeout has passed
        /// since its last heartbeat (or since the controller started), and unfenced only by a
        /// heartbeat newer than its fence.
        #[test]
        fn fencing_and_unfencing_follow_the_heartbeats(
            steps in proptest::collection::vec((0u64..3000, proptest::option::of(0i32..3)), 1..60),
        ) {
            let t0 = Instant::now();
            let mut s = cluster(3);
            let mut sessions = Sessions::new(TIMEOUT, t0);
            let mut beats: HashMap<i32, Instant> = HashMap::new();
            let mut fenced_at: HashMap<i32, Instant> = HashMap::new();
            let mut now = t0;
            for (advance, beat) in steps {
                now += ms(advance);
                if let Some(id) = beat {
                    beats.insert(id, now);
                }
                let changes = sessions.decide(&s, &beats, now);
                for id in &changes.fence {
                    let last = beats.get(id).copied().unwrap_or(t0).max(t0);
                    proptest::prop_assert!(now.duration_since(last) > TIMEOUT);
                    proptest::prop_assert!(!s.fenced.contains(id));
                    s.apply(&crate::cluster::MetadataRecord::FenceBroker { id: *id });
                    fenced_at.insert(*id, now);
                }
                for id in &changes.unfence {
                    proptest::prop_assert!(beats[id] > fenced_at[id]);
                    s.apply(&crate::cluster::MetadataRecord::UnfenceBroker { id: *id });
                }
                // Nobody with a recent heartbeat stays fenced, nobody silent stays live.
                for id in 0..3 {
                    let last = beats.get(&id).copied().unwrap_or(t0).max(t0);
                    let recent = now.duration_since(last) <= TIMEOUT;
                    if !recent {
                        proptest::prop_assert!(s.fenced.contains(&id));
                    } else if s.fenced.contains(&id) {
                        proptest::prop_assert!(beats.get(&id).is_none_or(|b| *b <= fenced_at[&id]));
                    }
                }
            }
        }
    }
}
