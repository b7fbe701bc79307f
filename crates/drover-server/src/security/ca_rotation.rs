//! Rotating the cluster CA without a restart or a dropped session
//! (`drover operator tls rotate-ca`), to a CA the servers make or to the
//! operator's next one (`--new-ca-cert/--new-ca-key`).
//!
//! ```text
//!  rotate-ca ─▶ the server asked makes the new CA (or checks the operator's
//!               as --tls-ca-cert/--tls-ca-key are checked at start), keeps
//!               it in ca-next*.pem
//!               and proposes StartCaRotation (certificates only, no key)
//!  every server, on applying it: trusts old + new (ca.pem holds both),
//!               tells its agents to trust both, reports ServerTrusts
//!  every server trusts the new CA ─▶ each server takes the new CA's key (its
//!               own ca-next-key.pem, or from a server that has it, over
//!               mutual TLS), issues with it, reissues its own certificate,
//!               reports ServerReissued and tells its agents the new issuer:
//!               they renew at once (a node reissued is recorded)
//!  rotate-ca --finish (refused until every server and every live node holds
//!               a certificate of the new CA) ─▶ FinishCaRotation: every server
//!               and agent trusts the new CA only; old certificates are refused
//! ```
//!
//! Servers issue with the new CA only once *every* server trusts it, so no
//! server ever presents a certificate a peer cannot verify: Raft traffic,
//! forwarded writes and the agents' sessions carry on through the rotation.
//! Live connections keep what they negotiated; new ones use the new
//! material. The state machine records the progress; each server acts on
//! it in [`spawn`]'s loop, which is idempotent (a restarted server reads
//! its files and the state, and carries on where it was).

use std::time::Duration;

use std::path::Path;

use drover_proto::api::{CaRotationStatus, CaSummary, OperatorCaFiles, ServerCaStatus, ServerJoinResponse, TlsStatus};
use drover_proto::paths;
use drover_proto::session::ServerMessage;
use drover_state::access::{AccessOp, CaRotation, CaRotationStep, rotation_in_progress};
use drover_state::{Command, State};
use drover_tls::Ca;
use drover_types::{CodedError, ErrorCode, NodeStatus, Timestamp};

use super::{ServerTls, tls_error};
use crate::Result;
use crate::server::Server;

/// The new CA of a rotation, kept until this server issues with it.
const NEXT_CA: &str = "ca-next.pem";
const NEXT_CA_KEY: &str = "ca-next-key.pem";

/// How soon a server looks again when it waits for the others (to trust
/// the new CA, to have its key) or a step failed (no leader).
const RETRY: Duration = Duration::from_secs(2);

/// How long a server without anything to do waits before it looks again
/// anyway (state changes wake it sooner).
const IDLE: Duration = Duration::from_secs(60);

impl ServerTls {
    /// The new CA of a rotation, if this server holds it in `ca-next*.pem`.
    fn next_ca(&self) -> Option<Ca> {
        let key_path = self.dir.join(NEXT_CA_KEY);
        if !key_path.exists() {
            return None;
        }
        Ca::read_files(&self.dir.join(NEXT_CA), &key_path)
            .inspect_err(|error| tracing::warn!(%error, "cannot read the new CA of the rotation"))
            .ok()
    }

    fn keep_next_ca(&self, ca: &Ca) -> Result<()> {
        drover_tls::write_public(&self.dir.join(NEXT_CA), ca.cert_pem()).map_err(tls_error)?;
        drover_tls::write_private(&self.dir.join(NEXT_CA_KEY), ca.key_pem()).map_err(tls_error)
    }

    fn forget_next_ca(&self) {
        for file in [NEXT_CA_KEY, NEXT_CA] {
            let path = self.dir.join(file);
            if let Err(error) = std::fs::remove_file(&path)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(%error, path = %path.display(), "cannot remove the rotation's CA file");
            }
        }
    }

    /// Trusts exactly `pems` (the issuing CA's first) from the next
    /// handshake on, and keeps them in `ca.pem`. Whether anything changed.
    fn trust(&self, pems: Vec<String>) -> Result<bool> {
        let wanted: Vec<String> = pems.iter().filter_map(|pem| drover_tls::pem_fingerprint(pem).ok()).collect();
        if wanted == self.roots.fingerprints() {
            return Ok(false);
        }
        self.roots.replace(&pems).map_err(tls_error)?;
        drover_tls::write_public(&self.dir.join("ca.pem"), &pems.concat()).map_err(tls_error)?;
        match self.trusted.write() {
            Ok(mut trusted) => *trusted = pems,
            Err(poisoned) => *poisoned.into_inner() = pems,
        }
        Ok(true)
    }

    /// Issues with `ca` from now on (its key becomes `ca-key.pem`, its
    /// certificate the first of `ca.pem`) and reissues this server's own
    /// certificate with it.
    fn switch_issuer(&self, ca: Ca) -> Result<()> {
        let fingerprint = ca.fingerprint();
        let mut pems = vec![ca.cert_pem().to_owned()];
        pems.extend(
            self.trusted_pems()
                .into_iter()
                .filter(|pem| drover_tls::pem_fingerprint(pem).is_ok_and(|other| other != fingerprint)),
        );
        // The key first: a crash between the two writes leaves a ca.pem
        // that holds the key's certificate anyway, which `prepare` finds.
        drover_tls::write_private(&self.dir.join("ca-key.pem"), ca.key_pem()).map_err(tls_error)?;
        self.trust(pems)?;
        match self.ca.write() {
            Ok(mut issuing) => *issuing = Some(std::sync::Arc::new(ca)),
            Err(poisoned) => *poisoned.into_inner() = Some(std::sync::Arc::new(ca)),
        }
        self.reissue_server_certificate()
    }
}

/// Follows the rotations of the cluster CA on this server: at start, on
/// every state change, and every few seconds while it waits for others.
pub(super) fn spawn(server: Server) {
    let Some(tls) = server.tls().cloned() else { return };
    tokio::spawn(async move {
        let mut states = server.watch_state();
        // The access state's index when nothing was left to do: most state
        // changes (jobs, heartbeats) do not touch it and need no look.
        let mut settled_at: Option<u64> = None;
        loop {
            let access_index = server.state().access().index;
            let wait = if settled_at == Some(access_index) {
                IDLE
            } else {
                match server.follow_ca_rotation(&tls).await {
                    Ok(true) => {
                        settled_at = Some(access_index);
                        IDLE
                    }
                    Ok(false) => RETRY,
                    Err(error) => {
                        tracing::warn!(%error, "a step of the CA rotation failed; retrying");
                        RETRY
                    }
                }
            };
            tokio::select! {
                () = server.shutdown_token().cancelled() => return,
                changed = states.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(wait) => {}
            }
        }
    });
}

/// Checks an operator's CA sent with `rotate-ca --new-ca-cert/--new-ca-key`
/// with the checks `--tls-ca-cert/--tls-ca-key` meet at start (drover-tls's
/// [`Ca::from_file_texts`]); a refusal names the file as the CLI named it.
pub fn operator_ca(files: &OperatorCaFiles) -> Result<Ca> {
    let cert_file = if files.cert_file.trim().is_empty() { "new_ca.cert" } else { files.cert_file.as_str() };
    let key_file = if files.key_file.trim().is_empty() { "new_ca.key" } else { files.key_file.as_str() };
    Ca::from_file_texts(Path::new(cert_file), &files.cert, Path::new(key_file), &files.key, files.key_mode)
        .map_err(|error| CodedError::invalid(format!("the new CA is refused, nothing changed: {error}")))
}

/// Why a cluster on certificates made by its operator's CA has no CA to
/// rotate, what to do instead, and that `--new-ca-cert/--new-ca-key` is
/// not for it: its servers read their certificates from the operator's
/// files every minute and never issue, so they cannot start issuing in place.
fn external_rotation_refused() -> String {
    format!(
        "{}; to move to another CA, add its certificate to the --tls-ca-cert file of every server and agent, replace their certificates with ones it made, then remove the old CA from those files (each reads them again within a minute); `rotate-ca --new-ca-cert/--new-ca-key` is for clusters whose servers issue from a CA (started with --tls-ca-cert/--tls-ca-key, or on the CA they made)",
        super::EXTERNAL_CERTIFICATES
    )
}

impl Server {
    /// `drover operator tls rotate-ca`: takes the new cluster CA (the
    /// operator's `new_ca`, checked with [`operator_ca`], or a new one made
    /// here), keeps it with its key in this server's data directory and
    /// starts the rotation.
    pub async fn start_ca_rotation(&self, started_by: &str, new_ca: Option<Ca>) -> Result<TlsStatus> {
        let tls = self.secure_tls("there is no CA to rotate")?;
        if let Some(rotation) = self.state().access().ca_rotation() {
            return Err(CodedError::new(ErrorCode::Conflict, rotation_in_progress(rotation)));
        }
        let from_operator = new_ca.is_some();
        let old = tls.issuing_ca().map_err(|_| CodedError::invalid(external_rotation_refused()))?;
        let new = match new_ca {
            Some(ca) => ca,
            None => Ca::generate(&format!("rotated {}", Timestamp::now())).map_err(tls_error)?,
        };
        if let Some(problem) = same_ca_problem(&new.fingerprint(), &tls.trusted_pems()) {
            return Err(CodedError::invalid(problem));
        }
        tls.keep_next_ca(&new)?;
        let rotation = CaRotation {
            old_ca: old.cert_pem().to_owned(),
            old_fingerprint: old.fingerprint(),
            new_ca: new.cert_pem().to_owned(),
            new_fingerprint: new.fingerprint(),
            started_at: Timestamp::now(),
            started_by: started_by.to_owned(),
            trusting_servers: Default::default(),
            reissued_servers: Default::default(),
            reissued_nodes: Default::default(),
        };
        let proposed = self.propose(Command::Access { op: AccessOp::StartCaRotation { rotation } }).await;
        if let Err(error) = proposed.and_then(|response| response.into_result()) {
            tls.forget_next_ca();
            return Err(error);
        }
        tracing::info!(
            new_ca = %new.fingerprint(),
            old_ca = %old.fingerprint(),
            from_operator,
            "started a rotation of the cluster CA"
        );
        self.tls_status()
    }

    /// `drover operator tls rotate-ca --finish`: drops the old CA, once
    /// every server and every live node holds a certificate of the new one.
    pub async fn finish_ca_rotation(&self) -> Result<TlsStatus> {
        self.secure_tls("there is no CA rotation")?;
        let state = self.state();
        let Some(rotation) = state.access().ca_rotation() else {
            return Err(CodedError::new(
                ErrorCode::Conflict,
                "no CA rotation is in progress; start one with `drover operator tls rotate-ca`",
            ));
        };
        let progress = self.rotation_status(&state, rotation);
        if !progress.ready_to_finish {
            return Err(CodedError::new(
                ErrorCode::Conflict,
                format!(
                    "the old CA is still in use, so it cannot be dropped yet: {}; wait (servers and agents switch on their own within seconds) and check `drover operator tls status`",
                    what_is_left(&progress)
                ),
            ));
        }
        let new_fingerprint = rotation.new_fingerprint.clone();
        self.propose(Command::Access { op: AccessOp::FinishCaRotation { new_fingerprint: new_fingerprint.clone() } })
            .await?
            .into_result()?;
        tracing::info!(new_ca = %new_fingerprint, "finished the rotation of the cluster CA; the old CA is no longer trusted");
        self.tls_status()
    }

    /// `drover operator tls status`: the CAs and how far a rotation got.
    pub fn tls_status(&self) -> Result<TlsStatus> {
        let tls = self.secure_tls("it has no CA")?;
        let state = self.state();
        let rotation = state.access().ca_rotation();
        let cas = match rotation {
            Some(rotation) => vec![
                ca_summary("new", &rotation.new_ca, &rotation.new_fingerprint),
                ca_summary("old", &rotation.old_ca, &rotation.old_fingerprint),
            ],
            None => tls
                .trusted_pems()
                .iter()
                .map(|pem| ca_summary("current", pem, &drover_tls::pem_fingerprint(pem).unwrap_or_default()))
                .collect(),
        };
        let rotation = rotation.map(|rotation| self.rotation_status(&state, rotation));
        Ok(TlsStatus { cas, rotation })
    }

    /// The new CA of the rotation in progress, certificate and key, for
    /// another server of the cluster (`GET /v1/internal/tls/rotation-ca`).
    pub fn rotation_ca_for_peer(&self) -> Result<ServerJoinResponse> {
        let tls = self.secure_tls("it has no CA")?;
        let state = self.state();
        let Some(rotation) = state.access().ca_rotation() else {
            return Err(CodedError::new(ErrorCode::NotFound, "no CA rotation is in progress"));
        };
        let issuing = tls.issuing_ca()?;
        let new = if issuing.fingerprint() == rotation.new_fingerprint {
            Some((issuing.cert_pem().to_owned(), issuing.key_pem().to_owned()))
        } else {
            tls.next_ca()
                .filter(|ca| ca.fingerprint() == rotation.new_fingerprint)
                .map(|ca| (ca.cert_pem().to_owned(), ca.key_pem().to_owned()))
        };
        match new {
            Some((ca, ca_key)) => Ok(ServerJoinResponse { ca, ca_key }),
            None => Err(CodedError::new(
                ErrorCode::NotFound,
                format!("server {} does not hold the new CA's key yet", self.id()),
            )),
        }
    }

    /// Records that node `name` holds a certificate of the new CA, when a
    /// rotation is in progress and `issuer` is that CA.
    pub(crate) async fn note_node_reissued(&self, name: &str, serial: &str, issuer: &str) {
        let state = self.state();
        let Some(rotation) = state.access().ca_rotation() else { return };
        if rotation.new_fingerprint != issuer {
            return;
        }
        let step = CaRotationStep::NodeReissued { name: name.to_owned(), serial: serial.to_owned() };
        if let Err(error) = self.propose_rotation_step(rotation, step).await {
            tracing::warn!(%error, node = name, "cannot record the node's certificate of the new CA");
        }
    }

    /// What an agent must trust and which CA issues now, for its session.
    pub(crate) fn tls_message(&self) -> Option<ServerMessage> {
        let tls = self.tls()?;
        Some(ServerMessage::Tls { trusted_cas: tls.trusted_pems(), issuer: tls.ca_fingerprint() })
    }

    /// One pass over the rotation: takes the steps this server can take.
    /// `true` when nothing is left for it to do.
    async fn follow_ca_rotation(&self, tls: &ServerTls) -> Result<bool> {
        let _one_at_a_time = tls.rotation_steps.lock().await;
        let state = self.state();
        let access = state.access();
        if let Some(rotation) = access.ca_rotation() {
            return self.follow_rotation_in_progress(tls, rotation).await;
        }
        let Some(cluster_ca) = access.cluster_ca() else { return Ok(true) };
        let fingerprint = drover_tls::pem_fingerprint(cluster_ca).map_err(tls_error)?;
        if tls.ca_fingerprint() != fingerprint {
            // Rotated while this server was away: it cannot issue for the cluster.
            tracing::error!(
                cluster_ca = %fingerprint,
                "the cluster CA was rotated while this server was away and it does not hold the new CA: copy ca.pem and ca-key.pem from DATA_DIR/tls of a running server into this server's DATA_DIR/tls and restart it"
            );
            return Ok(true);
        }
        if tls.trust(vec![cluster_ca.to_owned()])? {
            tls.forget_next_ca();
            tracing::info!(ca = %fingerprint, "the CA rotation is finished: the old CA is no longer trusted");
            self.tell_agents_tls().await;
        }
        Ok(true)
    }

    async fn follow_rotation_in_progress(&self, tls: &ServerTls, rotation: &CaRotation) -> Result<bool> {
        let me = self.id();
        let mut trusted = tls.trusted_pems();
        for pem in [&rotation.new_ca, &rotation.old_ca] {
            let fingerprint = drover_tls::pem_fingerprint(pem).map_err(tls_error)?;
            if !trusted.iter().any(|known| drover_tls::pem_fingerprint(known).is_ok_and(|known| known == fingerprint)) {
                trusted.push(pem.clone());
            }
        }
        let mut changed = tls.trust(trusted)?;
        if changed {
            tracing::info!(new_ca = %rotation.new_fingerprint, "trusting the new CA next to the old one");
        }
        if !rotation.trusting_servers.contains(&me) {
            if changed {
                self.tell_agents_tls().await;
            }
            self.propose_rotation_step(rotation, CaRotationStep::ServerTrusts { server_id: me }).await?;
            return Ok(false);
        }
        if tls.ca_fingerprint() != rotation.new_fingerprint {
            let waiting_for: Vec<u64> = self
                .members()
                .iter()
                .map(|member| member.server_id)
                .filter(|id| !rotation.trusting_servers.contains(id))
                .collect();
            if !waiting_for.is_empty() {
                if changed {
                    self.tell_agents_tls().await;
                }
                tracing::debug!(?waiting_for, "waiting for every server to trust the new CA");
                return Ok(false);
            }
            let new_ca = match tls.next_ca().filter(|ca| ca.fingerprint() == rotation.new_fingerprint) {
                Some(ca) => ca,
                None => {
                    let ca = self.fetch_rotation_ca(&rotation.new_fingerprint).await?;
                    tls.keep_next_ca(&ca)?;
                    ca
                }
            };
            tls.switch_issuer(new_ca)?;
            tls.forget_next_ca();
            changed = true;
            tracing::info!(new_ca = %rotation.new_fingerprint, "issuing with the new CA; this server's certificate reissued");
        }
        if changed {
            self.tell_agents_tls().await;
        }
        if !rotation.reissued_servers.contains(&me) {
            self.propose_rotation_step(rotation, CaRotationStep::ServerReissued { server_id: me }).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// The new CA, certificate and key, from another server that holds it.
    async fn fetch_rotation_ca(&self, new_fingerprint: &str) -> Result<Ca> {
        let mut problems = Vec::new();
        for member in self.peers() {
            let url = format!("{}{}", self.inner.network.base_url(&member.address), paths::INTERNAL_TLS_ROTATION_CA);
            let request = self.inner.network.client().get(&url).timeout(Duration::from_secs(5));
            let answer = match request.send().await {
                Ok(response) if response.status().is_success() => response.json::<ServerJoinResponse>().await,
                Ok(response) => {
                    problems.push(format!("server {}: {}", member.server_id, response.status()));
                    continue;
                }
                Err(error) => Err(error),
            };
            let ca = answer
                .map_err(|error| drover_types::error::error_chain(&error))
                .and_then(|answer| Ca::from_pem(&answer.ca, &answer.ca_key).map_err(|error| error.to_string()));
            match ca {
                Ok(ca) if ca.fingerprint() == new_fingerprint => {
                    tracing::info!(server = member.server_id, "received the new CA of the rotation");
                    return Ok(ca);
                }
                Ok(ca) => problems.push(format!("server {} sent another CA ({})", member.server_id, ca.fingerprint())),
                Err(problem) => problems.push(format!("server {}: {problem}", member.server_id)),
            }
        }
        Err(CodedError::new(
            ErrorCode::Unavailable,
            format!("no server gave the new CA's key yet ({})", problems.join("; ")),
        ))
    }

    async fn propose_rotation_step(&self, rotation: &CaRotation, step: CaRotationStep) -> Result<()> {
        let op = AccessOp::CaRotationProgress { new_fingerprint: rotation.new_fingerprint.clone(), step };
        self.propose(Command::Access { op }).await?.into_result()?;
        Ok(())
    }

    async fn tell_agents_tls(&self) {
        if let Some(message) = self.tls_message() {
            self.tell_connected_agents(&message).await;
        }
    }

    fn rotation_status(&self, state: &State, rotation: &CaRotation) -> CaRotationStatus {
        let access = state.access();
        let servers: Vec<ServerCaStatus> = self
            .members()
            .into_iter()
            .map(|member| ServerCaStatus {
                server_id: member.server_id,
                address: member.address,
                trusts_new: rotation.trusting_servers.contains(&member.server_id),
                reissued: rotation.reissued_servers.contains(&member.server_id),
            })
            .collect();
        let mut nodes_on_old_ca: Vec<String> = state
            .nodes()
            .filter(|node| matches!(node.status, NodeStatus::Ready | NodeStatus::Initializing))
            .filter(|node| !rotation.node_reissued(&node.name, access.node_certificate(&node.name)))
            .map(|node| node.name.clone())
            .collect();
        nodes_on_old_ca.sort();
        nodes_on_old_ca.dedup();
        let nodes_reissued = rotation
            .reissued_nodes
            .keys()
            .filter(|name| rotation.node_reissued(name, access.node_certificate(name)))
            .count();
        let ready_to_finish = servers.iter().all(|server| server.reissued) && nodes_on_old_ca.is_empty();
        CaRotationStatus {
            started_at: rotation.started_at.as_millis(),
            started_by: rotation.started_by.clone(),
            servers,
            nodes_on_old_ca,
            nodes_reissued,
            ready_to_finish,
        }
    }

    fn secure_tls(&self, what: &str) -> Result<std::sync::Arc<ServerTls>> {
        self.tls().cloned().ok_or_else(|| CodedError::invalid(format!("this server is insecure (--insecure): {what}")))
    }
}

fn ca_summary(role: &str, pem: &str, fingerprint: &str) -> CaSummary {
    let info = drover_tls::cert_info_pem(pem).ok();
    CaSummary {
        role: role.to_owned(),
        fingerprint: fingerprint.to_owned(),
        subject: info.as_ref().map(|info| info.subject.clone()).unwrap_or_default(),
        not_after: info.map_or(0, |info| info.not_after),
    }
}

/// Refuses rotating to a CA the cluster trusts already (its current CA):
/// nothing would change, and finishing would drop the CA it rotated to.
fn same_ca_problem(new_fingerprint: &str, trusted_pems: &[String]) -> Option<String> {
    trusted_pems.iter().any(|pem| drover_tls::pem_fingerprint(pem).is_ok_and(|known| known == new_fingerprint)).then(
        || {
            format!(
                "the new CA ({new_fingerprint}) is the cluster's CA already, nothing changed: give the certificate and key of your next CA"
            )
        },
    )
}

/// What a rotation still waits for, in words: the servers and live nodes
/// still on the old CA, by name.
fn what_is_left(progress: &CaRotationStatus) -> String {
    let mut parts = Vec::new();
    let untrusting: Vec<String> = progress
        .servers
        .iter()
        .filter(|server| !server.trusts_new)
        .map(|server| format!("{} ({})", server.server_id, server.address))
        .collect();
    if !untrusting.is_empty() {
        parts.push(format!(
            "server {} does not trust the new CA yet (is it down? `drover server members`)",
            untrusting.join(", ")
        ));
    }
    let old_servers: Vec<String> = progress
        .servers
        .iter()
        .filter(|server| server.trusts_new && !server.reissued)
        .map(|server| server.server_id.to_string())
        .collect();
    if !old_servers.is_empty() {
        parts.push(format!("server {} still holds a certificate of the old CA", old_servers.join(", ")));
    }
    if !progress.nodes_on_old_ca.is_empty() {
        let count = progress.nodes_on_old_ca.len();
        parts.push(format!(
            "{count} live node{} still hold{} a certificate of the old CA ({})",
            if count == 1 { "" } else { "s" },
            if count == 1 { "s" } else { "" },
            progress.nodes_on_old_ca.join(", ")
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_of(ca: &Ca, other_key: Option<&Ca>, key_mode: Option<u32>) -> OperatorCaFiles {
        OperatorCaFiles {
            cert: ca.cert_pem().to_owned(),
            key: other_key.unwrap_or(ca).key_pem().to_owned(),
            cert_file: "/etc/pki/next-ca.pem".to_owned(),
            key_file: "/etc/pki/next-ca-key.pem".to_owned(),
            key_mode,
        }
    }

    #[test]
    fn an_operators_ca_is_checked_as_at_start_naming_the_operators_file() {
        let next = Ca::generate("next").expect("a CA");
        let other = Ca::generate("other").expect("another CA");
        let accepted = operator_ca(&files_of(&next, None, Some(0o600))).expect("a good CA");
        assert_eq!(accepted.fingerprint(), next.fingerprint());

        let error = operator_ca(&files_of(&next, Some(&other), Some(0o600))).expect_err("a key of another CA");
        assert_eq!(error.code, ErrorCode::InvalidInput);
        assert_eq!(
            error.message,
            "the new CA is refused, nothing changed: /etc/pki/next-ca-key.pem: the CA key is not valid: it does not belong to the CA certificate (their public keys differ); give the key the certificate was made for"
        );
        let error = operator_ca(&files_of(&next, None, Some(0o644))).expect_err("an exposed key");
        assert_eq!(
            error.message,
            "the new CA is refused, nothing changed: /etc/pki/next-ca-key.pem can be read or written by other users (mode 644); a private key must be private: run `chmod 600 /etc/pki/next-ca-key.pem`"
        );
        // Sent without file names (straight to the API): the fields are named.
        let unnamed = OperatorCaFiles {
            cert_file: String::new(),
            key_file: String::new(),
            ..files_of(&next, Some(&other), None)
        };
        assert!(operator_ca(&unnamed).expect_err("refused").message.contains(": new_ca.key: the CA key is not valid"));
    }

    #[test]
    fn rotating_to_the_ca_in_use_is_refused() {
        let current = Ca::generate("current").expect("a CA");
        let next = Ca::generate("next").expect("a CA");
        let trusted = vec![current.cert_pem().to_owned()];
        assert_eq!(same_ca_problem(&next.fingerprint(), &trusted), None);
        let problem = same_ca_problem(&current.fingerprint(), &trusted).expect("refused");
        assert!(problem.contains("is the cluster's CA already, nothing changed"), "{problem}");
    }

    #[test]
    fn on_external_certificates_the_refusal_says_what_to_do_and_that_the_new_ca_option_is_not_for_it() {
        let message = external_rotation_refused();
        assert!(message.contains("its servers hold no CA key and issue no certificates; to move to another CA, add its certificate to the --tls-ca-cert file"), "{message}");
        assert!(
            message.ends_with("`rotate-ca --new-ca-cert/--new-ca-key` is for clusters whose servers issue from a CA (started with --tls-ca-cert/--tls-ca-key, or on the CA they made)"),
            "{message}"
        );
    }

    #[test]
    fn what_is_left_names_the_servers_and_nodes_still_on_the_old_ca() {
        let progress = CaRotationStatus {
            servers: vec![
                ServerCaStatus { server_id: 1, address: "a:1".into(), trusts_new: true, reissued: true },
                ServerCaStatus { server_id: 2, address: "b:1".into(), trusts_new: true, reissued: false },
                ServerCaStatus { server_id: 3, address: "c:1".into(), trusts_new: false, reissued: false },
            ],
            nodes_on_old_ca: vec!["batch01".into()],
            ..Default::default()
        };
        assert_eq!(
            what_is_left(&progress),
            "server 3 (c:1) does not trust the new CA yet (is it down? `drover server members`); server 2 still holds a certificate of the old CA; 1 live node still holds a certificate of the old CA (batch01)"
        );
    }
}
