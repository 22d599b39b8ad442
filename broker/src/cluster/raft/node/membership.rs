//! Membership: the lowest voter bootstraps the group; other brokers join as learners through
//! any voter, which forwards the request once to the leader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use super::super::rpc::{Refusal, Request, Response};
use super::RaftNode;

/// Longest pause between join attempts of a learner.
const JOIN_BACKOFF_MAX: Duration = Duration::from_secs(5);

impl RaftNode {
    /// A broker asks to be a learner. The leader adds it (unless it is a member at that address
    /// already); another voter forwards the request once to the leader it knows.
    pub(crate) async fn handle_join(
        &self,
        id: u64,
        addr: String,
        forwarded: bool,
    ) -> Result<(), Refusal> {
        if self.voters.contains_key(&id) {
            return Err(Refusal::Failed(format!(
                "node {id} is a voter, not a learner"
            )));
        }
        let leader = self.current_leader();
        if leader == Some(self.id) {
            let member = BasicNode::new(addr.clone());
            let known = self
                .metrics()
                .membership_config
                .membership()
                .get_node(&id)
                .cloned();
            let result = match known {
                Some(m) if m == member => return Ok(()),
                // A learner that comes back at another address (a rescheduled pod): replacing a
                // learner's address is safe, as learners do not vote.
                Some(_) => {
                    let nodes = BTreeMap::from([(id, member)]);
                    self.raft
                        .change_membership(ChangeMembers::SetNodes(nodes), true)
                        .await
                }
                None => self.raft.add_learner(id, member, false).await,
            };
            return match result {
                Ok(_) => {
                    tracing::info!(node_id = id, %addr, "learner in the metadata quorum at this address");
                    Ok(())
                }
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    Err(Refusal::NotLeader {
                        leader: f.leader_id,
                    })
                }
                Err(e) => Err(Refusal::Failed(e.to_string())),
            };
        }
        let Some(l) = leader.filter(|_| !forwarded) else {
            return Err(Refusal::NotLeader { leader });
        };
        let leader_addr = self.addr_of(l).ok_or(Refusal::NotLeader { leader })?;
        let req = Request::Join {
            id,
            addr,
            forwarded: true,
        };
        match self
            .peers
            .call(&leader_addr, &req, self.peers.timeout())
            .await
        {
            Ok(Response::Done(r)) => r,
            Ok(other) => Err(Refusal::Failed(format!("unexpected reply {other:?}"))),
            Err(e) => Err(Refusal::Failed(e.to_string())),
        }
    }

    /// Initializes the group (lowest voter) or joins it as a learner (non-voters).
    pub(super) async fn bootstrap(self: Arc<Self>) {
        if self.voters.keys().next() == Some(&self.id) {
            match self.raft.is_initialized().await {
                Ok(true) => {}
                Ok(false) => {
                    let members: BTreeMap<u64, BasicNode> = self
                        .voters
                        .iter()
                        .map(|(&id, addr)| (id, BasicNode::new(addr.clone())))
                        .collect();
                    match self.raft.initialize(members).await {
                        Ok(()) => {
                            tracing::info!(voters = ?self.voters, "initialized the metadata quorum");
                        }
                        Err(e) => tracing::info!(error = %e, "metadata quorum already initialized"),
                    }
                }
                Err(e) => tracing::error!(error = %e, "metadata raft stopped before bootstrap"),
            }
        } else if !self.voters.contains_key(&self.id) {
            self.join_as_learner().await;
        }
    }

    async fn join_as_learner(&self) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let member = BasicNode::new(self.advertised.clone());
            if self
                .metrics()
                .membership_config
                .membership()
                .get_node(&self.id)
                == Some(&member)
            {
                return;
            }
            for addr in self.voters.values() {
                let req = Request::Join {
                    id: self.id,
                    addr: self.advertised.clone(),
                    forwarded: false,
                };
                match self.peers.call(addr, &req, self.peers.timeout()).await {
                    Ok(Response::Done(Ok(()))) => {
                        tracing::info!(via = %addr, "joined the metadata quorum as a learner");
                        return;
                    }
                    Ok(Response::Done(Err(e))) => {
                        tracing::debug!(via = %addr, error = %e, "join refused");
                    }
                    Ok(other) => {
                        tracing::debug!(via = %addr, reply = ?other, "unexpected join reply");
                    }
                    Err(e) => tracing::debug!(via = %addr, error = %e, "join failed"),
                }
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(JOIN_BACKOFF_MAX);
        }
    }
}
