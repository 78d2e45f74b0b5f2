//! Kubernetes Events on denial (optional, off by default): `kubectl describe pod` then shows
//! why the container did not start, next to kubelet's own CreateContainerError.
//!
//! Posting happens off the request path: the handler hands a denial to a bounded queue and
//! returns; a full queue drops the event (the decision is in the log either way). kube-rs's
//! Recorder folds repeats of the same denial into one Event series.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;
use tokio::sync::mpsc;

/// Queued denials beyond this are dropped rather than slowing anything down.
const QUEUE: usize = 256;
/// Event notes are bounded by the API; keep well inside.
const MAX_NOTE: usize = 1000;

#[derive(Debug, Clone)]
pub struct Denial {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub message: String,
}

#[derive(Clone)]
pub struct DenialEvents {
    tx: mpsc::Sender<Denial>,
}

impl DenialEvents {
    /// Start the poster; `node` identifies this reporter instance.
    pub fn start(client: Client, node: String) -> Self {
        let (tx, mut rx) = mpsc::channel::<Denial>(QUEUE);
        let recorder = Recorder::new(client, Reporter { controller: "signet".into(), instance: Some(node) });
        tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                let reference = ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    namespace: Some(d.namespace.clone()),
                    name: Some(d.pod.clone()),
                    uid: Some(d.uid.clone()).filter(|u| !u.is_empty()),
                    ..Default::default()
                };
                let mut note = d.message;
                if note.len() > MAX_NOTE {
                    let cut = (0..=MAX_NOTE).rev().find(|&i| note.is_char_boundary(i)).unwrap_or(0);
                    note.truncate(cut);
                }
                let event = Event {
                    type_: EventType::Warning,
                    reason: "ImageSignatureDenied".into(),
                    note: Some(note),
                    action: "CreateContainer".into(),
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&event, &reference).await {
                    tracing::warn!(namespace = %d.namespace, pod = %d.pod, error = %e, "denial event not posted");
                }
            }
        });
        Self { tx }
    }

    /// Queue a denial; never waits.
    pub fn report(&self, d: Denial) {
        if self.tx.try_send(d).is_err() {
            tracing::debug!("denial event queue full; event dropped (the decision is logged)");
        }
    }
}
