//! Forming and changing a cluster of servers.
//!
//! ```text
//!  drover server --bootstrap-expect 3 --join a,b,c      (every server, empty data dirs)
//!     each asks the others who they are (GET /v1/internal/identity);
//!     once 3 distinct servers are known, the one with the lowest id
//!     initialises Raft with the three; the others follow its log.
//!
//!  drover server --join a                               (a new server, empty data dir)
//!     asks a (any member) to add it (POST /v1/internal/join): the leader
//!     adds it as a learner, lets it catch up (a snapshot if needed), then
//!     makes it a voter.
//! ```
//!
//! A server whose data directory already holds a cluster ignores both
//! flags: its membership is in its Raft log.

use drover_proto::paths;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub use drover_proto::api::{Member, ServerIdentity};
use drover_types::{CodedError, ErrorCode};
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, ChangeMembers, ServerState};

use crate::Result;
use crate::server::Server;

impl Server {
    /// This server's identity.
    pub fn identity(&self) -> ServerIdentity {
        ServerIdentity { server_id: self.id(), address: self.config().advertise_address.clone() }
    }

    /// Forms a new cluster once `expect` servers are known, or joins an
    /// existing one. Runs in the background until Raft is initialised.
    pub(crate) fn spawn_cluster_formation(&self, expect: usize, join: Vec<String>) {
        let server = self.clone();
        tokio::spawn(async move {
            let mut attempt: u32 = 0;
            loop {
                if server.shutdown_token().is_cancelled() {
                    return;
                }
                if server.raft().is_initialized().await.unwrap_or(false) {
                    tracing::info!(server_id = server.id(), "cluster formed");
                    return;
                }
                let outcome =
                    if expect > 1 { server.try_bootstrap(expect, &join).await } else { server.try_join(&join).await };
                if let Err(error) = outcome
                    && attempt.is_multiple_of(10)
                {
                    tracing::info!(%error, "waiting for the other servers");
                }
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    async fn try_bootstrap(&self, expect: usize, join: &[String]) -> Result<()> {
        let mut known: BTreeMap<u64, String> = BTreeMap::from([(self.id(), self.config().advertise_address.clone())]);
        for address in join {
            if address == &self.config().advertise_address {
                continue;
            }
            if let Ok(identity) = self.fetch_identity(address).await {
                known.insert(identity.server_id, identity.address);
            }
        }
        if known.len() < expect {
            return Err(CodedError::new(
                ErrorCode::Unavailable,
                format!(
                    "{} of {expect} servers reachable ({})",
                    known.len(),
                    known.values().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        // Exactly one server initialises: the lowest id of the first
        // `expect` known, so that every server agrees on the member set.
        let members: BTreeMap<u64, BasicNode> =
            known.into_iter().take(expect).map(|(id, address)| (id, BasicNode::new(address))).collect();
        if members.keys().next() != Some(&self.id()) {
            return Err(CodedError::new(
                ErrorCode::Unavailable,
                "waiting for the lowest-id server to form the cluster",
            ));
        }
        tracing::info!(servers = ?members.keys().collect::<Vec<_>>(), "forming the cluster");
        self.raft()
            .initialize(members)
            .await
            .map_err(|error| CodedError::internal(format!("cannot initialise the cluster: {error}")))
    }

    async fn try_join(&self, join: &[String]) -> Result<()> {
        let identity = self.identity();
        let mut last_error = CodedError::new(ErrorCode::Unavailable, "no server to join was given");
        for address in join {
            if address == &identity.address {
                continue;
            }
            let url = format!("{}{}", self.inner.network.base_url(address), paths::INTERNAL_JOIN);
            let sent =
                self.inner.network.client().post(&url).timeout(Duration::from_secs(120)).json(&identity).send().await;
            match sent {
                Ok(response) if response.status().is_success() => {
                    tracing::info!(server = %address, "joined the cluster");
                    return Ok(());
                }
                Ok(response) => {
                    let text = response.text().await.unwrap_or_default();
                    last_error = CodedError::new(ErrorCode::Unavailable, format!("{address} refused the join: {text}"));
                }
                Err(error) => last_error = CodedError::new(ErrorCode::Unavailable, format!("{address}: {error}")),
            }
        }
        Err(last_error)
    }

    /// `drover server join ADDR`: adds the server at `address` (which must
    /// be running, started without `--bootstrap-expect`) to this cluster.
    pub async fn join_address(&self, address: &str) -> Result<ServerIdentity> {
        let identity = self.fetch_identity(address).await?;
        if identity.server_id == self.id() {
            return Err(CodedError::invalid(format!("{address} is this server; give the address of the new server")));
        }
        self.add_server(identity.clone()).await?;
        Ok(identity)
    }

    async fn fetch_identity(&self, address: &str) -> Result<ServerIdentity> {
        self.get_from_peer(address, paths::INTERNAL_IDENTITY).await
    }

    /// GET `path` on another server, answered as JSON.
    pub(crate) async fn get_from_peer<T: serde::de::DeserializeOwned>(&self, address: &str, path: &str) -> Result<T> {
        let url = format!("{}{path}", self.inner.network.base_url(address));
        let unavailable =
            |error: reqwest::Error| CodedError::new(ErrorCode::Unavailable, format!("{address}: {error}"));
        let response =
            self.inner.network.client().get(&url).timeout(Duration::from_secs(2)).send().await.map_err(unavailable)?;
        response.json().await.map_err(unavailable)
    }

    /// Sends a membership request to the leader (this server is not it).
    async fn send_to_leader(
        &self,
        build: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
        refused: &str,
    ) -> Result<()> {
        let leader =
            self.status().leader_address.ok_or_else(|| CodedError::new(ErrorCode::Unavailable, "no leader"))?;
        let response = build(self.inner.network.client(), &self.inner.network.base_url(&leader))
            .send()
            .await
            .map_err(|error| CodedError::new(ErrorCode::Unavailable, format!("leader {leader}: {error}")))?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(response.json().await.unwrap_or_else(|_| CodedError::new(ErrorCode::Unavailable, refused.to_owned())))
    }

    /// Adds a server: as a learner first (it catches up, through a snapshot
    /// if it lags far behind), then as a voter. On a follower, forwarded to
    /// the leader.
    pub async fn add_server(&self, identity: ServerIdentity) -> Result<()> {
        if !self.status().is_leader {
            let request = |client: &reqwest::Client, base: &str| {
                client.post(format!("{base}{}", paths::INTERNAL_JOIN)).timeout(Duration::from_secs(120)).json(&identity)
            };
            return self.send_to_leader(request, "the leader refused the join").await;
        }
        let metrics = self.raft().metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        if membership.voter_ids().any(|id| id == identity.server_id) {
            return Ok(());
        }
        tracing::info!(server_id = identity.server_id, address = %identity.address, "adding a server");
        self.raft()
            .add_learner(identity.server_id, BasicNode::new(&identity.address), true)
            .await
            .map_err(|error| CodedError::new(ErrorCode::Unavailable, format!("cannot add the learner: {error}")))?;
        self.raft()
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([identity.server_id])), false)
            .await
            .map_err(|error| CodedError::new(ErrorCode::Unavailable, format!("cannot make it a voter: {error}")))?;
        Ok(())
    }

    /// Removes a server from the cluster (it stops receiving the log).
    pub async fn remove_server(&self, server_id: u64) -> Result<()> {
        if !self.status().is_leader {
            let request = |client: &reqwest::Client, base: &str| {
                client
                    .delete(format!("{base}{}", paths::fill(paths::OPERATOR_RAFT_PEER, &[&server_id.to_string()])))
                    .timeout(Duration::from_secs(60))
            };
            return self.send_to_leader(request, "the leader refused the removal").await;
        }
        let metrics = self.raft().metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        let known: Vec<u64> = membership.nodes().map(|(id, _)| *id).collect();
        if !known.contains(&server_id) {
            return Err(CodedError::not_found("server", server_id));
        }
        if membership.voter_ids().count() <= 1 && membership.voter_ids().any(|id| id == server_id) {
            return Err(CodedError::conflict("cannot remove the last voter of the cluster"));
        }
        // `retain = false`: a removed voter does not stay on as a learner.
        let change = if membership.voter_ids().any(|id| id == server_id) {
            ChangeMembers::RemoveVoters(BTreeSet::from([server_id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([server_id]))
        };
        self.raft()
            .change_membership(change, false)
            .await
            .map_err(|error| CodedError::new(ErrorCode::Unavailable, format!("cannot remove the server: {error}")))?;
        Ok(())
    }

    /// The other members of the cluster (every one but this server).
    pub fn peers(&self) -> Vec<Member> {
        self.members().into_iter().filter(|member| member.server_id != self.id()).collect()
    }

    /// The members of the cluster.
    pub fn members(&self) -> Vec<Member> {
        let metrics = self.raft().metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let replication = metrics.replication.clone();
        membership
            .nodes()
            .map(|(id, node)| Member {
                server_id: *id,
                address: node.addr.clone(),
                role: if voters.contains(id) { "voter".to_owned() } else { "learner".to_owned() },
                leader: metrics.current_leader == Some(*id),
                matched_index: if *id == metrics.id {
                    metrics.last_log_index
                } else {
                    replication
                        .as_ref()
                        .and_then(|replication| replication.get(id).cloned().flatten())
                        .map(|log_id| log_id.index)
                },
                // Filled by `members_with_versions`, which asks each server.
                version: None,
                commit: None,
            })
            .collect()
    }

    /// The leader's read index: every write acknowledged before this call is
    /// at or below it. Only on the leader.
    pub async fn read_index(&self) -> Result<u64> {
        match self.raft().ensure_linearizable(openraft::ReadPolicy::ReadIndex).await {
            Ok(read_log_id) => Ok(read_log_id.index()),
            Err(error) => Err(CodedError::new(ErrorCode::NotLeader, format!("not the leader: {error}"))),
        }
    }

    /// Whether this server is a voter or learner that currently leads.
    pub fn is_leader(&self) -> bool {
        self.raft().metrics().borrow_watched().state == ServerState::Leader
    }
}
